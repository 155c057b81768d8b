"""`python -m jobs.scheduler`: the one process that runs periodic sweeps.

Exactly one runs at a time: a Redis lock with a heartbeat elects it (a second scheduler waits). Each
sweep is idempotent and safe to run twice at once, so a lost lock costs nothing but duplicate work.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)
LOCK_NAME = "liaison:scheduler:leader"


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


def run_due(sweeps: list[Sweep], now: float) -> list[str]:
    """Run every sweep whose interval has passed; a failing sweep does not stop the others."""
    ran = []
    for sweep in sweeps:
        if now - sweep.last_run >= sweep.every_seconds:
            sweep.last_run = now
            try:
                sweep.run()
                ran.append(sweep.name)
            except Exception:
                log.exception("sweep %s failed", sweep.name)
    return ran


def run_forever(redis_client=None, stop: threading.Event | None = None, tick: float = 1.0) -> None:
    """Loop over the sweeps; with Redis, only while holding the leader lock."""
    stop = stop or threading.Event()
    sweeps = default_sweeps()
    lock = redis_client.lock(LOCK_NAME, timeout=30) if redis_client is not None else None
    while not stop.is_set():
        if lock is not None:
            if not lock.owned() and not lock.acquire(blocking=False):
                stop.wait(5)
                continue
            lock.reacquire()
        run_due(sweeps, time.monotonic())
        stop.wait(tick)
    if lock is not None and lock.owned():
        lock.release()


def main() -> int:
    from jobs.bootstrap import boot

    rt = boot()
    run_forever(rt.redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
