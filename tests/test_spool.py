"""The webhook's spool while the database cannot be written: answer, keep, replay in order, once.

The outage is real (the engine points at a port where nothing listens); the test with a real
PostgreSQL server stopped and started under load is tests/test_fault_postgres.py.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from liaison.case.models import Case
from liaison.conversation import spool
from liaison.core import db
from liaison.messaging.models import InboundMessage, OutboxMessage

CASE_NUMBER = re.compile(r"\d{4}-\d{6}")
DOWN_URL = "postgresql+psycopg://postgres@127.0.0.1:1/unreachable"


def count(model) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def outage(clean_db):
    """Call `outage.start()` / `outage.end()`; the database is back when the test ends."""
    class Outage:
        def start(self):
            db.init_engine(DOWN_URL)

        def end(self):
            db.init_engine(clean_db)

    yield Outage()
    db.init_engine(clean_db)


def replay(redis_client) -> int:
    return spool.replay(redis_client, join_window=timedelta(minutes=10))


def test_a_delivery_during_an_outage_is_answered_spooled_once_and_replayed_once(
        simulator, outage, redis_client):
    xml = simulator.build_text("o_outage", "公司拖欠我们工资三个月了")
    outage.start()
    replies = simulator.deliveries(xml, n=3) + simulator.deliveries(xml, n=2, concurrent=True)
    assert all(r.ok and r.content == spool.RECEIVED_TEXT for r in replies), [r.raw for r in replies]
    assert len(spool.Spool(redis_client)) == 1
    assert replay(redis_client) == 0  # still down: nothing lost, nothing stored
    outage.end()
    assert replay(redis_client) == 1
    assert len(spool.Spool(redis_client)) == 0 and not redis_client.hlen(spool.WAITING)
    assert count(Case) == 1 and count(InboundMessage) == 1
    with db.session_scope() as session:
        number = session.scalar(select(Case.number))
        sent = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resident_text")).all()
        assert len(sent) == 1 and number in sent[0].payload["text"]  # the answer follows
    after = simulator.deliveries(xml, n=1)[0]  # a retry after the replay finds the stored reply
    assert number in after.content
    assert replay(redis_client) == 0 and count(Case) == 1 and count(InboundMessage) == 1


def test_replay_keeps_each_residents_order_and_queues_new_messages_behind_waiting_ones(
        simulator, outage, redis_client):
    outage.start()
    assert simulator.send_text("o_order", "楼下饭店油烟太大，熏得窗户都不敢开").content == spool.RECEIVED_TEXT
    simulator.send_text("o_other", "公司拖欠我们工资三个月了")
    outage.end()
    # the database is back, but o_order still has a message waiting: this one queues behind it
    assert simulator.send_text("o_order", "每天晚上十点以后还在营业").content == spool.RECEIVED_TEXT
    live = simulator.send_text("o_fresh", "学校门口交通拥堵，孩子上学不安全")
    assert CASE_NUMBER.search(live.content)  # residents with nothing waiting are answered at once
    assert replay(redis_client) == 3
    with db.session_scope() as session:
        texts = session.scalars(select(Case.text).order_by(Case.id)).all()
    assert len(texts) == 3
    assert "楼下饭店油烟太大，熏得窗户都不敢开\n每天晚上十点以后还在营业" in texts


def test_events_during_an_outage_get_success_and_their_answer_later(simulator, outage, redis_client):
    outage.start()
    reply = simulator.send_event("o_scan_late", "SCAN", event_key="grid:G002")
    assert reply.is_ack
    outage.end()
    assert replay(redis_client) == 1
    with db.session_scope() as session:
        sent = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resident_text")).all()
        assert len(sent) == 1 and "李秀英" in sent[0].payload["text"]


def test_a_delivery_that_did_reach_the_database_is_not_stored_twice(simulator, redis_client):
    """The commit went through but the answer was lost (connection dropped): spool and store both."""
    from datetime import datetime, timezone

    from liaison.conversation import service as inbox

    reply = simulator.send_text("o_ambiguous", "公司拖欠我们工资三个月了", msg_id=4242)
    assert CASE_NUMBER.search(reply.content)
    incoming = inbox.Incoming(openid="o_ambiguous", msg_type="text", create_time=1, msg_id="4242",
                              content="公司拖欠我们工资三个月了")
    assert spool.Spool(redis_client).put(incoming, received_at=datetime.now(timezone.utc))
    assert replay(redis_client) == 1
    assert count(Case) == 1 and count(InboundMessage) == 1
    assert count(OutboxMessage) >= 1  # the stored reply goes out: the resident saw only "received"


def test_a_delivery_the_domain_refuses_on_replay_does_not_block_the_others(simulator, outage, redis_client):
    from datetime import datetime, timezone

    from liaison.conversation import service as inbox

    outage.start()
    simulator.send_text("o_first", "公司拖欠我们工资三个月了")
    outage.end()
    broken = inbox.Incoming(openid="o_broken", msg_type="text", create_time=1, msg_id="1" * 200,
                            content="x")  # a dedup key longer than its column
    box = spool.Spool(redis_client)
    box.put(broken, received_at=datetime.now(timezone.utc))
    box.redis.lmove(spool.QUEUE, spool.QUEUE, "RIGHT", "LEFT")  # make it the oldest
    assert replay(redis_client) == 1
    assert count(Case) == 1 and len(box) == 0 and redis_client.llen(spool.DEAD) == 1


def test_spooled_deliveries_survive_encoding():
    from datetime import datetime, timezone

    from liaison.conversation import service as inbox

    incoming = inbox.Incoming(openid="o_x", msg_type="event", create_time=5, event="subscribe_msg_popup_event",
                              subscriptions=(("tpl", "accept"),),
                              report=inbox.MassJobReport(msg_id=7, status="send success", total=3))
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert spool.decode(spool.encode(incoming, when)) == (incoming, when)
