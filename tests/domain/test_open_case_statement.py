"""Opening a case on PostgreSQL writes the case and its first timeline entries with one statement
(no flush of their own) and leaves them in the session as a flush would: persistent, every column
loaded, the entries' ids in the timeline's order, later changes written as UPDATEs."""
from __future__ import annotations

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent
from liaison.core import db
from liaison.people.models import Resident
from tests.domain.test_cases import resident  # noqa: F401 - the fixture: one resident's id


def _columns(obj) -> dict:
    return {prop.key: getattr(obj, prop.key) for prop in inspect(obj).mapper.column_attrs}


def test_the_case_and_its_first_entries_are_one_statement_and_persistent(resident):
    with db.session_scope() as session:  # the process's first case loads the registry (an autoflush)
        cases.open_case(session, session.get(Resident, resident), "和平路的井盖丢了")
    statements, flushed = [], []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def flush(session, context):
        flushed.append([type(obj).__name__ for obj in session.new])

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    event.listen(Session, "after_flush", flush)
    try:
        with db.session_scope() as session:
            case = cases.open_case(session, session.get(Resident, resident), "幸福里小区路灯坏了")
            writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "WITH"))]
            case_writes = [s for s in writes if "INSERT INTO cases" in s]
            assert len(case_writes) == 1 and "INSERT INTO case_events" in case_writes[0]
            assert not any("Case" in names or "CaseEvent" in names for names in flushed)
            assert inspect(case).persistent and case not in session.new and case not in session.dirty
            entries = sorted(case.events, key=lambda entry: entry.id)
            assert [entry.action for entry in entries] == ["submit", "assign"]
            assert all(inspect(entry).persistent and entry.case_id == case.id for entry in entries)
            opened = _columns(case)
            timeline = [_columns(entry) for entry in entries]
            assert opened["number"].startswith(f"{case.created_at.year}-") and opened["county_id"]
            case.summary = "路灯"  # a change after opening is an UPDATE of the written row
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(Session, "after_flush", flush)
    assert opened.pop("summary") is None
    with db.session_scope() as session:
        stored = session.get(Case, opened["id"])
        assert stored.summary == "路灯"
        changed = {"summary", "updated_at"}  # the UPDATE's own columns
        assert {key: value for key, value in _columns(stored).items() if key not in changed} == {
            key: value for key, value in opened.items() if key not in changed}
        rows = session.scalars(select(CaseEvent).where(CaseEvent.case_id == stored.id)
                               .order_by(CaseEvent.id)).all()
        assert [_columns(row) for row in rows] == timeline
