"""Riding out a Redis outage: which errors mean "Redis is away", bounded backoff, one log line per change.

The worker and the scheduler keep running while Redis is down (a restart, a failover) and carry on
when it is back; nobody has to restart them. They log when Redis goes away and when it is back, not a
traceback per retry.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import redis

# BusyLoadingError (Redis replaying its AOF after a restart) is a ConnectionError too.
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
FIRST_DELAY = 0.2
MAX_DELAY = 5.0  # bounded: a process notices within five seconds that Redis is back


def backoff(first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> Iterator[float]:
    """Delays between reconnection attempts: doubling from `first`, never above `cap`."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


class RedisLink:
    """Whether this process can reach Redis, as last seen; logs each change of state once."""

    def __init__(self, who: str, log: logging.Logger):
        self.who, self.log = who, log
        self.down_since: float | None = None
        self._lock = threading.Lock()  # the scheduler's lock renewer reports here too

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def lost(self, error: BaseException) -> bool:
        """Redis failed a call; True when this is news (it was reachable until now)."""
        with self._lock:
            if self.down_since is not None:
                return False
            self.down_since = time.monotonic()
        self.log.warning("%s: Redis is unreachable (%s); retrying every %.0fs at most",
                         self.who, type(error).__name__, MAX_DELAY)
        return True

    def back(self) -> bool:
        """Redis answered; True when it had been unreachable."""
        with self._lock:
            if self.down_since is None:
                return False
            down_for, self.down_since = time.monotonic() - self.down_since, None
        self.log.warning("%s: Redis is reachable again after %.0fs", self.who, down_for)
        return True


def wait_for_redis(client, link: RedisLink, stop: threading.Event) -> bool:
    """Block until Redis answers a PING (True) or `stop` is set (False), backing off between tries."""
    delays = backoff()
    while not stop.is_set():
        try:
            client.ping()
        except REDIS_ERRORS as error:
            link.lost(error)
            stop.wait(next(delays))
            continue
        link.back()
        return True
    return False
