"""Operations: a real Redis restart while jobs wait, one scheduler at a time, sweeps run twice at once,
failed jobs listed and retried, Prometheus metrics."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from datetime import timedelta

import pytest
import redis as redis_lib
from rq import Queue
from sqlalchemy import func, select

from jobs import queues
from liaison import runtime
from liaison.case import sweep as timer_sweep
from liaison.case.models import CaseEvent
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging import outbox
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident
from tests.conftest import METRICS_TOKEN, WorkerProcess, settings_env, wait_for

CUSTOM_SEND = "/cgi-bin/message/custom/send"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server (no persistence, like production's) that a test may kill and restart."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, timeout=10, message="redis-server to start")
        return self

    def _up(self) -> bool:
        try:
            return redis_lib.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis_lib.ConnectionError:
            return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:  # scripts/test installs it; never skip silently
        pytest.fail("redis-server is not installed")
    server = RedisServer().start()
    yield server
    if server.proc.poll() is None:
        server.kill()


def make_message(openid: str) -> int:
    with db.session_scope() as session:
        now = utcnow()
        resident = Resident(oa_openid=openid, last_message_at=now, window_kind="message",
                            window_opened_at=now, window_used=0)
        session.add(resident)
        session.flush()
        return outbox.add(session, "resident_text", f"ops:{openid}", {"text": "您的诉求有新进展"},
                          resident_id=resident.id).id


def status(outbox_id: int) -> str:
    with db.session_scope() as session:
        return session.get(OutboxMessage, outbox_id).status


def relay(now=None) -> int:
    with db.session_scope() as session:
        return outbox.relay_due(session, queues.current_queue().enqueue_outbox, now=now)


def test_redis_restart_while_jobs_wait_loses_nothing(settings, fake_wechat, private_redis):
    import dataclasses

    settings = dataclasses.replace(settings, redis_url=private_redis.url)
    rt = runtime.configure(settings)
    queues.install(settings, rt.redis)
    waiting = make_message("o_restart_1")  # enqueued on RQ; no worker yet
    assert Queue(queues.URGENT, connection=rt.redis).count == 1

    private_redis.kill()  # Redis dies with the job in it...
    during = make_message("o_restart_2")  # ...and a commit while it is down cannot enqueue at all
    assert (status(waiting), status(during)) == ("enqueued", "pending")
    private_redis.start()  # back, empty (no persistence)
    assert Queue(queues.URGENT, connection=rt.redis).count == 0

    assert relay() == 1  # the pending row now; the lost job only after its enqueue lease
    # After the enqueue lease the lost job is handed again (and the other one a second time: its
    # duplicate job will find the row already claimed and do nothing).
    assert relay(now=utcnow() + outbox.ENQUEUE_LEASE + timedelta(seconds=1)) == 2
    env = settings_env(fake_wechat.base_url, REDIS_URL=private_redis.url)
    worker = WorkerProcess(env).start()
    try:
        wait_for(lambda: status(waiting) == status(during) == "sent", message="both delivered")
    finally:
        worker.stop()
    touser = sorted(c["json"]["touser"] for c in fake_wechat.calls(CUSTOM_SEND))
    assert touser == ["o_restart_1", "o_restart_2"]  # each exactly once


def test_only_one_scheduler_runs_sweeps(redis_client, monkeypatch):
    from jobs import scheduler

    runs: list[str] = []
    monkeypatch.setattr(scheduler, "default_sweeps",
                        lambda: [scheduler.Sweep("probe", 0, lambda: runs.append(threading.current_thread().name))])
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=scheduler.run_forever, args=(redis_client, stop, 0.01), name=f"s{i}")
               for i, stop in enumerate(stops)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(runs) > 20, message="sweeps to run")
    assert len(set(runs)) == 1  # one leader; the other waits on the lock
    leader = runs[0]
    stops[int(leader[1])].set()  # the leader stops and releases the lock: the other takes over
    other = f"s{1 - int(leader[1])}"
    wait_for(lambda: other in runs, timeout=15, message="the standby scheduler to take over")
    for stop in stops:
        stop.set()
    for thread in threads:
        thread.join(timeout=10)


PROBLEMS = ["路灯坏了", "下水道堵了", "垃圾没人清运", "楼道飞线充电", "噪音扰民", "停水三天",
            "道路坑洼", "违章搭建", "广场舞扰民", "电梯故障", "井盖丢失", "绿化带被毁"]


def test_two_sweeps_at_once_fire_each_timer_once(app, simulator, migrated_database):
    from liaison.case.models import Case
    from liaison.core import clock

    for i, problem in enumerate(PROBLEMS):
        simulator.send_text(f"o_sweep_{i}", f"幸福里小区{problem}")
    later = utcnow() + timedelta(days=40)  # every case: acceptance overdue, reminded, escalated thrice
    clock.set_clock(lambda: later)
    try:
        errors = []

        def sweep():
            try:
                with db.session_scope() as session:
                    timer_sweep.run_due(session, later, batch=3)
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        clock.set_clock(None)
    assert errors == []
    with db.session_scope() as session:
        per_case = session.execute(select(CaseEvent.case_id, CaseEvent.action, func.count())
                                   .where(CaseEvent.action.in_(("escalate", "accept_overdue")))
                                   .group_by(CaseEvent.case_id, CaseEvent.action)).all()
        case_count = session.scalar(select(func.count()).select_from(Case))
    assert case_count >= 6 and len({case for case, _, _ in per_case}) == case_count
    assert {(action, count) for _, action, count in per_case} == {("escalate", 3), ("accept_overdue", 1)}


def test_failed_jobs_are_listed_and_retried(settings, redis_client, fake_wechat):
    from jobs import ops

    rt = runtime.configure(settings)
    queues.install(settings, rt.redis)
    queues.current_queue().enqueue(queues.DEFAULT, "jobs.tasks.no_such_job", job_id="broken-1")
    worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    try:
        wait_for(lambda: ops.failed_jobs(redis_client), message="the job to fail")
    finally:
        worker.stop()
    rows = ops.failed_jobs(redis_client)
    assert [(q, j) for q, j, _ in rows] == [("default", "broken-1")] and "no_such_job" in rows[0][2]
    assert ops.retry_jobs(redis_client, ["broken-1"]) == 1
    assert ops.failed_jobs(redis_client) == []
    assert Queue(queues.DEFAULT, connection=redis_client).count == 1


def test_cli_lists_failed_jobs(settings, redis_client, fake_wechat):
    env = {**os.environ, **settings_env(fake_wechat.base_url)}
    out = subprocess.run(["python", "-m", "jobs.ops", "failed"], env=env, capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0 and "0 failed job(s)" in out.stdout


def test_prometheus_metrics(app, fake_wechat, settings):
    outbox_id = make_message("o_metrics")
    fake_wechat.fail_next(CUSTOM_SEND, 45009, "api freq out of limit")
    from liaison.messaging import delivery

    delivery.deliver(outbox_id)
    body = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'liaison_queue_length{queue="urgent"}' in body
    assert 'liaison_wechat_errors_total{channel="custom",errcode="45009"} 1.0' in body
    assert 'liaison_outbox_messages{status="failed"} 1.0' in body


def test_scheduler_forgets_stale_idempotency_keys(settings):
    """Stored POST answers are kept while a client may retry, then the hourly sweep drops them."""
    from jobs import tasks
    from liaison.people.models import IdempotencyKey

    assert "purge_idempotency_keys" in [name for name, _, _ in tasks.PERIODIC]
    with db.session_scope() as session:
        for key, age in (("fresh", timedelta(hours=1)), ("stale", timedelta(days=3))):
            session.add(IdempotencyKey(principal="resident:1", key=key, request_hash="h", status_code=200,
                                       response_body={}, created_at=utcnow() - age))
    assert tasks.purge_idempotency_keys() == 1
    with db.session_scope() as session:
        assert session.scalars(select(IdempotencyKey.key)).all() == ["fresh"]


def test_scheduler_recounts_the_statistics_summary(demo_db):
    """A committed case marks its day stale; the scheduler's recount replaces the day's counters and
    drops the mark; the statistics then read the summary and still count what the cases say."""
    from jobs import tasks
    from liaison.case import access
    from liaison.case import service as cases
    from liaison.console import ledger, summary
    from liaison.console import service as figures
    from liaison.console.models import DailyFigures
    from liaison.people import service as people

    assert "recount_console_summary" in [name for name, _, _ in tasks.PERIODIC]
    with db.session_scope() as session:
        resident = Resident(oa_openid="o_ops_summary")
        session.add(resident)
        session.flush()
        cases.open_case(session, resident, "幸福里小区的路灯坏了")
    with db.session_scope() as session:
        assert summary.stale_days(session)
    assert tasks.recount_console_summary() >= 1
    with db.session_scope() as session:
        assert summary.stale_days(session) == set()
        assert session.scalar(select(func.sum(DailyFigures.received_n))) == 1
        account, _ = people.create_account(session, people.STAFF, "县人大工委")
        scope = access.scope_of(session, people.Principal(people.STAFF, account=account))
        where = ledger.conditions(session, scope, {})
        assert figures.tally_summary(session, where, None)["all"].values() == \
            figures.tally_rows(session, where, None)["all"].values()
    assert tasks.recount_console_summary() == 0  # nothing changed since
