"""并单 on PostgreSQL (`cases.follow_case`) writes the follower row and the timeline entry with one
statement, no flush of theirs: the rows equal what the ORM path (the flush) stores, a resident who
follows already is not written again, and the rows are in the case's county."""
from __future__ import annotations

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from liaison.case import service as cases
from liaison.case.models import CaseEvent, CaseFollower
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.people.models import Resident
from liaison.tenancy import service as tenancy
from tests.domain.test_cases import open_case, resident  # noqa: F401 - the fixture: one resident's id


def _columns(obj) -> dict:
    return {prop.key: getattr(obj, prop.key) for prop in inspect(obj).mapper.column_attrs}


def _new_resident(openid: str) -> int:
    with db.session_scope() as session:
        person = Resident(oa_openid=openid)
        session.add(person)
        session.flush()
        return person.id


class Watch:
    """The statements sent and the classes of the rows each ORM flush wrote, while installed."""

    def __init__(self):
        self.statements: list[str] = []
        self.flushed: list[str] = []

    def _statement(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def _flush(self, session, context):
        self.flushed.extend(type(obj).__name__ for obj in session.new)

    def __enter__(self):
        event.listen(db.get_engine(), "before_cursor_execute", self._statement)
        event.listen(Session, "after_flush", self._flush)
        return self

    def __exit__(self, *exc):
        event.remove(db.get_engine(), "before_cursor_execute", self._statement)
        event.remove(Session, "after_flush", self._flush)

    def writes(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith(("INSERT", "WITH"))]


def _follow(resident_id: int, number: str, text: str, *, new_resident: bool = False) -> None:
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.follow_case(session, case, session.get(Resident, resident_id), text, new_resident=new_resident)


def _stored(number: str, resident_id: int) -> tuple[list[dict], list[dict]]:
    """(follower rows, follow entries) of the resident on the case, as stored."""
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        followers = session.scalars(select(CaseFollower).where(
            CaseFollower.case_id == case.id, CaseFollower.resident_id == resident_id)).all()
        entries = session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.action == "follow",
            CaseEvent.actor_id == resident_id).order_by(CaseEvent.id)).all()
        return [_columns(row) for row in followers], [_columns(row) for row in entries]


def test_following_is_one_statement_and_stores_what_the_flush_stores(resident, monkeypatch):
    number = open_case(resident, "幸福里小区路灯坏了")
    by_statement, by_flush = _new_resident("o_follow_2"), _new_resident("o_follow_3")
    before = utcnow()
    with Watch() as watch:
        with db.session_scope() as session:
            case = cases.case_by_number(session, number)
            status, county_id = case.status, case.county_id
            cases.follow_case(session, case, session.get(Resident, by_statement), "我家门口也不亮")
            assert not session.new and not session.dirty  # nothing left for a flush
            assert cases.handler_sentence(case)  # what the webhook answers with still reads the case
            # Read back in the same transaction: the follower (as `_is_party` asks) and the timeline.
            assert session.get(CaseFollower, (case.id, by_statement)) is not None
            assert [entry.action for entry in case.events][-1] == "follow"
    follows = [s for s in watch.writes() if "INSERT INTO case_followers" in s]
    assert len(follows) == 1 and "INSERT INTO case_events" in follows[0]
    assert not any(name in ("CaseFollower", "CaseEvent") for name in watch.flushed)

    # The ORM path (what SQLite and city staff's scope take) on the same case, for comparison.
    monkeypatch.setattr(cases.tenant, "writes_by_statement", lambda session: False)
    with Watch() as watch:
        _follow(by_flush, number, "我家门口也不亮")
    assert {"CaseFollower", "CaseEvent"} <= set(watch.flushed)
    monkeypatch.undo()

    (follower,), (entry,) = _stored(number, by_statement)
    (orm_follower,), (orm_entry,) = _stored(number, by_flush)
    own = {"id", "resident_id", "actor_id", "at", "created_at"}  # this resident's, this moment's
    assert {k: v for k, v in follower.items() if k not in own} == {
        k: v for k, v in orm_follower.items() if k not in own}
    assert {k: v for k, v in entry.items() if k not in own} == {
        k: v for k, v in orm_entry.items() if k not in own}
    assert follower["resident_id"] == entry["actor_id"] == by_statement
    assert entry == {**entry, "actor_kind": "resident", "action": "follow", "from_status": status,
                     "to_status": status, "detail": {"text": "我家门口也不亮"}, "county_id": county_id}
    assert before <= entry["at"] <= utcnow() and before <= follower["created_at"] <= utcnow()
    assert follower["county_id"] == county_id


def test_a_follower_is_written_once_and_a_new_resident_needs_no_lookup(resident):
    number = open_case(resident, "东关街的下水道堵了")
    other = _new_resident("o_follow_4")
    _follow(other, number, "东关街排水不畅", new_resident=True)  # as the webhook's first message
    with Watch() as watch:
        _follow(other, number, "还是堵着")  # follows already: only the timeline entry
    writes = watch.writes()
    assert not any("INSERT INTO case_followers" in s for s in writes)
    assert sum("INSERT INTO case_events" in s for s in writes) == 1
    assert not any(name in ("CaseFollower", "CaseEvent") for name in watch.flushed)
    followers, entries = _stored(number, other)
    assert len(followers) == 1
    assert [entry["detail"] for entry in entries] == [{"text": "东关街排水不畅"}, {"text": "还是堵着"}]


def test_the_rows_are_in_the_cases_county_when_several_are_visible(demo_db):
    """A worker's scope (every county, no write county): the rows belong where the case is, as the
    flush's tenant fill would put them."""
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        other_county = tenancy.add_county(session, "yixian", "乙县").id
    with tenant.use(tenant.county(other_county)):
        owner, follower = _new_resident("o_follow_b1"), _new_resident("o_follow_b2")
        number = open_case(owner, "乙县幸福里小区路灯坏了")
    with tenant.use(tenant.all_counties("follow across counties")):
        with Watch() as watch:
            _follow(follower, number, "我也看到了")
        assert not any(name in ("CaseFollower", "CaseEvent") for name in watch.flushed)
        (row,), (entry,) = _stored(number, follower)
        with db.session_scope() as session:
            assert cases.case_by_number(session, number).county_id == other_county
    assert row["county_id"] == entry["county_id"] == other_county != tenant.DEFAULT_COUNTY_ID
