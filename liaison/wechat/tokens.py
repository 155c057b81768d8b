"""Access-token stores shared by every client of one appid.

A store caches the token and coordinates refreshes; the client gives it a ``fetch(force_refresh)``
callable returning ``(token, expires_in)`` (a POST to /cgi-bin/stable_token).

- ``RedisTokenStore``: shared by all processes (web workers, RQ jobs which fork per job). The token is
  cached under ``wechat:access_token:<appid>`` with a TTL of ``expires_in - margin``; refreshes happen
  under a Redis lock with a re-check after the lock is acquired, so N processes refreshing at once
  cause one stable_token call.
- ``MemoryTokenStore``: one process, a thread lock (embedded mode without Redis).

``get_token(fetch, bad_token=None)``: ``bad_token`` is the token WeChat just rejected (40001/40014/
42001). The store then only accepts a *different* cached token, and if stable_token (without
force_refresh) hands back the same bad token it asks again with ``force_refresh=True``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)

Fetch = Callable[[bool], "tuple[str, int]"]

DEFAULT_MARGIN = 300  # seconds before WeChat's expiry at which we stop using a token


def _fetch_fresh(fetch: Fetch, bad_token: str | None) -> tuple[str, int]:
    token, expires_in = fetch(False)
    if bad_token is not None and token == bad_token:
        log.info("stable_token returned the rejected token again; forcing a refresh")
        token, expires_in = fetch(True)
    return token, int(expires_in)


class TokenStore(Protocol):  # pragma: no cover - typing only
    def peek(self) -> str | None: ...
    def get_token(self, fetch: Fetch, bad_token: str | None = None) -> str: ...
    def invalidate(self, token: str | None = None) -> None: ...


class MemoryTokenStore:
    """In-process token cache guarded by a thread lock."""

    def __init__(self, margin: int = DEFAULT_MARGIN, clock: Callable[[], float] = time.monotonic):
        self.margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def peek(self) -> str | None:
        token, expires_at = self._token, self._expires_at
        if token and self._clock() < expires_at:
            return token
        return None

    def get_token(self, fetch: Fetch, bad_token: str | None = None) -> str:
        token = self.peek()
        if token and token != bad_token:
            return token
        with self._lock:
            token = self.peek()  # re-check: another thread may have refreshed meanwhile
            if token and token != bad_token:
                return token
            token, expires_in = _fetch_fresh(fetch, bad_token)
            self._token = token
            self._expires_at = self._clock() + max(expires_in - self.margin, 1)
            return token

    def invalidate(self, token: str | None = None) -> None:
        """Drop the cached token (only if it still is ``token`` when one is given)."""
        with self._lock:
            if token is None or self._token == token:
                self._token = None
                self._expires_at = 0.0


# compare-and-delete: never wipe a token another process has just stored
_CAD_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisTokenStore:
    """Token cache in Redis, refreshed under a Redis lock (shared between processes).

    ``lock_timeout`` must exceed the worst refresh (two stable_token calls with the client's timeout);
    ``blocking_timeout`` bounds the wait for another refresher, after which we fetch anyway (safe:
    stable_token is idempotent). Works with ``decode_responses`` on or off.
    """

    def __init__(self, redis_client, appid: str, key_prefix: str = "wechat:access_token",
                 margin: int = DEFAULT_MARGIN, lock_timeout: float = 30.0, blocking_timeout: float = 15.0):
        self.redis = redis_client
        self.appid = appid
        self.key = f"{key_prefix}:{appid}"
        self.lock_name = f"{self.key}:lock"
        self.margin = margin
        self.lock_timeout = lock_timeout
        self.blocking_timeout = blocking_timeout

    def peek(self) -> str | None:
        value = self.redis.get(self.key)
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def _store(self, token: str, expires_in: int) -> None:
        self.redis.set(self.key, token, ex=max(int(expires_in) - self.margin, 1))

    def get_token(self, fetch: Fetch, bad_token: str | None = None) -> str:
        token = self.peek()
        if token and token != bad_token:
            return token
        lock = self.redis.lock(self.lock_name, timeout=self.lock_timeout,
                               blocking_timeout=self.blocking_timeout)
        acquired = lock.acquire()
        try:
            token = self.peek()  # re-check: another process may have refreshed while we waited
            if token and token != bad_token:
                return token
            if not acquired:
                # The lock holder is stuck; stable_token is idempotent, so fetching without the lock
                # is safe (it cannot knock out other processes' token as /cgi-bin/token would).
                log.warning("wechat token lock not acquired in %ss; fetching without it", self.blocking_timeout)
            token, expires_in = _fetch_fresh(fetch, bad_token)
            self._store(token, expires_in)
            return token
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception:  # lock expired meanwhile: nothing to release
                    log.warning("wechat token lock had expired before release")

    def invalidate(self, token: str | None = None) -> None:
        if token is None:
            self.redis.delete(self.key)
        else:
            self.redis.eval(_CAD_SCRIPT, 1, self.key, token)
