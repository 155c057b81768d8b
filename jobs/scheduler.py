"""`python -m jobs.scheduler`: the one process that runs periodic sweeps.

Exactly one runs at a time: a Redis lock elects it (a second scheduler waits on standby). The lock
lives LOCK_TTL seconds and the leader renews it every RENEW_EVERY seconds from a thread of its own (a
long sweep cannot let it lapse), so a dead leader is replaced within LOCK_TTL + STANDBY_POLL seconds.
Each sweep is idempotent and safe to run twice at once, so a lost lock costs nothing but duplicate work.

A Redis outage does not end the process: the leader stops sweeping once it can no longer prove it holds
the lock (after LOCK_TTL without a renewal), waits for Redis with bounded backoff and competes for the
lock again. It logs when Redis goes away and when it is back, not a traceback per try.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from redis.exceptions import LockError

from jobs.redis_link import REDIS_ERRORS, RedisLink, wait_for_redis

log = logging.getLogger(__name__)
LOCK_NAME = "liaison:scheduler:leader"
LOCK_TTL = 6.0  # seconds a dead leader's lock outlives it
RENEW_EVERY = 2.0  # three renewals per TTL: one lost round trip does not cost the lock
STANDBY_POLL = 1.0  # how often a standby tries to take the lock


@dataclass
class Sweep:
    name: str
    every_seconds: float
    run: Callable[[], object]
    last_run: float = 0.0


def default_sweeps() -> list[Sweep]:
    """The periodic work: outbox relay (lost or retried jobs) and the domain's timed sweeps."""
    from jobs import tasks

    sweeps = [Sweep("relay_outbox", 5, tasks.relay_outbox)]
    sweeps += [Sweep(name, every, func) for name, every, func in tasks.PERIODIC]
    return sweeps


def run_due(sweeps: list[Sweep], now: float, link: RedisLink | None = None) -> list[str]:
    """Run every sweep whose interval has passed; a failing sweep does not stop the others.

    A sweep that fails because Redis is away (the relay cannot enqueue) is reported to `link` (one
    line per outage) and runs again at its next interval; its rows stay in the database meanwhile.
    """
    ran = []
    for sweep in sweeps:
        if now - sweep.last_run >= sweep.every_seconds:
            sweep.last_run = now
            try:
                sweep.run()
                ran.append(sweep.name)
            except REDIS_ERRORS as error:
                if link is None:
                    log.exception("sweep %s failed", sweep.name)
                else:
                    link.lost(error)
            except Exception:
                log.exception("sweep %s failed", sweep.name)
    return ran


class Leadership:
    """The leader lock: taken without blocking, renewed by a thread, given up on stop or loss."""

    def __init__(self, redis_client, link: RedisLink, stop: threading.Event):
        # thread_local=False: the renewer thread must see the token the main thread acquired with.
        self.lock = redis_client.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
        self.link, self.stop = link, stop
        self.held = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self) -> bool:
        """Become the leader if nobody is (raises a Redis error when Redis is away)."""
        if not self.lock.acquire(blocking=False):
            self.link.back()
            return False
        self.link.back()
        self.held.set()
        log.info("scheduler: leading (lock %s, %.0fs)", LOCK_NAME, LOCK_TTL)
        self._renewer = threading.Thread(target=self._renew, name="scheduler-lock", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        renewed = time.monotonic()
        while self.held.is_set() and not self.stop.wait(RENEW_EVERY):
            try:
                self.lock.reacquire()
            except LockError:  # it expired and another scheduler may hold it now
                log.warning("scheduler: lost the leader lock; standing by")
                self.held.clear()
                return
            except REDIS_ERRORS as error:
                self.link.lost(error)
                if time.monotonic() - renewed >= LOCK_TTL:  # another may have taken over by now
                    log.warning("scheduler: cannot renew the leader lock while Redis is away; standing by")
                    self.held.clear()
                    return
                continue
            renewed = time.monotonic()
            self.link.back()

    def resign(self) -> None:
        """Stop renewing and release the lock so a standby takes over at once (best effort)."""
        was_held = self.held.is_set()
        self.held.clear()
        if self._renewer is not None:
            self._renewer.join(timeout=RENEW_EVERY + 5)
        if was_held:
            try:
                self.lock.release()
            except (LockError, *REDIS_ERRORS):  # expired already, or Redis is away: the TTL frees it
                pass


def run_forever(redis_client=None, stop: threading.Event | None = None, tick: float = 1.0) -> None:
    """Loop over the sweeps; with Redis, only while holding the leader lock, through Redis outages."""
    stop = stop or threading.Event()
    sweeps = default_sweeps()
    link = RedisLink("scheduler", log)
    leadership = Leadership(redis_client, link, stop) if redis_client is not None else None
    try:
        while not stop.is_set():
            if leadership is not None and not leadership.held.is_set():
                try:
                    if not leadership.try_acquire():
                        stop.wait(STANDBY_POLL)
                        continue
                except REDIS_ERRORS as error:
                    link.lost(error)
                    wait_for_redis(redis_client, link, stop)
                    continue
            run_due(sweeps, time.monotonic(), link)
            stop.wait(tick)
    finally:
        if leadership is not None:
            leadership.resign()


def main() -> int:
    from jobs.bootstrap import boot

    rt = boot()
    stop = threading.Event()
    # SIGTERM (a deploy, a supervisor) releases the lock on the way out: the standby takes over at once.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    run_forever(rt.redis, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
