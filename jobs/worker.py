"""`python -m jobs.worker`: an RQ worker on the urgent, default and bulk queues (in that priority).

It rides out a Redis outage instead of exiting (RQ's own loop quits on "unhandled exception" when a
Redis call fails outside its dequeue, e.g. while a job runs): it starts while Redis is down, waits for
it with bounded backoff, and re-enters RQ's work loop when it is back. A job dequeued just before the
outage is put back on its queue once Redis answers; that is safe because every job is idempotent (an
outbox job claims its row before sending, so a second run does nothing). Jobs lost with Redis itself
are the outbox relay's: it hands over rows whose enqueue lease expired.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job

from jobs.redis_link import MAX_DELAY, REDIS_ERRORS, RedisLink, wait_for_redis

log = logging.getLogger(__name__)


class _QuietRetries(logging.Filter):
    """RQ logs every failed reconnection in its dequeue loop; RedisLink already said Redis is away."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "could not connect to Redis instance" not in record.getMessage()


class OutageTolerantWorker(Worker):
    """An RQ Worker whose Redis bookkeeping survives an outage.

    Heartbeats are best effort; a Redis error while a job runs or finishes no longer ends the work loop;
    the interrupted job is remembered and requeued when Redis is back. RQ's dequeue loop already
    retries on connection errors; its wait is capped at MAX_DELAY so the worker notices Redis soon.
    """

    max_connection_wait_time = MAX_DELAY

    def __init__(self, *args, link: RedisLink, stop: threading.Event | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.link = link
        self.stop = stop or threading.Event()  # set by `run`'s own handler, before RQ installs its
        self.interrupted: list[tuple[Job, Queue, Execution | None]] = []
        self._started: Execution | None = None  # the execution RQ recorded for the running job

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None:  # part of a caller's pipeline: the caller sees the error
            return super().heartbeat(timeout, pipeline=pipeline)
        try:
            super().heartbeat(timeout)
        except REDIS_ERRORS as error:
            self.link.lost(error)  # the dequeue that follows waits for Redis
            return None
        self._reconnected()
        return None

    def set_state(self, state, pipeline=None):
        if pipeline is not None:
            return super().set_state(state, pipeline=pipeline)
        try:
            super().set_state(state)
        except REDIS_ERRORS as error:  # RQ's dashboards miss one state change; the work goes on
            self.link.lost(error)
        return None

    def maintain_heartbeats(self, job, execution):
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_ERRORS as error:  # keep waiting for the horse; it needs PostgreSQL, not Redis
            self.link.lost(error)

    def check_for_suspension(self, burst):
        try:
            super().check_for_suspension(burst)
        except REDIS_ERRORS as error:
            self.link.lost(error)

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except REDIS_ERRORS as error:
            self.link.lost(error)

    def set_shutdown_requested_date(self):
        try:
            super().set_shutdown_requested_date()
        except REDIS_ERRORS as error:  # a warm shutdown during an outage still waits for the horse
            self.link.lost(error)

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        if self.stop.is_set():
            # A SIGTERM that came while RQ was starting (after `run` set its handler, before RQ set
            # its own) was only noted in `stop`; RQ's loop never looks there and would work on for
            # ever. Stop before the first dequeue instead.
            self._stop_requested = True

    def prepare_execution(self, job):
        self._started = None
        execution = super().prepare_execution(job)
        self._started = execution
        return execution

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        except REDIS_ERRORS as error:
            # The job may not have run at all (its horse could not start its bookkeeping), or it ran
            # and only RQ's record of the outcome failed. Running it again is harmless; losing it is not.
            self.link.lost(error)
            self.interrupted.append((job, queue, self._started))
            self.executions.clear()
            self._horse_pid = 0

    def _reconnected(self) -> None:
        self.link.back()
        while self.interrupted:
            job, queue, execution = self.interrupted[0]
            try:
                if execution is not None:  # else RQ's registry cleaning would fail the requeued job later
                    with self.connection.pipeline() as pipeline:
                        self.cleanup_execution(job, pipeline=pipeline, execution=execution)
                        pipeline.execute()
                queue.enqueue_job(job, at_front=True)
            except REDIS_ERRORS as error:
                self.link.lost(error)
                return
            self.interrupted.pop(0)
            log.info("requeued job %s, interrupted by the Redis outage", job.id)

    def teardown(self):
        try:
            super().teardown()
        except REDIS_ERRORS as error:  # nothing to unregister from a Redis that is away
            self.link.lost(error)


def run(connection, queue_names: list[str], stop: threading.Event | None = None) -> None:
    """Work until stopped (SIGTERM/SIGINT), through Redis outages: wait, then re-enter RQ's loop."""
    stop = stop or threading.Event()
    link = RedisLink("worker", log)
    logging.getLogger("rq.worker").addFilter(_QuietRetries())

    def request_stop(signum, frame):  # while waiting outside RQ's loop (RQ installs its own inside)
        stop.set()

    while not stop.is_set():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if not wait_for_redis(connection, link, stop):
            break
        worker = OutageTolerantWorker(queue_names, connection=connection, link=link, stop=stop)
        try:
            worker.work(with_scheduler=False)
        except REDIS_ERRORS as error:  # Redis went away during RQ's start-up (registering the worker)
            link.lost(error)
            continue
        if worker._stop_requested or worker._shutdown_requested_date is not None:
            break
        # RQ left its loop without being asked to stop: a Redis error it treats as fatal. Start over.
        log.warning("worker %s left RQ's work loop; starting over once Redis answers", worker.name)


def main(argv: list[str] | None = None) -> int:
    from jobs.bootstrap import boot
    from jobs.queues import QUEUE_NAMES

    argv = sys.argv[1:] if argv is None else argv
    rt = boot()
    if rt.redis is None:
        print("REDIS_URL is not set: the embedded service runs its jobs in-process; no worker needed.",
              file=sys.stderr)
        return 2
    run(rt.redis, argv or list(QUEUE_NAMES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
