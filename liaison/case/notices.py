"""The one way to tell a handler or staff something: a `Notice` in the mini-program plus a WeChat push.

Assignment, 派单, 退单, 改派, 督办 (urge), extension decisions, reminders, escalation and the daily digest
all come through `notify`, so every one of them is de-duplicated the same way (a unique `dedup_key`:
a retried request or a second sweep never tells anyone twice) and pushed the same way (one
`account_push` outbox row per active account behind the notice, delivered by a worker, or kept in the
mini-program when the account has no subscription credit).
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from liaison.case.models import Case, Notice
from liaison.messaging import outbox
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
    session.add(Notice(dedup_key=key, deputy_id=deputy_id, department_id=department_id,
                       account_id=account_id, case_id=case.id if case else None,
                       kind=kind or key.split(":", 1)[0], text=text, detail=detail or {}))
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
                   {"account_id": target, "text": text,
                    "case_number": case.number if case else "", "title": text},
                   case_id=case.id if case else None, new_key=new_key)
    return True


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
