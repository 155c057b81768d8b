"""Where jobs go: RQ on Redis in production, an in-process queue in the embedded default.

Queues: `urgent` (messages to people), `default` (sweeps), `bulk` (broadcasts, exports), so bulk work
never delays a resident's reply.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from typing import Callable

from rq import Queue

from config.settings import Settings
from jobs.redis_link import REDIS_ERRORS

log = logging.getLogger(__name__)

URGENT, DEFAULT, BULK = "urgent", "default", "bulk"
QUEUE_NAMES = (URGENT, DEFAULT, BULK)


class RQJobQueue:
    """Enqueue onto RQ with job ids unique per outbox attempt (a re-enqueue of the same attempt is
    harmless: the job claims its row before sending)."""

    def __init__(self, redis_client):
        self.redis = redis_client
        self.queues = {name: Queue(name, connection=redis_client) for name in QUEUE_NAMES}

    def enqueue(self, queue_name: str, func: str, *args, job_id: str | None = None, **kwargs):
        return self.queues[queue_name].enqueue(func, *args, job_id=job_id, result_ttl=3600,
                                               failure_ttl=7 * 24 * 3600, **kwargs)

    def enqueue_outbox(self, outbox_id: int, attempt: int) -> None:
        self.enqueue(URGENT, "jobs.tasks.deliver_outbox", outbox_id, job_id=f"outbox-{outbox_id}-{attempt}")

    def enqueue_outbox_many(self, rows: list[tuple[int, int]]) -> None:
        """Several outbox rows in one Redis round trip (e.g. one notice to each follower of a case)."""
        self.queues[URGENT].enqueue_many([
            Queue.prepare_data("jobs.tasks.deliver_outbox", (outbox_id,), job_id=f"outbox-{outbox_id}-{attempt}",
                               result_ttl=3600, failure_ttl=7 * 24 * 3600)
            for outbox_id, attempt in rows])


class LocalJobQueue:
    """The embedded default: one daemon thread runs jobs in order, in this process."""

    def __init__(self):
        self._queue: queue.Queue[tuple[Callable, tuple]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="local-jobs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            func, args = self._queue.get()
            try:
                func(*args)
            except Exception:  # keep the worker alive; the outbox keeps the retry state
                log.exception("local job %s failed", getattr(func, "__name__", func))
            finally:
                self._queue.task_done()

    def enqueue(self, queue_name: str, func: str, *args, job_id: str | None = None, **kwargs):
        module, _, name = func.rpartition(".")
        import importlib

        self._queue.put((getattr(importlib.import_module(module), name), args))

    def enqueue_outbox(self, outbox_id: int, attempt: int) -> None:
        self.enqueue(URGENT, "jobs.tasks.deliver_outbox", outbox_id)

    def enqueue_outbox_many(self, rows: list[tuple[int, int]]) -> None:
        for outbox_id, attempt in rows:
            self.enqueue_outbox(outbox_id, attempt)

    def join(self) -> None:
        """Wait until every queued job ran (tests and the CLI use it)."""
        self._queue.join()


_current = None


def _hand_over(fresh: list[tuple[int, int]]) -> None:
    """Give committed outbox rows to the queue; rows it cannot take go back to the relay."""
    from liaison.core import db, tenant
    from liaison.messaging import outbox

    try:
        _current.enqueue_outbox_many(fresh)
    except Exception as error:  # Redis down: the scheduler's relay sweep hands them over later
        if isinstance(error, REDIS_ERRORS):  # expected in an outage: one line, not a traceback
            log.warning("could not enqueue %d outbox row(s) now (%s); the relay sweep will",
                        len(fresh), type(error).__name__)
        else:
            log.warning("could not enqueue outbox rows now; the relay sweep will", exc_info=True)
        # Rows whose job did get in are harmless to hand back: the job claims before sending.
        with tenant.use(tenant.all_counties("hand outbox rows back to the relay")), \
                db.session_scope() as relay_session:
            outbox.back_to_pending(relay_session, [i for i, _ in fresh])


class BackgroundHandOver:
    """The web process's hand-over of committed outbox rows: one thread takes what every request
    committed since its last turn and enqueues it in one Redis round trip, so no request waits for
    RQ. Nothing is lost by the delay: each row is committed as `enqueued` with a lease before it is
    put here, so rows of a process that dies first are handed over by the relay after the lease.
    At exit the thread is given a moment to hand over what is left."""

    def __init__(self):
        self._rows: list[tuple[int, int]] = []
        self._wake = threading.Condition()
        self._busy = False
        self._pid: int | None = None

    def put(self, rows: list[tuple[int, int]]) -> None:
        with self._wake:
            if self._pid != os.getpid():  # first use, or a forked child: the thread is not there
                self._pid = os.getpid()
                self._rows, self._busy = [], False
                threading.Thread(target=self._run, name="outbox-hand-over", daemon=True).start()
            self._rows.extend(rows)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._rows:
                    self._busy = False
                    self._wake.notify_all()
                    self._wake.wait()
                batch, self._rows, self._busy = self._rows, [], True
            try:
                _hand_over(batch)
            except Exception:  # keep handing over; the relay takes rows after their lease
                log.warning("outbox hand-over failed; the relay sweep will", exc_info=True)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far is handed over (at exit; tests)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._rows and not self._busy, timeout=timeout)


def install(settings: Settings, redis_client=None, *, background_hand_over: bool = False):
    """Create this process's queue and make every committed outbox row go to it at once.

    `background_hand_over` (the web app on RQ): the rows go from a background thread in batches
    (`BackgroundHandOver`) instead of from the committing request."""
    global _current
    from liaison.core import db
    from liaison.messaging import outbox

    _current = RQJobQueue(redis_client) if redis_client is not None else LocalJobQueue()
    hand_over = None
    if background_hand_over and redis_client is not None:
        hand_over = BackgroundHandOver()
        atexit.register(hand_over.drain)

    def kick(session) -> None:
        fresh = outbox.fresh_rows(session)
        if not fresh:
            return
        if hand_over is not None:
            hand_over.put(fresh)
        else:
            _hand_over(fresh)

    db.clear_after_commit_hooks()
    db.on_after_commit(kick)
    db.on_after_commit(_kick_media)
    return _current


def _kick_media(session) -> None:
    """Chat photos and voice recorded by the committed transaction: fetch them from WeChat now."""
    from liaison.media import service as media  # like outbox in install(): the domain loads after the queue

    fresh = media.fresh_ids(session)
    if not fresh:
        return
    try:
        for media_id in fresh:  # the job id of jobs.media_tasks.enqueue_fetches
            _current.enqueue(DEFAULT, "jobs.media_tasks.fetch_media", media_id, job_id=f"media-{media_id}-0")
    except REDIS_ERRORS as error:  # the media sweep queues pending rows later
        log.warning("could not enqueue %d media fetch(es) now (%s); the media sweep will",
                    len(fresh), type(error).__name__)


def current_queue():
    if _current is None:
        raise RuntimeError("jobs.queues.install(settings) has not been called in this process")
    return _current
