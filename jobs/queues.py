"""Where jobs go: RQ on Redis in production, an in-process queue in the embedded default.

Queues: `urgent` (messages to people), `default` (sweeps), `bulk` (broadcasts, exports), so bulk work
never delays a resident's reply.
"""
from __future__ import annotations

import logging
import queue
import threading
import zlib
from enum import Enum
from typing import Callable

from rq import Queue
from rq.job import JobStatus
from rq.utils import now, utcformat

from config.settings import Settings
from jobs.redis_link import REDIS_ERRORS

log = logging.getLogger(__name__)

URGENT, DEFAULT, BULK = "urgent", "default", "bulk"
QUEUE_NAMES = (URGENT, DEFAULT, BULK)
# What one outbox row's delivery may take (RQ's default job timeout): a job of several rows gets it per row.
ROW_TIMEOUT = Queue.DEFAULT_TIMEOUT
RESULT_TTL, FAILURE_TTL = 3600, 7 * 24 * 3600
DELIVER_ROW, DELIVER_ROWS = "jobs.tasks.deliver_outbox", "jobs.tasks.deliver_outbox_rows"


class OutboxJobHashes:
    """The Redis writes RQ 3.0's `Queue.enqueue_many` makes for an outbox job, without RQ's work per job.

    `enqueue_many` builds a `Job` (description by repr of the call, dependency, callback and retry
    options the outbox never uses), asks Redis its version once, and sends SADD `rq:queues`, HSET of
    the status, HSET of the whole hash (`Job.to_dict`), and RPUSH of the id. Here the hash is taken
    from RQ's own `Job.to_dict` once per job function: the fields every outbox job shares (origin,
    TTLs, status, RQ's empty callback and worker fields) are written into a Lua script, and only the
    per-job fields travel with each job: its id, the times, the pickled call, the description, the
    timeout. One EVAL makes the three writes (the status HSET is left out: the whole hash sets the
    same status), so the caller's pipeline packs and parses one command, not three, and of 11
    arguments instead of 42. The keys written and their contents are RQ's (tests/test_outbox_hand_over.py
    compares them with `enqueue_many`'s, so a release of RQ that writes otherwise fails there).
    """

    # The hash's fields that differ per job, and which of the script's ARGV holds each (1: the job id).
    PER_JOB = {"created_at": 2, "enqueued_at": 2, "data": 3, "description": 4, "timeout": 5}

    def __init__(self, queue: Queue):
        self.queue_key, self.queues_key = queue.key, queue.redis_queues_keys
        self.job_prefix, self.dumps = queue.job_class.redis_job_namespace_prefix, queue.serializer.dumps
        self._scripts = {func: self._script(queue, func) for func in (DELIVER_ROW, DELIVER_ROWS)}

    @classmethod
    def _script(cls, queue: Queue, func: str) -> str:
        """The Lua script that enqueues a `func` job: KEYS are the job's hash, the queue's list and
        RQ's set of queues; ARGV the job id and the `PER_JOB` values. The other fields are those of
        RQ's own hash of a queued `func` job on `queue`."""
        job = queue.job_class.create(func, args=(0,), connection=queue.connection, id="outbox-shape",
                                     origin=queue.name, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                                     timeout=ROW_TIMEOUT, status=JobStatus.QUEUED,
                                     serializer=queue.serializer)
        job.enqueued_at = job.created_at  # as `Queue._prepare_for_queue` sets it
        mapping = job.to_dict()
        missing = set(cls.PER_JOB) - set(mapping)
        if missing:  # RQ changed its format: the hand-over must be looked at again
            raise RuntimeError(f"RQ's job hash has no {sorted(missing)} field(s)")
        fields = ", ".join(f"{_lua_string(name)}, " + (f"ARGV[{cls.PER_JOB[name]}]" if name in cls.PER_JOB
                                                          else _lua_string(value))
                           for name, value in mapping.items())
        return ("redis.call('SADD', KEYS[3], KEYS[2]) "
                f"redis.call('HSET', KEYS[1], {fields}) "
                "return redis.call('RPUSH', KEYS[2], ARGV[1])")

    def add(self, pipe, func: str, job_id: str, args: tuple, description: str, timeout: int) -> None:
        """Queue on `pipe` the command that enqueues the job `job_id` calling `func(*args)` on the
        queue (no Redis round trip: the caller executes `pipe`)."""
        pipe.execute_command("EVAL", self._scripts[func], 3, self.job_prefix + job_id, self.queue_key,
                             self.queues_key, job_id, utcformat(now()),
                             zlib.compress(self.dumps((func, None, args, {}))), description, timeout)


def _lua_string(value) -> str:
    """`value` as a Lua string literal holding the bytes redis-py would send for it."""
    if isinstance(value, Enum):
        value = value.value
    raw = value if isinstance(value, bytes) else str(value).encode()
    plain = {ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:"}
    return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in raw) + '"'  # \ddd: any byte


def call_description(func: str, arg) -> str:
    """RQ's description of a call of `func` with one argument (`rq.utils.get_call_string`: the
    argument's repr, cut after 75 characters)."""
    text = repr(arg)
    return f"{func}({text[:75] + '...' if len(text) > 75 else text})"


class RQJobQueue:
    """Enqueue onto RQ with job ids unique per outbox attempt (a re-enqueue of the same attempt is
    harmless: the job claims its row before sending)."""

    def __init__(self, redis_client):
        self.redis = redis_client
        self.queues = {name: Queue(name, connection=redis_client) for name in QUEUE_NAMES}
        self.outbox_jobs = OutboxJobHashes(self.queues[URGENT])

    def enqueue(self, queue_name: str, func: str, *args, job_id: str | None = None, **kwargs):
        return self.queues[queue_name].enqueue(func, *args, job_id=job_id, result_ttl=RESULT_TTL,
                                               failure_ttl=FAILURE_TTL, **kwargs)

    def enqueue_outbox(self, outbox_id: int, attempt: int) -> None:
        self.enqueue(URGENT, DELIVER_ROW, outbox_id, job_id=f"outbox-{outbox_id}-{attempt}")

    def enqueue_outbox_many(self, rows: list[tuple[int, int]], also: list[tuple] = ()) -> None:
        """The outbox rows of one transaction (a case's notices, a notice's pushes) in one Redis round
        trip and one job: a single row is `enqueue_outbox`'s job; several are one `deliver_outbox_rows`
        job, which delivers each row in turn (one failing row does not stop the others; each row's
        claim makes a repeat harmless), with a timeout of `ROW_TIMEOUT` per row. `also`: Redis commands
        of the transaction sent in the same round trip (its rate-limit counts, `ratelimit.count_new`)."""
        pipe = self.redis.pipeline()
        for command in also:
            pipe.execute_command(*command)
        if len(rows) == 1:
            (outbox_id, attempt), = rows
            self.outbox_jobs.add(pipe, DELIVER_ROW, f"outbox-{outbox_id}-{attempt}", (outbox_id,),
                                 f"{DELIVER_ROW}({outbox_id})", ROW_TIMEOUT)
        elif rows:
            (first_id, first_attempt), ids = rows[0], [outbox_id for outbox_id, _ in rows]
            self.outbox_jobs.add(pipe, DELIVER_ROWS, f"outbox-{first_id}-{first_attempt}-rows-{len(rows)}",
                                 (ids,), call_description(DELIVER_ROWS, ids), ROW_TIMEOUT * len(rows))
        pipe.execute()


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

    def enqueue_outbox_many(self, rows: list[tuple[int, int]], also: list[tuple] = ()) -> None:
        from liaison.core import ratelimit

        ratelimit.send_pending(list(also))
        for outbox_id, attempt in rows:
            self.enqueue_outbox(outbox_id, attempt)

    def join(self) -> None:
        """Wait until every queued job ran (tests and the CLI use it)."""
        self._queue.join()


_current = None


def install(settings: Settings, redis_client=None):
    """Create this process's queue and make every committed outbox row go to it at once."""
    global _current
    from liaison.core import db, ratelimit, tenant
    from liaison.messaging import outbox

    _current = RQJobQueue(redis_client) if redis_client is not None else LocalJobQueue()

    def kick(session) -> None:
        fresh = outbox.fresh_rows(session)
        counts = ratelimit.take_pending(session.info)
        if not fresh and not counts:
            return
        try:
            _current.enqueue_outbox_many(fresh, counts)
        except Exception as error:  # Redis down: the scheduler's relay sweep hands them over later
            if isinstance(error, REDIS_ERRORS):  # expected in an outage: one line, not a traceback
                log.warning("could not enqueue %d outbox row(s) now (%s); the relay sweep will",
                            len(fresh), type(error).__name__)
            else:
                log.warning("could not enqueue outbox rows now; the relay sweep will", exc_info=True)
            # Rows whose job did get in are harmless to hand back: the job claims before sending.
            # (The rate-limit counts sent with them are lost, as with a storage outage in `hit`.)
            if not fresh:
                return
            with tenant.use(tenant.all_counties("hand outbox rows back to the relay")), \
                    db.session_scope() as relay_session:
                outbox.back_to_pending(relay_session, [i for i, _ in fresh])

    db.clear_after_commit_hooks()
    db.on_after_commit(kick)
    ratelimit.send_counts_after_commit()  # `kick` sends them with the transaction's jobs
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
