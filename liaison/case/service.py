"""Case services: opening, routing and working a case. Every status change goes through `_transition`,
which checks the lifecycle table and writes the timeline entry and the side effects in the caller's
transaction.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (ColumnClause, ColumnElement, String, any_, bindparam, inspect, insert, literal, literal_column,
                        select, text, update)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached, object_session

from classifiers import get_classifier, route, signature, similarity, similarity_threshold
from liaison.case import lifecycle, notices, rules, timers
from liaison.case.lifecycle import IllegalTransition, Status
from liaison.case.models import Case, CaseCounter, CaseEvent, CaseFollower, Rating
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.db import autoflush, fetch, get_engine, insert_values
from liaison.core.db import run as db_run
from liaison.core.errors import NOT_FOUND, DomainError
from liaison.core.types import Actor, new_public_id
from liaison.core.workcalendar import add_working_days
from liaison.messaging import outbox
from liaison.messaging.texts import day, say
from liaison.people import directory
from liaison.people.models import Department, Deputy, Grid, Resident
from liaison.tenancy import service as tenancy
from liaison.wechat.privacy import mask

DEADLINES_FILE = Path(__file__).parent.parent / "data" / "deadlines.json"
RATING_VALUES = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
DUPLICATE_WINDOW = timedelta(days=7)


class NotFound(DomainError):
    """The referenced case does not exist (or is not visible to the caller). `what` names it for logs;
    the message is the caller's."""

    kind = NOT_FOUND
    code = "not_found"

    def __init__(self, what: str = "case", message: str = "诉求不存在"):
        super().__init__(message)
        self.what = what


@lru_cache(maxsize=1)
def _deadline_table() -> dict[str, Any]:
    return json.loads(DEADLINES_FILE.read_text(encoding="utf-8"))


def merged_deadlines(override: dict[str, Any] | None) -> dict[str, Any]:
    """The deployment's deadline table (`liaison/data/deadlines.json`) with a county's `deadlines`
    setting laid over it: the same shape, any part of it (`default` kinds, whole `categories`
    entries, `second_round`)."""
    table = _deadline_table()
    if not override:
        return table
    return {
        "default": {**table["default"], **(override.get("default") or {})},
        "categories": {**table["categories"], **(override.get("categories") or {})},
        "second_round": override.get("second_round", table["second_round"]),
    }


def county_deadlines(session: Session, county_id: int | None = None) -> dict[str, Any]:
    """The deadline table of county `county_id` (default: the one the session writes in)."""
    if county_id is None:
        county_id = tenant.of(session).write_county
    with session.no_autoflush:  # a case being opened has no deadline yet: do not flush it for this read
        settings = tenancy.county_settings(session, county_id) if county_id is not None else None
    return merged_deadlines((settings or {}).get("deadlines"))


def deadline_days(category: str | None, kind: str = "reply", table: dict[str, Any] | None = None) -> int:
    """Working days allowed for `kind` (accept | reply | finish) in `category`, by `table` (a county's,
    from `county_deadlines`; default: the deployment's)."""
    table = table or _deadline_table()
    limits = table["categories"].get(category or "", table["default"])
    return int(limits.get(kind, table["default"][kind]))


def case_deadline_days(session: Session, case: Case, kind: str = "reply") -> int:
    """`deadline_days` for `case`, by the deadline table of the case's county."""
    return deadline_days(case.category, kind, county_deadlines(session, case.county_id))


_pg_number_sequences: set[tuple[str, int]] = set()  # (database URL, year) known to exist


def next_case_number(session: Session, now: datetime) -> str | ColumnElement[str]:
    """The next human-readable number for the year, e.g. 2026-000123, as the value to give
    `Case.number`.

    On PostgreSQL each year has its own sequence (created on first use): `nextval` takes no row lock
    and needs no commit of its own, so concurrent requests never queue on a counter. A rolled-back
    request leaves a gap, which is harmless (numbers are unique, not dense). There the value is a SQL
    expression the case's INSERT evaluates, the number coming back with the row (RETURNING): no round
    trip of its own. The number can be read once the case is flushed. SQLite has a single writer
    anyway, so there a counter row is bumped inside the caller's transaction and the number is a
    string at once.
    """
    year = now.year
    if session.get_bind().dialect.name == "postgresql":
        name = f"case_number_{year:04d}"
        known = (str(session.get_bind().url), year)
        if known not in _pg_number_sequences:
            _create_sequence(name)
            _pg_number_sequences.add(known)
        # One nextval, padded to at least six digits like f"{value:06d}"; `year` is an int.
        return literal_column(
            f"(SELECT '{year:04d}-' || lpad(v::text, greatest(6, length(v::text)), '0')"
            f" FROM nextval('{name}') AS v)", String)
    bump = (update(CaseCounter).where(CaseCounter.year == year)
            .values(value=CaseCounter.value + 1).returning(CaseCounter.value))
    value = session.execute(bump).scalar_one_or_none()
    if value is None:
        session.execute(insert(CaseCounter).values(year=year, value=0).prefix_with("OR IGNORE"))
        value = session.execute(bump).scalar_one()
    return f"{year}-{value:06d}"


def _create_sequence(name: str) -> None:
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        try:
            connection.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {name}"))
        except DBAPIError:  # two processes creating it at the same instant: one wins, fine
            pass


def lead_deputy(session: Session, grid_id: int) -> Deputy | None:
    """The grid's lead (主) deputy, else any assisting deputy."""
    info = directory.get(session).lead_by_grid.get(grid_id)
    return session.get(Deputy, info.id) if info else None


def handler_label(case: Case) -> str:
    """Who handles the case, as shown to the resident."""
    session = object_session(case)
    known = directory.get(session) if session is not None else None
    if case.handler_kind == "department" and case.department_id is not None:
        info = known.departments.get(case.department_id) if known else None
        return info.name if info else case.department.name
    if case.handler_kind == "deputy" and case.deputy_id is not None:
        info = known.deputies.get(case.deputy_id) if known else None
        if info is None:
            info = directory.DeputyInfo(case.deputy.id, case.deputy.name, case.deputy.level)
        return info.label
    return "人大代表联络工作室（分派中）"


def handler_sentence(case: Case) -> str:
    """Who handles the case, as one sentence for the resident: the department by name when there is
    one, and the deputy by name (the grid deputy follows a department's work up)."""
    session = object_session(case)
    known = directory.get(session) if session is not None else None
    deputy = None
    if case.deputy_id is not None:
        info = known.deputies.get(case.deputy_id) if known else None
        if info is None and case.deputy is not None:
            info = directory.DeputyInfo(case.deputy.id, case.deputy.name, case.deputy.level)
        deputy = info.label if info else None
    if case.handler_kind == "department" and case.department_id is not None:
        info = known.departments.get(case.department_id) if known else None
        department = info.name if info else case.department.name
        if deputy:
            return say("handled_by_department", department=department, deputy=deputy)
        return say("handled_by_department_station", department=department)
    if deputy:
        return say("handled_by_deputy", deputy=deputy)
    return say("handled_by_office")


def deputy_label(case: Case) -> str | None:
    """The responsible deputy as shown to people (name and level), or None."""
    if case.deputy_id is None:
        return None
    session = object_session(case)
    info = directory.get(session).deputies.get(case.deputy_id) if session is not None else None
    if info is None:
        deputy = case.deputy if case.deputy is not None else session.get(Deputy, case.deputy_id)
        info = directory.DeputyInfo(deputy.id, deputy.name, deputy.level)
    return info.label


# What the responsible deputy is told while a department handles the case (代表督单).
SUPERVISE_NOTICES = {
    "dispatch": "诉求 {number}（{brief}）已派{department}办理，{deadline}前办结答复。请您跟踪督单。",
    "reply": "{department}已答复诉求 {number}：{text}",
    "close": "{department}已办结诉求 {number}：{text}。请留意群众评价。",
    "accept_overdue": "诉求 {number} 已超过受理时限，{department}尚未受理，请督单。",
    "deadline_reminder": "诉求 {number} 将于 {deadline} 到期，{department}尚未办结，请督单。",
}


def _entry(case: Case, actor: Actor, action: str, from_status: str | None, to_status: str | None,
           **detail: Any) -> CaseEvent:
    """A timeline entry of `case`, not yet in any session: what every entry records."""
    return CaseEvent(case=case, actor_kind=actor.kind, actor_id=actor.id, action=action,
                     from_status=from_status, to_status=to_status, detail=detail, at=utcnow())


def _event(session: Session, case: Case, actor: Actor, action: str, from_status: str | None,
           to_status: str | None, **detail: Any) -> CaseEvent:
    entry = _entry(case, actor, action, from_status, to_status, **detail)
    session.add(entry)
    if action == "accept" and (case.accepted_at is None or entry.at < case.accepted_at):
        case.accepted_at = entry.at  # 受理时间: the first accept (Case.accepted_at)
    return entry


def _transition(session: Session, case: Case, action: str, actor: Actor, *,
                reason: str | None = None, **detail: Any) -> CaseEvent:
    """Apply one row of the lifecycle table: check, change status, write the timeline entry."""
    transition = lifecycle.check_case(action, case, reason)
    if transition.target is None:  # a programming error, never a client's
        raise RuntimeError(f"{action!r} does not change the status: record it with record_event")
    before = case.status
    case.status = transition.target
    case.updated_at = utcnow()
    if reason:
        detail["reason"] = reason
    entry = _event(session, case, actor, action, before, transition.target, **detail)
    timers.schedule(case)
    return entry


def _recipients(session: Session, case: Case) -> list[int]:
    followers = session.scalars(select(CaseFollower.resident_id).where(
        CaseFollower.case_id == case.id)).all()
    return [case.resident_id, *[r for r in followers if r != case.resident_id]]


def _notify_residents(session: Session, case: Case, entry: CaseEvent, text: str) -> None:
    if entry.id is None:
        session.flush()  # the entry's id keys the outbox rows
    for resident_id in _recipients(session, case):
        outbox.add(session, "resident_text", f"event:{entry.id}:resident:{resident_id}",
                   {"text": text, "case_number": case.number}, case_id=case.id,
                   resident_id=resident_id)


# What the (new) handler is told when work lands on them, by the action that put it there.
HANDOVER_NOTICES = {
    "assign": "新诉求 {number} 待受理：{brief}。请于{accept_by}前受理。",
    "dispatch": "派单 {number}：{brief}。请于{accept_by}前受理，{deadline}前办结答复。",
    "reassign": "诉求 {number} 改由您办理：{brief}。请于{accept_by}前受理。",
    "return": "诉求 {number} 被{department}退回：{reason}。请重新办理或派单。",
}  # 不满意 (second round) is announced by the escalation it triggers (timers.escalate)


def _tell_handler(session: Session, case: Case, entry: CaseEvent) -> None:
    """Work landed on a handler (代表接单/部门办单 start here): tell them at once, in the mini-program
    and by a push, instead of leaving it to the digest or the acceptance-overdue reminder."""
    fresh = entry.id is None  # written by this transaction: a key naming it cannot exist yet
    if fresh and not _insert_new_case(session, case):
        session.flush()  # the entry's id keys the notice
    detail = entry.detail or {}
    text = HANDOVER_NOTICES[entry.action].format(
        number=case.number, brief=case.text.splitlines()[0][:20],
        accept_by=timers.local_day(case.accept_deadline), deadline=timers.local_day(case.deadline),
        department=detail.get("department") or "承办部门",
        reason=detail.get("reason") or "")
    notices.notify_handler(session, case, "new_work", text, key=f"new_work:{case.id}:{entry.id}",
                           new_key=fresh)


def _insert_new_case(session: Session, case: Case) -> bool:
    """Write a case being opened and its first timeline entries with one statement (PostgreSQL), so
    the handler's notice has their ids without a flush: WITH c AS (INSERT INTO cases … RETURNING),
    e1 AS (INSERT INTO case_events … SELECT … FROM c RETURNING), e2 AS (… FROM e1 …) SELECT the ids.
    Each entry's INSERT reads the one before it, so the entries' ids follow the timeline's order.
    The rows then join the session as persistent objects, as a flush would have left them (the same
    Python objects, every column loaded). False (nothing done: the caller flushes) where the ORM must
    write them: not PostgreSQL, city staff's scope, a case already written, or a parent not yet in
    the database."""
    if not tenant.writes_by_statement(session):
        return False
    state = inspect(case)
    if not state.pending:
        return False
    for key in ("resident", "deputy", "department", "grid"):
        parent = state.dict.get(key)
        if parent is not None and inspect(parent).key is None:  # a parent the flush would write first
            return False
    if case.resident_id is None and case.resident is not None:
        case.resident_id = case.resident.id
    entries = [obj for obj in session.new if isinstance(obj, CaseEvent) and obj.case is case]
    number = state.dict.get("number")
    if case.resident_id is None or not entries or not isinstance(number, (str, ColumnClause)):
        return False
    entries = _in_added_order(entries)
    case.county_id = tenant.county_for_new(session, case)
    values = insert_values(case)
    number = values.pop("number")
    params = {f"c_{name}": value for name, value in values.items()}
    rows = []
    for position, entry in enumerate(entries):
        entry.county_id = tenant.county_for_new(session, entry)
        row = insert_values(entry)
        row.pop("case_id", None)
        rows.append(tuple(row))
        params.update({f"e{position}_{name}": value for name, value in row.items()})
    expression = number.name if isinstance(number, ColumnClause) else None  # next_case_number's SQL
    if expression is None:
        params["c_number"] = number
    statement = _new_case_statement(tuple(values), expression, tuple(rows))
    # Straight to the driver (`db.run`): a Core statement needs none of the ORM's execution.
    (case_id, number, county_id, *entry_ids), = db_run(session, statement, params)
    _attach(session, case, id=case_id, number=number, county_id=county_id)
    for entry, entry_id in zip(entries, entry_ids):
        _attach(session, entry, id=entry_id, case_id=case_id)
    return True


@lru_cache(maxsize=32)
def _new_case_statement(case_columns: tuple[str, ...], number: str | None,
                        entry_columns: tuple[tuple[str, ...], ...]):
    """The statement of `_insert_new_case` for one shape of case and entries, built once: the case's
    values are the parameters `c_<column>` (its number the SQL `number` when given), entry n's
    `e<n>_<column>`."""
    cases, events = Case.__table__, CaseEvent.__table__
    values = {name: bindparam(f"c_{name}", type_=cases.c[name].type) for name in case_columns}
    values["number"] = literal_column(number, String) if number is not None else bindparam(
        "c_number", type_=cases.c.number.type)
    written = insert(cases).values(values).returning(cases.c.id, cases.c.number, cases.c.county_id).cte("c")
    previous, joined, ids = written, written, []
    for position, columns in enumerate(entry_columns):
        # Each entry's row is selected from the one before it: written after it, so its id is larger.
        source = select(previous.c.id if previous is written else previous.c.case_id,
                        *[bindparam(f"e{position}_{name}", type_=events.c[name].type) for name in columns])
        previous = insert(events).from_select(["case_id", *columns], source).returning(
            events.c.id, events.c.case_id).cte(f"e{position}")
        joined = joined.join(previous, previous.c.case_id == written.c.id)
        ids.append(previous.c.id)
    return select(written.c.id, written.c.number, written.c.county_id, *ids).select_from(joined)


def _in_added_order(objects: list) -> list:
    """`objects` in the order they were added to the session (the order a flush inserts them)."""
    return sorted(objects, key=lambda obj: inspect(obj).insert_order)


def _attach(session: Session, obj, **written: Any) -> None:
    """Make the pending `obj`, just written by a statement, persistent as a flush leaves it: the
    columns the database gave (`written`) set, every attribute loaded, no history."""
    session.expunge(obj)
    inspect(obj).dict.update(written)  # committed values, as a load sets them: no change events
    make_transient_to_detached(obj)
    session.add(obj)


def _route(session: Session, case: Case, text: str) -> None:
    """Classify and route: fill category, routing decision with reasons, and the handler."""
    rules.sync(session)  # staff keyword rules, live without a restart
    decision = get_classifier().classify(text)
    routed = route(decision, text)
    reasons = list(routed.reasons)
    case.category = decision.category
    case.confidence = decision.confidence
    case.signature = sorted(signature(text))
    known = directory.get(session)
    department = None
    if routed.target == "department" and routed.department_code:
        department = known.departments_by_code.get(routed.department_code)
        if department is None:
            reasons.append(f"未配置部门 {routed.department_code}，交网格代表分办")
    case.department_id = None
    case.deputy_id = responsible_deputy_id(session, case) or case.deputy_id  # never lost on a re-route
    flow = case_flow(session, case)
    suggested = None
    if department is not None and (flow == DIRECT_DISPATCH or case.deputy_id is None):
        # 派单 at once; the responsible deputy supervises (督单) and is escalation level 1.
        case.handler_kind, case.department_id = "department", department.id
    elif case.deputy_id is not None:
        case.handler_kind = "deputy"  # 代表接单 first; the deputy dispatches (派单) if need be
        suggested = department.code if department is not None else None
    else:
        case.handler_kind = "office"
        reasons.append("未能确定所在网格，由联络工作室分派")
    case.routing = {"decision": decision.to_dict(), "route": routed.to_dict(), "reasons": reasons,
                    "flow": flow, "suggested_department": suggested}


# The county's case flow (county setting `case_flow`): 代表接单 then 派单 (the field's default), or a
# confidently classified case goes straight to its department with the deputy supervising.
DEPUTY_FIRST, DIRECT_DISPATCH = "deputy_first", "direct_dispatch"
CASE_FLOWS = (DEPUTY_FIRST, DIRECT_DISPATCH)


def county_setting(session: Session, case: Case, name: str, default: Any) -> Any:
    """A setting of the case's county (`counties.settings`), else `default`."""
    county_id = case.county_id or tenant.of(session).write_county or tenant.DEFAULT_COUNTY_ID
    settings = tenancy.county_settings(session, county_id)
    return settings.get(name, default) if settings is not None else default


def case_flow(session: Session, case: Case) -> str:
    flow = county_setting(session, case, "case_flow", DEPUTY_FIRST)
    return flow if flow in CASE_FLOWS else DEPUTY_FIRST


def responsible_deputy_id(session: Session, case: Case) -> int | None:
    """The deputy answerable for the case for its whole life: the deputy whose own code the resident
    scanned (also a deputy with no grid), else the lead deputy of the case's grid."""
    resident = case.resident if case.resident is not None else session.get(Resident, case.resident_id)
    if resident is not None and resident.deputy_id is not None:
        return resident.deputy_id
    info = directory.get(session).lead_by_grid.get(case.grid_id) if case.grid_id else None
    return info.id if info is not None else None


def tell_deputy(session: Session, case: Case, entry: CaseEvent, text: str) -> None:
    """督单: the responsible deputy is told of what happens while a department handles the case (派单,
    答复, 办结, overdue steps), in the mini-program and by a push; never about their own act."""
    if case.deputy_id is None:
        return
    if entry.actor_kind == "deputy" and entry.actor_id == case.deputy_id:
        return
    fresh = entry.id is None  # written by this transaction: a key naming it cannot exist yet
    if fresh:
        session.flush()  # the entry's id keys the notice
    notices.notify(session, case, f"supervise:{case.id}:{entry.id}", text, deputy_id=case.deputy_id,
                   kind="supervise", detail={"event_id": entry.id, "action": entry.action},
                   new_key=fresh)


def resident_tag(resident: Resident) -> str:
    """诉求人 as the 台账 shows them: a short non-reversible tag of their WeChat identity (kept on the
    case row as `Case.resident_tag`; never the openid itself)."""
    return mask(resident.oa_openid or resident.mp_openid or resident.public_id)[4:10]


def open_case(session: Session, resident: Resident, text: str, *, channel: str = "wechat",
              now: datetime | None = None, grid: Grid | None = None) -> Case:
    """A resident's message becomes a routed case (status `assigned`) with a deadline."""
    now = now or utcnow()
    grid_id = grid.id if grid is not None else (
        resident.grid_id or directory.get(session).grid_in_text(text))
    if resident.public_id is None:
        resident.public_id = new_public_id()  # before its flush: the case's resident tag is made of it
    case = Case(number=next_case_number(session, now), resident=resident, text=text,
                status=Status.SUBMITTED, grid_id=grid_id, created_at=now, last_message_at=now, round=1,
                source=channel, resident_tag=resident_tag(resident))
    session.add(case)
    _event(session, case, Actor("resident", resident.id), "submit", None, Status.SUBMITTED,
           channel=channel, text=text)
    _route(session, case, text)
    case.deadline = add_working_days(now, case_deadline_days(session, case, "reply"))
    case.accept_deadline = add_working_days(now, case_deadline_days(session, case, "accept"))
    entry = _transition(session, case, "assign", Actor.system(), handler=handler_label(case),
                        category=case.category, reasons=case.routing["reasons"],
                        deputy=deputy_label(case))
    _tell_handler(session, case, entry)
    if case.handler_kind == "department":
        tell_deputy(session, case, entry, SUPERVISE_NOTICES["dispatch"].format(
            number=case.number, brief=case.text.splitlines()[0][:20], department=handler_label(case),
            deadline=timers.local_day(case.deadline)))
    # The case and its first timeline entries were flushed for the notice's key; the notice and its
    # pushes go with the caller's next flush (the webhook's: with the delivery's record).
    return case


def find_duplicate(session: Session, text: str, grid_id: int | None, *,
                   exclude_resident_id: int | None = None, now: datetime | None = None) -> Case | None:
    """An open case in the same grid about the same problem, recent enough to merge into (并单)."""
    if grid_id is None:
        return None
    now = now or utcnow()
    mine = signature(text)
    if not mine:
        return None
    # Only what the comparison needs, on the session's connection (the candidates are up to 50 rows:
    # loading them as cases cost more than the statement); the chosen case is then fetched by id.
    autoflush(session)  # as the ORM's query would: a case of this transaction not yet written is one
    scope = tenant.of(session)
    postgresql = session.get_bind().dialect.name == "postgresql"
    params = {"grid_id": grid_id, "since": now - DUPLICATE_WINDOW}
    if postgresql:
        params["signature"] = sorted(mine)
    if not scope.every_county:  # the domain's county criteria, which a given statement does not get
        params["county_ids"] = sorted(scope.county_ids)
    candidates = db_run(session, _duplicate_candidates(postgresql, scoped=not scope.every_county), params)
    best_id, best_score = None, 0.0
    for candidate_id, resident_id, candidate_signature in candidates:
        if exclude_resident_id is not None and resident_id == exclude_resident_id:
            continue
        score = similarity(mine, frozenset(candidate_signature or []))
        if score > best_score:
            best_id, best_score = candidate_id, score
    if best_id is None or best_score < similarity_threshold():
        return None
    return fetch(session, Case, best_id)


@lru_cache(maxsize=4)
def _duplicate_candidates(postgresql: bool, scoped: bool):
    """`find_duplicate`'s candidates (id, resident, signature): the open cases of a grid opened since
    `since`, newest first, at most 50; on PostgreSQL only those sharing a keyword (GIN-indexed
    overlap); in the scope's counties when `scoped`. Built once per kind."""
    cases = Case.__table__
    # The open statuses as one array literal on PostgreSQL: an IN list would be expanded per execution.
    open_statuses = (cases.c.status == any_(literal(list(lifecycle.OPEN_STATUSES), ARRAY(String)))
                     if postgresql else cases.c.status.in_(lifecycle.OPEN_STATUSES))
    query = select(cases.c.id, cases.c.resident_id, cases.c.signature).where(
        cases.c.grid_id == bindparam("grid_id"), open_statuses,
        cases.c.created_at >= bindparam("since", type_=cases.c.created_at.type))
    if postgresql:
        query = query.where(cases.c.signature.op("&&")(bindparam("signature", type_=cases.c.signature.type)))
    if scoped:
        query = query.where(tenant.in_county_ids(cases.c.county_id, postgresql))
    return query.order_by(cases.c.created_at.desc()).limit(50)


def follow_case(session: Session, case: Case, resident: Resident, text: str, *,
                new_resident: bool = False) -> None:
    """并单: the resident's message joins an open case; they become a follower and get its updates.

    `new_resident=True` says the resident was created in this transaction, so follows nothing yet:
    no lookup (the follower's primary key still holds).

    On PostgreSQL the follower row and the entry are written at once by one statement
    (`_follow_in_one_statement`); elsewhere they wait for the caller's flush."""
    exists = None if new_resident else session.get(CaseFollower, (case.id, resident.id))
    follower = CaseFollower(case_id=case.id, resident_id=resident.id) if exists is None else None
    entry = _entry(case, Actor("resident", resident.id), "follow", case.status, case.status, text=text)
    if _follow_in_one_statement(session, case, resident, follower, entry):
        return
    if follower is not None:
        session.add(follower)
    session.add(entry)


def _follow_in_one_statement(session: Session, case: Case, resident: Resident,
                             follower: CaseFollower | None, entry: CaseEvent) -> bool:
    """Write `follow_case`'s rows (the new `follower`, if any, and the timeline `entry`) with one
    statement: WITH follower AS (INSERT INTO case_followers …) INSERT INTO case_events ….
    On the webhook's 并单 path they were the only rows of the delivery's flush, a full unit of work
    (~1,000 Python calls) for two INSERTs.

    The objects are left out of the session: nothing in the transaction holds on to them (a later
    `session.get` of the follower, a load of `case.events` or `_recipients` read the rows), and
    `Case.events` is view-only, so the ORM path does not add the entry to a loaded collection either.
    The rows get the values a flush would give them (Python defaults by `insert_values`, counties by
    `tenant.county_for_new`). False (nothing done: the caller adds the objects for its flush) where
    the ORM must write them: not PostgreSQL, city staff's scope, or a case or resident not yet in
    the database."""
    if not tenant.writes_by_statement(session):
        return False
    if case.id is None or resident.id is None or inspect(case).key is None or inspect(resident).key is None:
        return False  # a parent only a flush writes: the rows must follow it there
    entry.county_id = tenant.county_for_new(session, entry)
    values = insert_values(entry)
    values["case_id"] = case.id  # the relationship's foreign key, which only a flush copies over
    params = {f"e_{name}": value for name, value in values.items()}
    follower_columns: tuple[str, ...] = ()
    if follower is not None:
        follower.county_id = tenant.county_for_new(session, follower)
        # Its key is its parents' ids, which `insert_values` leaves out (a key is the database's).
        row = {"case_id": case.id, "resident_id": resident.id, **insert_values(follower)}
        follower_columns = tuple(row)
        params.update({f"f_{name}": value for name, value in row.items()})
    # Straight to the driver (`db.run`): a Core statement needs none of the ORM's execution.
    db_run(session, _follow_statement(tuple(values), follower_columns), params)
    return True


@lru_cache(maxsize=4)
def _follow_statement(entry_columns: tuple[str, ...], follower_columns: tuple[str, ...]):
    """The statement of `_follow_in_one_statement`, built once per shape: the entry's values are the
    parameters `e_<column>`, the follower's (when `follower_columns`) `f_<column>`. PostgreSQL runs a
    data-modifying CTE whether or not the main statement reads it. Nothing is returned: the entry's
    id is not needed (nothing in the transaction keys anything by it)."""
    events, followers = CaseEvent.__table__, CaseFollower.__table__
    statement = insert(events).values(
        {name: bindparam(f"e_{name}", type_=events.c[name].type) for name in entry_columns})
    if follower_columns:
        follower = insert(followers).values(
            {name: bindparam(f"f_{name}", type_=followers.c[name].type) for name in follower_columns}
        ).cte("follower")
        statement = statement.add_cte(follower)
    return statement


def add_information(session: Session, case: Case, actor: Actor, text: str, *,
                    reroute: bool = False) -> CaseEvent:
    """The resident adds to an open case (a follow-up chat message or the mini-program).

    With `reroute`, a case nobody has accepted yet is classified again on the whole text.
    """
    lifecycle.check_case("add_information", case)
    case.text = f"{case.text}\n{text}"
    case.last_message_at = utcnow()
    entry = _event(session, case, actor, "add_information", case.status, case.status, text=text)
    if reroute and case.status == Status.ASSIGNED:
        before = (case.handler_kind, case.deputy_id, case.department_id)
        _route(session, case, case.text)
        if (case.handler_kind, case.deputy_id, case.department_id) != before:
            _event(session, case, Actor.system(), "reroute", case.status, case.status,
                   handler=handler_label(case), category=case.category,
                   reasons=case.routing["reasons"])
    return entry


def accept(session: Session, case: Case, actor: Actor) -> CaseEvent:
    """受理. A department accepting a dispatched case becomes its handler."""
    return _transition(session, case, "accept", actor)


def reply(session: Session, case: Case, actor: Actor, text: str, *, attachments: list[str] | None = None
          ) -> CaseEvent:
    """答复: the handler's answer, delivered to the resident (and followers) by a worker.

    `attachments`: public ids of the handler's photos shown with it (`liaison.media` links them);
    the resident's message then says photos are attached and where to see them."""
    if not text.strip():
        raise ValueError("reply text is empty")
    extra = {"attachments": list(attachments)} if attachments else {}
    entry = _transition(session, case, "reply", actor, text=text, **extra)
    message = say("case_replied", number=case.number, text=text.strip())
    if attachments:
        message += "\n" + say("photos_attached", count=len(attachments))
    _notify_residents(session, case, entry, message)
    if case.handler_kind == "department":
        tell_deputy(session, case, entry, SUPERVISE_NOTICES["reply"].format(
            department=handler_label(case), number=case.number, text=text.strip()[:60]))
    return entry


def dispatch(session: Session, case: Case, actor: Actor, department: Department, *,
             working_days: int | None = None, note: str | None = None) -> CaseEvent:
    """派单/转办 to a department with a deadline in working days."""
    days = working_days or case_deadline_days(session, case, "reply")
    case.deadline = add_working_days(utcnow(), days)
    case.accept_deadline = add_working_days(utcnow(), case_deadline_days(session, case, "accept"))
    case.accept_reminded = False
    case.handler_kind, case.department_id = "department", department.id
    entry = _transition(session, case, "dispatch", actor, department=department.name,
                        department_code=department.code, deadline=case.deadline.isoformat(),
                        note=note)
    _notify_residents(session, case, entry, say("case_dispatched", number=case.number,
                                                department=department.name, date=day(case.deadline)))
    _tell_handler(session, case, entry)
    tell_deputy(session, case, entry, SUPERVISE_NOTICES["dispatch"].format(
        number=case.number, brief=case.text.splitlines()[0][:20], department=department.name,
        deadline=timers.local_day(case.deadline)))
    return entry


def return_case(session: Session, case: Case, actor: Actor, reason: str) -> CaseEvent:
    """退单: the department sends the case back to the grid deputy, with a reason."""
    department_name = case.department.name if case.department else None
    case.handler_kind, case.department_id = "deputy" if case.deputy_id else "office", None
    entry = _transition(session, case, "return", actor, reason=reason, department=department_name)
    _tell_handler(session, case, entry)
    return entry


def reassign(session: Session, case: Case, actor: Actor, *, deputy: Deputy | None = None,
             department: Department | None = None, category: str | None = None,
             reason: str | None = None) -> CaseEvent:
    """改派: staff or a deputy moves the case to another handler and/or corrects its category."""
    if deputy is None and department is None and category is None:
        raise ValueError("reassign needs a deputy, a department or a category")
    if category is not None:
        case.category = category
    before = (case.handler_kind, case.deputy_id, case.department_id)
    if department is not None:
        case.handler_kind, case.department_id = "department", department.id
    elif deputy is not None:
        case.handler_kind, case.deputy_id, case.department_id = "deputy", deputy.id, None
    entry = _transition(session, case, "reassign", actor, reason=reason, category=case.category,
                        handler=handler_label(case))
    if (case.handler_kind, case.deputy_id, case.department_id) != before:
        _tell_handler(session, case, entry)
        if case.handler_kind == "department":
            tell_deputy(session, case, entry, SUPERVISE_NOTICES["dispatch"].format(
                number=case.number, brief=case.text.splitlines()[0][:20],
                department=handler_label(case), deadline=timers.local_day(case.deadline)))
    return entry


def recategorize(session: Session, case: Case, actor: Actor, category: str,
                 reason: str | None = None) -> CaseEvent:
    """Correct the category only (the handler and status stay); re-routing is `reassign`/`dispatch`."""
    lifecycle.check_case("correct_category", case)
    old, case.category = case.category, category
    return _event(session, case, actor, "recategorize", case.status, case.status, old_category=old,
                  category=category, reason=reason)


def close(session: Session, case: Case, actor: Actor, summary: str, *, attachments: list[str] | None = None
          ) -> CaseEvent:
    """办结 with a summary of what was done; asks the resident (and followers) for a rating.
    `attachments`: as for `reply` (the rating prompt then says photos are attached)."""
    if not summary.strip():
        raise ValueError("a closing summary is required")
    case.summary = summary.strip()
    case.closed_at = utcnow()
    case.rating_reminded = False
    extra = {"attachments": list(attachments)} if attachments else {}
    entry = _transition(session, case, "close", actor, summary=case.summary, **extra)
    if case.handler_kind == "department":
        tell_deputy(session, case, entry, SUPERVISE_NOTICES["close"].format(
            department=handler_label(case), number=case.number, text=case.summary[:60]))
    for resident_id in _recipients(session, case):
        outbox.add(session, "rating_prompt", f"rate:{case.id}:{case.round}:resident:{resident_id}",
                   {"case_number": case.number, "round": case.round, "summary": case.summary,
                    "photos": len(attachments or ())},
                   case_id=case.id, resident_id=resident_id)
    return entry


def rate(session: Session, case: Case, resident: Resident, value: str, *, channel: str,
         comment: str | None = None) -> CaseEvent:
    """评价 a closed case. 满意/基本满意 → 销号; 不满意 → second round with a fresh deadline.

    Only the case's resident decides the outcome; a follower's rating is recorded without moving it.
    """
    if value not in RATING_VALUES:
        raise ValueError(f"unknown rating {value!r}")
    lifecycle.check_case("rate", case)
    if resident.id not in _recipients(session, case):
        raise NotFound("case")
    return record_rating(session, case, resident.id, value, channel=channel, comment=comment,
                         actor=Actor("resident", resident.id))


def record_rating(session: Session, case: Case, resident_id: int, value: str, *, channel: str,
                  actor: Actor, comment: str | None = None, **detail: Any) -> CaseEvent:
    """The round's rating (by chat, mini-program or a staff 回访) and what it decides for the case:

    - 满意 → 销号; 基本满意 → 销号, or a second round where the county's `basically_satisfied` setting
      says `second_round`;
    - 不满意 in the first round → the second round: a fresh deadline, one escalation level up, 人大
      staff told (they may 督办 it themselves);
    - 不满意 again → 待裁定: staff rule on it (`conclude`).
    """
    if value not in RATING_VALUES:
        raise ValueError(f"unknown rating {value!r}")
    existing = session.scalar(select(Rating).where(
        Rating.case_id == case.id, Rating.round == case.round, Rating.resident_id == resident_id))
    if existing is not None:
        raise IllegalTransition("rate", case.status, "this round is already rated")
    session.add(Rating(case_id=case.id, round=case.round, resident_id=resident_id, value=value,
                       comment=comment, channel=channel))
    if resident_id == case.resident_id:
        case.rating = value  # the latest rated round is this one (Case.rating)
    if resident_id != case.resident_id:
        return _event(session, case, actor, "follower_rating", case.status, case.status,
                      rating=value, comment=comment)
    reopen_basic = (value == "basically_satisfied" and case.round == 1
                    and county_setting(session, case, "basically_satisfied", "archive") == "second_round")
    if value == "unsatisfied" and case.round >= 2:
        entry = _transition(session, case, "rate_unsatisfied_again", actor, rating=value, comment=comment,
                            channel=channel, **detail)
        notices.notify_staff(session, case, f"ruling:{case.id}:{case.round}",
                             f"诉求 {case.number} 第{case.round}轮办理后群众仍不满意，请工委裁定。")
        _notify_residents(session, case, entry,
                          f"诉求 {case.number} 经两轮办理您仍不满意，已提交人大工委研究裁定，结果会告知您。")
        return entry
    if value == "unsatisfied" or reopen_basic:
        action = "rate_unsatisfied" if value == "unsatisfied" else "rate_basically_reopen"
        entry = _transition(session, case, action, actor, rating=value, comment=comment,
                            round=case.round + 1, channel=channel, **detail)
        case.round += 1
        case.closed_at = None
        case.deadline = add_working_days(utcnow(), int(county_deadlines(session, case.county_id)["second_round"]))
        case.accept_deadline = add_working_days(utcnow(), case_deadline_days(session, case, "accept"))
        case.accept_reminded = False
        # 二次办理 goes one level up the escalation chain at once; from the second round on every level
        # tells 人大 staff, who may 督办 it themselves (timers.escalate).
        timers.escalate(session, case, min((case.escalation_level or 0) + 1, timers.MAX_LEVEL),
                        reason=f"群众评价{RATING_VALUES[value]}，二次办理")
        timers.schedule(case)
        return entry
    return _transition(session, case, "rate_satisfied", actor, rating=value, comment=comment,
                       channel=channel, **detail)


def conclude(session: Session, case: Case, actor: Actor, reason: str) -> CaseEvent:
    """工委裁定终结: a case rated 不满意 after its second round ends with a written reason; it stays
    recorded as unsatisfied (its last rating) and the resident is told."""
    case.closed_at = utcnow()
    entry = _transition(session, case, "conclude", actor, reason=reason, rating="unsatisfied")
    _notify_residents(session, case, entry,
                      f"您的诉求 {case.number} 经人大工委研究，作终结处理：{reason.strip()}")
    return entry


def expire_rating(session: Session, case: Case) -> CaseEvent:
    """No rating after the reminder: recorded as 未评价 (never counted as satisfied)."""
    return _transition(session, case, "expire_rating", Actor.system())


def reject(session: Session, case: Case, actor: Actor, reason: str) -> CaseEvent:
    """不予受理, with the reason and where to go instead (told to the resident)."""
    entry = _transition(session, case, "reject", actor, reason=reason)
    _notify_residents(session, case, entry, say("case_rejected", number=case.number, reason=reason))
    return entry


def merge(session: Session, case: Case, into: Case, actor: Actor, reason: str) -> CaseEvent:
    """并单: close `case` into the open case `into`, with a reason on both timelines. The merged
    case's resident (and its followers) follow `into` from now on and are told so.

    Both rows are locked here, in id order, so two merges of the same pair at once (A into B, B into
    A) queue instead of deadlocking, whichever caller asks."""
    session.flush()  # a refresh reloads the rows: nothing of the caller's may be left unwritten
    for row in sorted({case, into}, key=lambda c: c.id):
        session.refresh(row, with_for_update=True)
    if case.id == into.id or into.status not in lifecycle.OPEN_STATUSES:
        raise IllegalTransition("merge", into.status, "cannot merge into that case")
    recipients = _recipients(session, case)  # before the merge: the merged case's own people
    case.merged_into_id = into.id
    entry = _transition(session, case, "merge", actor, reason=reason, into=into.number)
    for resident_id in recipients:
        if resident_id != into.resident_id and session.get(CaseFollower, (into.id, resident_id)) is None:
            session.add(CaseFollower(case_id=into.id, resident_id=resident_id))
    _event(session, into, actor, "merged_in", into.status, into.status, merged_case=case.number,
           reason=reason)
    _notify_residents(session, case, entry, say("case_merged", number=case.number, into=into.number))
    return entry


def withdraw(session: Session, case: Case, resident: Resident) -> CaseEvent:
    """The resident withdraws their own open case."""
    if case.resident_id != resident.id:
        raise NotFound("case")
    return _transition(session, case, "withdraw", Actor("resident", resident.id))


def case_by_number(session: Session, number: str) -> Case:
    case = session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise NotFound("case")
    return case


def lock_case(session: Session, case_id: int) -> Case:
    """Load a case with a row lock (PostgreSQL) so concurrent actions serialise on it."""
    case = session.scalar(select(Case).where(Case.id == case_id).with_for_update())
    if case is None:
        raise NotFound("case")
    return case


# --- Public helpers for services outside this module (mini-program casework: urge, ask for
# information, extensions). Added at the end so the functions above stay untouched.
def record_event(session: Session, case: Case, actor: Actor, action: str, **detail: Any) -> CaseEvent:
    """Append a timeline entry that does not change the case's status."""
    return _event(session, case, actor, action, case.status, case.status, **detail)


def notify_residents(session: Session, case: Case, entry: CaseEvent, text: str) -> None:
    """Queue `text` for the case's resident and followers (one outbox row each, keyed by the entry)."""
    _notify_residents(session, case, entry, text)
