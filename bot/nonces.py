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

log = logging.getLogger(__name__)
KEY_PREFIX = "liaison:webhook:nonce:"
# KEYS[1] the pair's key, ARGV[1] the body's digest, ARGV[2] the TTL; optionally KEYS[2] a hash and
# ARGV[3] a field of it. Returns {claimed (the pair is new, or was taken with this very body), has the
# hash that field (0 when not asked)}.
_CLAIM = """
local claimed = 1
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local stored = redis.call('GET', KEYS[1])
  if stored and stored ~= ARGV[1] then claimed = 0 end
end
local held = 0
if KEYS[2] then held = redis.call('HEXISTS', KEYS[2], ARGV[3]) end
return {claimed, held}
"""
MEMORY_LIMIT = 100_000  # pairs kept in memory before expired ones are purged


class NonceRegistry:
    """Claims (timestamp, nonce) pairs for one body each, for `ttl_seconds`."""

    def __init__(self, redis_client, ttl_seconds: int):
        self.redis = redis_client
        self.ttl = ttl_seconds
        self._memory: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._script = None  # the claim's script, registered on first use

    def claim(self, timestamp: str, nonce: str, body: bytes) -> bool:
        """True when this pair is new, or was first used with this very body; False for a replay."""
        return self.claim_along(timestamp, nonce, body)[0]

    def claim_along(self, timestamp: str, nonce: str, body: bytes,
                    hash_field: tuple[str, str] | None = None) -> tuple[bool, bool | None]:
        """`claim`, asking in the same Redis round trip whether the hash `hash_field` = (key, field)
        has that field: (claimed, has it), the answer None when Redis could not be asked or nothing
        was (the webhook asks whether the spool holds the resident's earlier deliveries).

        One script does both, and the check of a pair already taken: one command for the webhook to
        pack and parse instead of a pipeline of two and a GET.
        """
        key = f"{KEY_PREFIX}{timestamp}:{nonce}"
        digest = hashlib.sha256(body).hexdigest()
        if self.redis is not None:
            try:
                if self._script is None:
                    self._script = self.redis.register_script(_CLAIM)
                keys = [key] if hash_field is None else [key, hash_field[0]]
                args = [digest, self.ttl] if hash_field is None else [digest, self.ttl, hash_field[1]]
                claimed, held = self._script(keys=keys, args=args)
                return bool(claimed), (None if hash_field is None else bool(held))
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
