"""`db.run` (a Core statement straight to the driver), `db.adopt` and `db.fetch` (rows made persistent
objects without the ORM's load): the same values, types, errors and scope as SQLAlchemy's own
execution and `session.get`."""
from __future__ import annotations

from datetime import timedelta, timezone
from functools import lru_cache

import pytest
from sqlalchemy import bindparam, create_engine, event, insert, inspect, literal, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from liaison.case.models import Case
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident


@lru_cache(maxsize=1)
def _push_row():
    table = OutboxMessage.__table__
    return insert(table).values(
        kind=bindparam("kind", type_=table.c.kind.type), dedup_key=bindparam("key", type_=table.c.dedup_key.type),
        payload=bindparam("payload", type_=table.c.payload.type), status=literal("pending"), attempts=literal(0),
        next_attempt_at=bindparam("at", type_=table.c.next_attempt_at.type),
        created_at=bindparam("at2", type_=table.c.created_at.type),
    ).returning(table.c.id, table.c.payload, table.c.created_at, table.c.status)


def _row(key: str, at) -> dict:
    return {"kind": "account_push", "key": key, "payload": {"text": "你好", "n": [1, 2]}, "at": at, "at2": at}


def test_rows_and_types_are_those_of_sqlalchemy(demo_db):
    at = utcnow().astimezone(timezone(timedelta(hours=8)))  # not UTC: the column type makes it UTC
    with tenant.use(tenant.county(1)), db.session_scope() as session:
        ((row_id, payload, created_at, status),) = db.run(session, _push_row(), _row("drv:1", at))
        assert payload == {"text": "你好", "n": [1, 2]} and status == "pending"
        assert created_at == at and created_at.tzinfo == timezone.utc  # UTCDateTime's result processing
        same = session.connection().execute(_push_row(), _row("drv:2", at)).one()
        assert (same[1], same[2].tzinfo) == (payload, created_at.tzinfo)
    with db.session_scope() as session:  # committed with the session's transaction
        assert session.get(OutboxMessage, row_id).dedup_key == "drv:1"


def test_listeners_see_the_statement_and_a_missing_parameter_is_refused(demo_db):
    seen = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.get_engine(), "before_cursor_execute", listen)
    try:
        with tenant.use(tenant.county(1)), db.session_scope() as session:
            db.run(session, _push_row(), _row("drv:3", utcnow()))
            with pytest.raises(ValueError, match="at2"):
                db.run(session, _push_row(), {k: v for k, v in _row("drv:4", utcnow()).items() if k != "at2"})
    finally:
        event.remove(db.get_engine(), "before_cursor_execute", listen)
    assert any("INSERT INTO outbox" in statement for statement in seen)


def test_a_driver_error_is_sqlalchemys_with_the_parameters_hidden(demo_db):
    with tenant.use(tenant.county(1)), db.session_scope() as session:
        db.run(session, _push_row(), _row("drv:5", utcnow()))
    with pytest.raises(IntegrityError) as raised, tenant.use(tenant.county(1)), db.session_scope() as session:
        db.run(session, _push_row(), _row("drv:5", utcnow()))  # the same dedup key
    # As SQLAlchemy's own error: the parameters hidden (the server's own detail names the key).
    assert "SQL parameters hidden" in str(raised.value) and "你好" not in str(raised.value)


def test_a_lost_connection_is_reported_invalidated(demo_db):
    """As SQLAlchemy's own execution: the webhook's retry on a fresh connection depends on it."""
    with pytest.raises(DBAPIError) as raised, tenant.use(tenant.county(1)), db.session_scope() as session:
        pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer = create_engine(db.get_engine().url)
        with killer.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        db.run(session, _push_row(), _row("drv:6", utcnow()))
    assert raised.value.connection_invalidated
    with tenant.use(tenant.county(1)), db.session_scope() as session:  # the pool gives a live one
        assert db.run(session, _push_row(), _row("drv:7", utcnow()))


def test_adopted_rows_are_persistent_objects_without_history(demo_db):
    from liaison.case import service as cases

    with tenant.use(tenant.county(1)), db.session_scope() as session:
        resident = Resident(oa_openid="o_drv_a", window_used=0)
        session.add(resident)
        session.flush()
        case_id = cases.open_case(session, resident, "幸福里小区路灯坏了").id
    with tenant.use(tenant.county(1)), db.session_scope() as session:
        case = db.fetch(session, Case, case_id)
        state = inspect(case)
        assert state.persistent and not state.modified and not state.expired_attributes
        assert db.fetch(session, Case, case_id) is case  # the session's own object once it holds it
        with Session(db.get_engine()) as other:  # the same row loaded by the ORM
            loaded = other.get(Case, case_id)
            assert {c.key: getattr(case, c.key) for c in Case.__table__.columns} == {
                c.key: getattr(loaded, c.key) for c in Case.__table__.columns}
        assert case.resident is not None and case.resident.id == case.resident_id  # relationships load
        case.summary = "改过"
        assert case in session.dirty
    with db.session_scope() as session:
        assert session.get(Case, case_id).summary == "改过"


def test_fetch_names_the_scope_counties(demo_db):
    """A row of another county is not fetched, whatever the row-level policies would do."""
    from liaison.tenancy import service as tenancy

    with tenant.use(tenant.all_counties("test set-up")), db.session_scope() as session:
        other = tenancy.add_county(session, "yixian_driver", "乙县").id
    with tenant.use(tenant.county(other)), db.session_scope() as session:
        resident = Resident(oa_openid="o_drv_b", window_used=0)
        session.add(resident)
        session.flush()
        foreign = resident.id
    with tenant.use(tenant.county(1)), db.session_scope() as session:
        assert db.fetch(session, Resident, foreign) is None
    with tenant.use(tenant.county(other)), db.session_scope() as session:
        assert db.fetch(session, Resident, foreign).oa_openid == "o_drv_b"


def test_off_postgresql_it_is_sqlalchemys_execution(tmp_path):
    """The embedded default (SQLite): the same calls give the same rows, and a statement that
    returns none gives []."""
    from liaison.core.db import Base

    engine = create_engine(f"sqlite:///{tmp_path / 'run.db'}")
    Base.metadata.create_all(engine, tables=[OutboxMessage.__table__])
    plain = insert(OutboxMessage.__table__).values(
        kind=bindparam("kind"), dedup_key=bindparam("key"), payload=bindparam("payload"), status=literal("pending"),
        attempts=literal(0), next_attempt_at=bindparam("at"), created_at=bindparam("at2"), county_id=literal(1))
    at = utcnow()
    with Session(engine) as session:
        assert db.run(session, plain, _row("drv:s1", at)) == []
        table = OutboxMessage.__table__
        returning = plain.returning(table.c.id, table.c.payload, table.c.created_at, table.c.status)
        ((row_id, payload, created_at, status),) = db.run(session, returning, _row("drv:s2", at))
        assert payload == {"text": "你好", "n": [1, 2]} and status == "pending" and created_at == at
    engine.dispose()
