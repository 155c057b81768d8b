"""A delivery's resident on PostgreSQL: found or created by one statement, with what the delivery
sets on it (window, last contact), the model's defaults and the write county; a second delivery
finds the same row and is not treated as a first contact."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from liaison.conversation import service as conversation
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident

JOIN = timedelta(minutes=10)


def deliver(incoming, now):
    with db.session_scope() as session:
        return conversation.handle(session, incoming, join_window=JOIN, now=now)


def test_a_first_message_creates_its_resident_once_and_a_second_finds_it(demo_db):
    now = utcnow()
    first = conversation.Incoming(openid="o_intake_1", msg_type="text", create_time=1, msg_id="9100001",
                                  content="你好")
    deliver(first, now)
    deliver(conversation.Incoming(openid="o_intake_1", msg_type="text", create_time=2, msg_id="9100002",
                                  content="你好"), now + timedelta(seconds=5))
    with db.session_scope() as session:
        (resident,) = session.scalars(select(Resident).where(Resident.oa_openid == "o_intake_1")).all()
        assert resident.public_id and resident.created_at is not None and resident.subscribed
        assert resident.county_id == 1
        assert (resident.window_kind, resident.window_used) == ("message", 0)
        assert resident.last_message_at == now + timedelta(seconds=5)
        # First contact only once: one unionid lookup for this resident.
        asks = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "fetch_unionid", OutboxMessage.dedup_key == f"unionid:{resident.id}"))
        assert asks == 1


def test_a_first_event_creates_its_resident_with_the_event_window(demo_db):
    now = utcnow()
    deliver(conversation.Incoming(openid="o_intake_2", msg_type="event", create_time=3, event="subscribe"),
            now)
    with db.session_scope() as session:
        resident = session.scalar(select(Resident).where(Resident.oa_openid == "o_intake_2"))
        assert resident.last_event_at == now and resident.last_message_at is None
        assert resident.window_kind == "event" and resident.window_opened_at == now


def test_a_resident_of_another_county_is_not_taken_for_this_one(demo_db):
    """The lookup names the scope's counties itself: another county's row with the same openid is not
    this county's resident (its INSERT then fails on the unique openid, as before the one-statement
    lookup), and the other county's row is untouched."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from liaison.core import tenant
    from liaison.tenancy import service as tenancy

    with tenant.use(tenant.all_counties("test set-up")), db.session_scope() as session:
        other = tenancy.add_county(session, "yixian_intake", "乙县").id
    with tenant.use(tenant.county(other)), db.session_scope() as session:
        session.add(Resident(oa_openid="o_intake_3", window_used=0))
    with pytest.raises(IntegrityError):
        deliver(conversation.Incoming(openid="o_intake_3", msg_type="text", create_time=4, msg_id="9100004",
                                      content="你好"), utcnow())
    with tenant.use(tenant.all_counties("test check")), db.session_scope() as session:
        (resident,) = session.scalars(select(Resident).where(Resident.oa_openid == "o_intake_3")).all()
        assert resident.county_id == other and resident.last_message_at is None
