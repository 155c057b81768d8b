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
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging import delivery, outbox
from liaison.messaging.models import DeliveryAttempt, OutboxMessage
from liaison.people.models import Resident
from tests.conftest import unreachable_token_store_client, wait_for

CUSTOM_SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def runtime(settings):
    from liaison import runtime as rt

    configured = rt.configure(settings)
    queues.install(settings, configured.redis)
    return configured


def make_message(text="您的诉求已办结", openid="o_outbox", last_message_ago=timedelta(minutes=5)):
    """An outbox row for a resident who wrote `last_message_ago` (which opened a 48 h window)."""
    with db.session_scope() as session:
        wrote = utcnow() - last_message_ago
        resident = Resident(oa_openid=openid, last_message_at=wrote, window_kind="message",
                            window_opened_at=wrote, window_used=0)
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


def test_window_closed_uses_the_template_message(runtime, fake_wechat):
    outbox_id = make_message(last_message_ago=timedelta(hours=49))
    assert delivery.deliver(outbox_id) == "sent"
    assert fake_wechat.calls(CUSTOM_SEND) == []
    assert row(outbox_id).channel == "template"


def test_window_closed_and_no_template_waits_instead_of_sending(runtime, fake_wechat, monkeypatch):
    from liaison.messaging import channels

    monkeypatch.setitem(channels.config()["resident_templates"], "template", {})
    outbox_id = make_message(last_message_ago=timedelta(hours=49))
    assert delivery.deliver(outbox_id) == "waiting"
    assert fake_wechat.calls() == []


def test_45015_falls_back_to_the_next_channel(runtime, fake_wechat):
    fake_wechat.fail_next(CUSTOM_SEND, 45015, "response out of time limit")
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "sent"
    assert row(outbox_id).channel == "template"
    assert len(fake_wechat.calls("/cgi-bin/message/template/send")) == 1
    with db.session_scope() as session:
        attempts = session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
        assert [(a.channel, a.ok, a.errcode) for a in attempts] == [("custom", False, 45015),
                                                                    ("template", True, None)]
        # WeChat said the window is closed: the next message does not try it again.
        assert session.scalar(select(Resident)).window_kind is None


def test_45015_with_no_other_channel_waits_for_a_window(runtime, fake_wechat, monkeypatch):
    from liaison.messaging import channels

    monkeypatch.setitem(channels.config()["resident_templates"], "template", {})
    fake_wechat.fail_next(CUSTOM_SEND, 45015, "response out of time limit")
    outbox_id = make_message()
    assert delivery.deliver(outbox_id) == "waiting"


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


def test_jobs_lost_with_redis_are_relayed_again(runtime, fake_wechat, redis_client, spawn_worker):
    outbox_id = make_message()  # the commit hook enqueued it on RQ
    assert Queue(queues.URGENT, connection=redis_client).count == 1
    redis_client.flushdb()  # Redis restarted without persistence: the job is gone
    with db.session_scope() as session:
        assert outbox.relay_due(session, queues.current_queue().enqueue_outbox) == 0  # lease still valid
        later = utcnow() + outbox.ENQUEUE_LEASE + timedelta(seconds=1)
        assert outbox.relay_due(session, queues.current_queue().enqueue_outbox, now=later) == 1
    spawn_worker()
    wait_for(lambda: row(outbox_id).status == "sent", message="relayed job delivered")
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1


def test_worker_killed_mid_send_never_sends_twice(runtime, fake_wechat, spawn_worker):
    fake_wechat.delay_next(CUSTOM_SEND, 3.0)
    worker = spawn_worker()
    outbox_id = make_message()
    wait_for(lambda: fake_wechat.calls(CUSTOM_SEND), message="the send to start")
    worker.kill(signal.SIGKILL)  # the whole process group: worker and work horse
    assert row(outbox_id).status == "sending"
    # The scheduler's sweep, after the lease: the row is flagged, not sent again.
    with db.session_scope() as session:
        outbox.relay_due(session, queues.current_queue().enqueue_outbox,
                         now=utcnow() + outbox.SEND_LEASE + timedelta(seconds=1))
    assert row(outbox_id).status == "unknown"
    spawn_worker()
    time.sleep(1.0)  # give a (wrongly) re-enqueued job the chance to run
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1
    # An operator who checked that it did not arrive can send it again, once.
    with db.session_scope() as session:
        assert outbox.requeue(session, outbox_id)
    assert delivery.deliver(outbox_id) == "sent"
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 2


def test_worker_killed_before_claiming_loses_nothing(runtime, fake_wechat, redis_client, spawn_worker):
    outbox_id = make_message()  # enqueued, no worker running yet
    assert row(outbox_id).status == "enqueued"
    spawn_worker()
    wait_for(lambda: row(outbox_id).status == "sent", message="delivery")
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1


def test_a_send_that_never_left_is_retried_not_marked_unknown(runtime, fake_wechat):
    """The claim is committed, then the access-token lookup fails (Redis unreachable): nothing can
    have reached WeChat, so the row is released for a normal retry (never `unknown`), the window
    slot it took goes back, and the retry sends it once."""
    outbox_id = make_message()
    assert delivery.deliver(outbox_id, client=unreachable_token_store_client(fake_wechat.base_url),
                            mini_client=None) == "failed"
    failed = row(outbox_id)
    assert failed.status == "failed" and failed.next_attempt_at > utcnow()
    assert "ConnectionError" in failed.last_error
    assert fake_wechat.calls(CUSTOM_SEND) == []
    with db.session_scope() as session:
        assert session.get(Resident, failed.resident_id).window_used == 0  # the slot was given back
        attempt = session.scalar(select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox_id))
        assert attempt.ok is False and attempt.channel == "custom"
        outbox.relay_due(session, lambda i, a: None, now=utcnow() + timedelta(minutes=1))
    assert delivery.deliver(outbox_id) == "sent"
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 1


def test_a_read_timeout_leaves_the_row_unknown(runtime, fake_wechat):
    """The request was on the wire when the read timed out: WeChat may have delivered it."""
    from liaison.wechat.client import WeChatClient
    from liaison.wechat.tokens import MemoryTokenStore
    from tests.conftest import APP_ID, APP_SECRET

    client = WeChatClient(APP_ID, APP_SECRET, base_url=fake_wechat.base_url, token_store=MemoryTokenStore(),
                          timeout=(1.0, 0.3))
    client.get_access_token()
    fake_wechat.delay_next(CUSTOM_SEND, 2)
    outbox_id = make_message()
    assert delivery.deliver(outbox_id, client=client, mini_client=None) == "unknown"
    assert row(outbox_id).lease_until is None
    with db.session_scope() as session:  # not handed to the queue again
        assert outbox.relay_due(session, lambda i, a: None, now=utcnow() + timedelta(days=1)) == 0


def test_a_token_fetch_timeout_is_not_taken_for_a_maybe_delivered_send(runtime, fake_wechat):
    """stable_token timing out says nothing about the message: it never left."""
    from liaison.wechat.client import WeChatClient
    from liaison.wechat.tokens import MemoryTokenStore
    from tests.conftest import APP_ID, APP_SECRET

    client = WeChatClient(APP_ID, APP_SECRET, base_url=fake_wechat.base_url, token_store=MemoryTokenStore(),
                          timeout=(1.0, 0.3))
    fake_wechat.delay_next("/cgi-bin/stable_token", 2)
    outbox_id = make_message()
    assert delivery.deliver(outbox_id, client=client, mini_client=None) == "failed"
    assert fake_wechat.calls(CUSTOM_SEND) == []


def test_a_window_reopened_while_sending_is_used_not_skipped(runtime):
    """The worker holds the resident as it was; the resident writes again (the spool replay stores a
    later message) and the window is reopened: the slot comes from the new window."""
    from liaison.messaging import channels

    outbox_id = make_message()
    with db.session_scope() as worker_session:
        resident = worker_session.get(Resident, row(outbox_id).resident_id)
        with db.session_scope() as writer:
            fresh = writer.get(Resident, resident.id)
            channels.open_window(fresh, "message", utcnow() + timedelta(seconds=1))
        assert channels.take_window_slot(worker_session, resident, now=utcnow() + timedelta(seconds=2))
        assert resident.window_used == 1
    with db.session_scope() as session:
        assert session.get(Resident, resident.id).window_used == 1


def test_a_spent_window_refuses_a_slot_even_after_a_reread(runtime):
    from liaison.messaging import channels

    outbox_id = make_message()
    with db.session_scope() as worker_session:
        resident = worker_session.get(Resident, row(outbox_id).resident_id)
        with db.session_scope() as writer:  # another worker spent the quota of the same window
            writer.get(Resident, resident.id).window_used = channels.config()["windows"]["message"]["quota"]
        assert not channels.take_window_slot(worker_session, resident)
