"""Outbox delivery under faults: duplicate jobs, a worker SIGKILLed mid-send, jobs lost with Redis,
WeChat's error codes. Nothing lost, nothing sent twice."""
from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from jobs import queues
from liaison import db, delivery, outbox
from liaison.models import DeliveryAttempt, OutboxMessage, Resident, utcnow
from tests.conftest import WorkerProcess, settings_env, wait_for

CUSTOM_SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def runtime(settings):
    from liaison import runtime as rt

    configured = rt.configure(settings)
    queues.install(settings, configured.redis)
    return configured


def make_message(text="您的诉求已办结", openid="o_outbox", last_message_ago=timedelta(minutes=5)):
    with db.session_scope() as session:
        resident = Resident(oa_openid=openid, last_message_at=utcnow() - last_message_ago)
        session.add(resident)
        session.flush()
        row = outbox.add(session, "resident_text", f"test:{openid}:{text}", {"text": text},
                         resident_id=resident.id)
        return row.id


def row(outbox_id) -> OutboxMessage:
    with db.session_scope() as session:
        return session.get(OutboxMessage, outbox_id)


def test_a_duplicated_job_sends_once(runtime, fake_wechat):
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "sent"
    assert delivery.deliver(outbox_id) == "skipped"
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1
    assert row(outbox_id).status == "sent"


def test_concurrent_duplicate_jobs_send_once(runtime, fake_wechat):
    from concurrent.futures import ThreadPoolExecutor

    outbox_id = make_message()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: delivery.deliver(outbox_id), range(4)))
    assert sorted(results) == ["sent", "skipped", "skipped", "skipped"]
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1


def test_window_closed_waits_instead_of_sending(runtime, fake_wechat):
    outbox_id = make_message(last_message_ago=timedelta(hours=49))
    assert delivery.deliver(outbox_id) == "waiting"
    assert fake_wechat.calls(CUSTOM_SEND) == []


def test_45015_falls_back_to_waiting(runtime, fake_wechat):
    fake_wechat.fail_next(CUSTOM_SEND, 45015, "response out of time limit")
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "waiting"
    with db.session_scope() as session:
        attempts = session.scalars(select(DeliveryAttempt)).all()
        assert [(a.ok, a.errcode) for a in attempts] == [(False, 45015)]


def test_http_500_retries_with_backoff_and_then_sends(runtime, fake_wechat):
    fake_wechat.fail_next_http(CUSTOM_SEND, 500)
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "failed"
    failed = row(outbox_id)
    assert failed.next_attempt_at > utcnow()
    enqueued = []
    with db.session_scope() as session:
        assert outbox.relay_due(session, lambda i, a: enqueued.append(i)) == 0  # not due yet
        assert outbox.relay_due(session, lambda i, a: enqueued.append(i),
                                now=utcnow() + timedelta(minutes=1)) == 1
    assert delivery.deliver(outbox_id) == "sent"
    assert len([c for c in fake_wechat.calls(CUSTOM_SEND) if c.get("errcode") in (0, None)]) >= 1
    assert row(outbox_id).attempts == 2


def test_retries_are_bounded(runtime, fake_wechat):
    fake_wechat.fail_next_http(CUSTOM_SEND, 502, times=100)
    outbox_id = make_message()
    for _ in range(outbox.MAX_ATTEMPTS):
        with db.session_scope() as session:
            outbox.relay_due(session, lambda i, a: None, now=utcnow() + timedelta(days=1))
        delivery.deliver(outbox_id)
    assert row(outbox_id).status == "dead"
    assert len(fake_wechat.calls(CUSTOM_SEND)) == outbox.MAX_ATTEMPTS


def test_45009_backs_off(runtime, fake_wechat):
    fake_wechat.fail_next(CUSTOM_SEND, 45009, "reach max api daily quota limit")
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "failed"
    assert row(outbox_id).next_attempt_at > utcnow() + timedelta(minutes=5)


def test_jobs_lost_with_redis_are_relayed_again(runtime, fake_wechat, redis_client, settings):
    outbox_id = make_message()  # the commit hook enqueued it on RQ
    assert Queue(queues.URGENT, connection=redis_client).count == 1
    redis_client.flushdb()  # Redis restarted without persistence: the job is gone
    with db.session_scope() as session:
        assert outbox.relay_due(session, queues.current_queue().enqueue_outbox) == 0  # lease still valid
        later = utcnow() + outbox.ENQUEUE_LEASE + timedelta(seconds=1)
        assert outbox.relay_due(session, queues.current_queue().enqueue_outbox, now=later) == 1
    worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    try:
        wait_for(lambda: row(outbox_id).status == "sent", message="relayed job delivered")
    finally:
        worker.stop()
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1


def test_worker_killed_mid_send_never_sends_twice(runtime, fake_wechat, settings):
    fake_wechat.delay_next(CUSTOM_SEND, 3.0)
    worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    outbox_id = make_message()
    wait_for(lambda: fake_wechat.calls(CUSTOM_SEND), message="the send to start")
    worker.kill(signal.SIGKILL)  # the whole process group: worker and work horse
    assert row(outbox_id).status == "sending"
    # The scheduler's sweep, after the lease: the row is flagged, not sent again.
    with db.session_scope() as session:
        outbox.relay_due(session, queues.current_queue().enqueue_outbox,
                         now=utcnow() + outbox.SEND_LEASE + timedelta(seconds=1))
    assert row(outbox_id).status == "unknown"
    second = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    try:
        time.sleep(1.0)  # give a (wrongly) re-enqueued job the chance to run
    finally:
        second.stop()
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1
    # An operator who checked that it did not arrive can send it again, once.
    with db.session_scope() as session:
        assert outbox.requeue(session, outbox_id)
    assert delivery.deliver(outbox_id) == "sent"
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 2


def test_worker_killed_before_claiming_loses_nothing(runtime, fake_wechat, redis_client, settings):
    outbox_id = make_message()  # enqueued, no worker running yet
    assert row(outbox_id).status == "enqueued"
    worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    try:
        wait_for(lambda: row(outbox_id).status == "sent", message="delivery")
    finally:
        worker.stop()
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1
