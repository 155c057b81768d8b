"""One body per signed query: the (timestamp, nonce) pair WeChat signed belongs to the first body posted with it.

The query `signature` covers token, timestamp and nonce, not the body, so a captured query string would
otherwise carry any body for the whole clock-skew window. A pair seen again with the same body is the
same delivery sent again (a network retry): it passes, and the inbound dedup answers it from the store.
A pair seen again with a different body is a replay and is refused.

Pairs live in Redis (shared by every web process) for twice the clock skew — long enough to outlive
any timestamp the freshness check still accepts; without Redis (embedded mode, or Redis unreachable)
in this process's memory.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)
KEY_PREFIX = "liaison:webhook:nonce:"
MEMORY_LIMIT = 100_000  # pairs kept in memory before expired ones are purged


class NonceRegistry:
    """Claims (timestamp, nonce) pairs for one body each, for `ttl_seconds`."""

    def __init__(self, redis_client, ttl_seconds: int):
        self.redis = redis_client
        self.ttl = ttl_seconds
        self._memory: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def claim(self, timestamp: str, nonce: str, body: bytes) -> bool:
        """True when this pair is new, or was first used with this very body; False for a replay."""
        return self.claim_along(timestamp, nonce, body)[0]

    def claim_along(self, timestamp: str, nonce: str, body: bytes,
                    also: Callable[[object], None] | None = None) -> tuple[bool, list | None]:
        """`claim`, with the commands `also(pipeline)` queues sent in the same Redis round trip:
        (claimed, their results), the results None when Redis could not be asked (or there is none).

        `also`'s commands are sent whatever the claim's outcome (it cannot depend on it); they are
        expected to be reads the caller needs next (the webhook asks whether the spool holds the
        resident's earlier deliveries).
        """
        key = f"{KEY_PREFIX}{timestamp}:{nonce}"
        digest = hashlib.sha256(body).hexdigest()
        if self.redis is not None:
            try:
                pipeline = self.redis.pipeline(transaction=False)
                pipeline.set(key, digest, nx=True, ex=self.ttl)
                if also is not None:
                    also(pipeline)
                first, *results = pipeline.execute()
                if first:
                    return True, results
                stored = self.redis.get(key)
                return stored is None or stored.decode() == digest, results
            except Exception as error:  # Redis down: a process-local record still stops most replays
                log.warning("nonce registry falls back to memory: %s", type(error).__name__)
        return self._claim_in_memory(key, digest), None

    def _claim_in_memory(self, key: str, digest: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._memory) >= MEMORY_LIMIT:
                self._memory = {k: v for k, v in self._memory.items() if v[1] > now}
            stored = self._memory.get(key)
            if stored is not None and stored[1] > now:
                return stored[0] == digest
            self._memory[key] = (digest, now + self.ttl)
            return True
