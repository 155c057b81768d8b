"""The one way to tell a handler or staff something: a `Notice` in the mini-program plus a WeChat push.

Assignment, 派单, 退单, 改派, 督办 (urge), extension decisions, reminders, escalation and the daily digest
all come through `notify`, so every one of them is de-duplicated the same way (a unique `dedup_key`:
a retried request or a second sweep never tells anyone twice) and pushed the same way (one
`account_push` outbox row per active account behind the notice, delivered by a worker, or kept in the
mini-program when the account has no subscription credit).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import Integer, String, bindparam, cast, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from liaison.case.models import Case, Notice
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.types import new_public_id
from liaison.messaging import outbox
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Account, Grid


def notify(session: Session, case: Case | None, key: str, text: str, *, deputy_id: int | None = None,
           department_id: int | None = None, account_id: int | None = None, kind: str | None = None,
           detail: dict[str, Any] | None = None, new_key: bool = False) -> bool:
    """A notice for a deputy, a department or one account (once per `key`) and a push to each active
    account behind it. `kind` defaults to the key's first part. Returns False if `key` was told already.

    `new_key=True` says the caller knows the key cannot exist yet (it names a row created in this
    transaction, e.g. the timeline entry being told about): no lookup; the unique key still holds."""
    if not new_key and session.scalar(select(Notice.id).where(Notice.dedup_key == key)) is not None:
        return False
    kind = kind or key.split(":", 1)[0]
    if new_key and _in_one_statement(session, case):
        _notify_in_one_statement(session, case, key, text, kind, detail or {}, deputy_id=deputy_id,
                                 department_id=department_id, account_id=account_id)
        return True
    session.add(Notice(dedup_key=key, deputy_id=deputy_id, department_id=department_id,
                       account_id=account_id, case_id=case.id if case else None,
                       kind=kind, text=text, detail=detail or {}))
    if account_id is not None:
        account_ids: Iterable[int] = [account_id]
    else:
        owner = Account.deputy_id == deputy_id if deputy_id is not None else Account.department_id == department_id
        with session.no_autoflush:  # accounts are not written here: the notice waits for the next flush
            account_ids = session.scalars(select(Account.id).where(owner, Account.active.is_(True))).all()
    for target in account_ids:
        # A new notice key makes its pushes' keys new too (only `notify` writes them): no lookup, and
        # the rows wait for the caller's next flush with the notice.
        outbox.add(session, "account_push", f"{key}:push:{target}",
                   _push_payload(target, text, case.number if case else ""),
                   case_id=case.id if case else None, new_key=new_key)
    return True


def _push_payload(account_id, text: str, case_number: str) -> dict[str, Any]:
    """What an account's push carries (`delivery` reads it); `account_id` may be a SQL expression."""
    return {"account_id": account_id, "text": text, "case_number": case_number, "title": text}


def _in_one_statement(session: Session, case: Case | None) -> bool:
    """Whether a new notice of `case` can be written with its pushes by one statement: a case already
    in the database (its id and county known) on PostgreSQL, in a scope of whole counties (city
    staff's rules are the ORM's criteria)."""
    return (case is not None and case.id is not None and case.county_id is not None
            and tenant.writes_by_statement(session))


def _notify_in_one_statement(session: Session, case: Case, key: str, text: str, kind: str,
                             detail: dict[str, Any], *, deputy_id: int | None, department_id: int | None,
                             account_id: int | None) -> None:
    """`notify` for a new key as one statement: the notice, the lookup of the active accounts behind
    it and one `account_push` row each (a CTE), so the webhook pays one round trip instead of a
    SELECT and two INSERTs. The rows go to the queue after the commit like `outbox.add`'s."""
    owner = "account" if account_id is not None else "deputy" if deputy_id is not None else "department"
    scope = tenant.of(session)
    now = utcnow()
    params = {"key": key, "text": text, "kind": kind, "detail": detail, "case_id": case.id,
              "case_number": case.number, "county_id": case.county_id, "now": now,
              "public_id": new_public_id(), "deputy_id": deputy_id, "department_id": department_id,
              "account_id": account_id, "push_kind": "account_push",
              **{f"q_{name}": value for name, value in outbox.initial_state(now).items()}}
    if owner != "account" and not scope.every_county:  # the domain's criteria on the accounts lookup
        params["county_ids"] = sorted(scope.county_ids)
    statement = _notice_statement(owner, scoped=owner != "account" and not scope.every_county)
    # Straight to the driver (`db.run`): a Core statement needs none of the ORM's execution.
    outbox.inserted_fresh(session, [outbox_id for outbox_id, in db.run(session, statement, params)])


@lru_cache(maxsize=8)
def _notice_statement(owner: str, scoped: bool):
    """WITH notice AS (INSERT INTO notices …) INSERT INTO outbox … SELECT … FROM <the accounts>
    RETURNING outbox.id: built once per kind of owner."""
    notices, pushes, accounts = Notice.__table__, OutboxMessage.__table__, Account.__table__
    text, case_id, now, county_id = (bindparam("text", type_=notices.c.text.type), bindparam("case_id"),
                                     bindparam("now", type_=notices.c.created_at.type), bindparam("county_id"))
    notice = insert(notices).values(
        public_id=bindparam("public_id"), dedup_key=bindparam("key"), kind=bindparam("kind"), text=text,
        detail=bindparam("detail", type_=notices.c.detail.type), case_id=case_id, created_at=now,
        deputy_id=bindparam("deputy_id", type_=Integer), department_id=bindparam("department_id", type_=Integer),
        account_id=bindparam("account_id", type_=Integer), county_id=county_id).cte("notice")
    if owner == "account":  # one named account, as the ORM path pushes to it
        targets = select(bindparam("account_id", type_=Integer).label("id")).subquery("targets")
    else:
        column = accounts.c.deputy_id if owner == "deputy" else accounts.c.department_id
        condition = (column == bindparam(f"{owner}_id", type_=Integer)) & accounts.c.active.is_(True)
        if scoped:
            condition &= tenant.in_county_ids(accounts.c.county_id, postgresql=True)
        targets = select(accounts.c.id).where(condition).subquery("targets")
    queue_columns = ("status", "next_attempt_at", "lease_until")
    rows = select(
        bindparam("push_kind", type_=pushes.c.kind.type),
        bindparam("key", type_=String) + literal(":push:") + cast(targets.c.id, String),
        case_id, func.json_build_object(*[part for name, value in _push_payload(
            targets.c.id, text, bindparam("case_number", type_=String)).items()
            for part in (literal(name), value)]),
        literal(0), now, county_id,
        *[bindparam(f"q_{name}", type_=pushes.c[name].type) for name in queue_columns])
    columns = ["kind", "dedup_key", "case_id", "payload", "attempts", "created_at", "county_id", *queue_columns]
    return (insert(pushes).from_select(columns, rows, include_defaults=False)
            .returning(pushes.c.id).add_cte(notice))


def station_of(session: Session, case: Case) -> int | None:
    """The liaison station whose grid the case is in (None: no grid known)."""
    if case.grid_id is None:
        return None
    return session.scalar(select(Grid.station_id).where(Grid.id == case.grid_id))


def notify_staff(session: Session, case: Case, key: str, text: str, *, county_only: bool = False,
                 new_key: bool = False) -> None:
    """A notice to each active staff account responsible for the case: the county's and, unless
    `county_only`, the case's station's."""
    station_id = station_of(session, case)
    scope = Account.station_id.is_(None) if county_only or station_id is None else or_(
        Account.station_id.is_(None), Account.station_id == station_id)
    for account_id in session.scalars(select(Account.id).where(
            Account.role == "staff", Account.active.is_(True), scope)):
        notify(session, case, f"{key}:staff:{account_id}", text, account_id=account_id, new_key=new_key)


def notify_handler(session: Session, case: Case, kind: str, text: str, key: str | None = None,
                   new_key: bool = False) -> None:
    """A notice (and push) to whoever handles the case now: its deputy, its department's accounts, or
    station/county staff while nobody does. Without `key`, one per kind, round and deadline; the
    notice's kind is the key's first part either way. `new_key`: see `notify`."""
    key = key or f"{kind}:{case.id}:{case.round}:{(case.deadline or case.accept_deadline).isoformat()}"
    if case.handler_kind == "department" and case.department_id:
        notify(session, case, key, text, department_id=case.department_id, new_key=new_key)
    elif case.handler_kind == "deputy" and case.deputy_id:
        notify(session, case, key, text, deputy_id=case.deputy_id, new_key=new_key)
    else:
        notify_staff(session, case, key, text, new_key=new_key)
