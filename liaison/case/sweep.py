"""The scheduler's sweep: fire every due case timer (see `case.timers` for what is due when).

It lives above the case services, not in `timers`, because one of the things it fires is a status
change (the rating expiry, 未评价) and status changes go only through `case.service`, which itself
uses `timers` to schedule: keeping the sweep here keeps the import graph a line, not a circle.

The sweep reads only the due rows through a partial index, and takes them with SKIP LOCKED, so two
sweeps at once never do the same work twice. Each firing is recorded on the case timeline and is
idempotent (flags on the case, unique notice/outbox keys).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import lifecycle, notices, timers
from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseFollower, Rating
from liaison.core.clock import utcnow
from liaison.messaging import outbox


def due_case_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of cases with a due timer, locked for this sweep (others skip them)."""
    query = (select(Case.id).where(Case.next_action_at <= now)
             .order_by(Case.next_action_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def run_due(session: Session, now: datetime | None = None, *, batch: int = 500,
            max_batches: int | None = None) -> int:
    """The sweep: fire every due timer, a batch per transaction. Returns how many cases it handled."""
    now = now or utcnow()
    seen: set[int] = set()
    batches = 0
    while max_batches is None or batches < max_batches:
        ids = [i for i in due_case_ids(session, now, batch) if i not in seen]
        if not ids:  # nothing due, or only cases this run already handled (never loop on one)
            session.commit()
            break
        for case in session.scalars(select(Case).where(Case.id.in_(ids))):
            fire(session, case, now)
        session.commit()
        seen.update(ids)
        batches += 1
    return len(seen)


def fire(session: Session, case: Case, now: datetime) -> None:
    """Do whatever is due for this case at `now`, then schedule its next timer."""
    if case.status in lifecycle.WORKING_STATUSES:
        if (case.status in timers.AWAITING_ACCEPTANCE and case.accept_deadline is not None
                and not case.accept_reminded and now >= case.accept_deadline):
            case.accept_reminded = True
            timers.system_event(session, case, "accept_overdue", deadline=case.accept_deadline.isoformat())
            notices.notify_handler(session, case, "accept_overdue",
                                   f"诉求 {case.number} 已超过受理时限，请尽快受理。")
            _tell_deputy(session, case, "accept_overdue", case.accept_deadline)
        if case.deadline is not None:
            if (case.reminded_for != case.deadline
                    and timers.reminder_time(case.deadline) <= now < case.deadline):
                case.reminded_for = case.deadline
                timers.system_event(session, case, "remind", deadline=case.deadline.isoformat())
                notices.notify_handler(
                    session, case, "deadline_reminder",
                    f"诉求 {case.number} 将于 {timers.local_day(case.deadline)} 到期，请按时办结答复。")
                _tell_deputy(session, case, "deadline_reminder", case.deadline)
            for level in range((case.escalation_level or 0) + 1, timers.MAX_LEVEL + 1):
                if now < timers.escalation_time(case.deadline, level):
                    break
                timers.escalate(session, case, level, reason="逾期未办结")
    elif case.status == Status.CLOSED and case.closed_at is not None:
        remind_at, expire_at = timers.rating_times(case)
        if now >= expire_at:
            cases.expire_rating(session, case)
        elif now >= remind_at and not case.rating_reminded:
            case.rating_reminded = True
            timers.system_event(session, case, "rating_reminder")
            for resident_id in _unrated_recipients(session, case):
                outbox.add(session, "rating_reminder", f"rating-reminder:{case.id}:{case.round}:{resident_id}",
                           {"case_number": case.number}, case_id=case.id, resident_id=resident_id)
    timers.schedule(case, now)


def _tell_deputy(session: Session, case: Case, kind: str, deadline: datetime) -> None:
    """An overdue step of a department's case is told to the responsible deputy too (代表督单)."""
    if case.handler_kind != "department" or case.deputy_id is None:
        return
    text = cases.SUPERVISE_NOTICES[kind].format(number=case.number, department=cases.handler_label(case),
                                                deadline=timers.local_day(case.deadline))
    notices.notify(session, case, f"supervise_{kind}:{case.id}:{case.round}:{deadline.isoformat()}", text,
                   deputy_id=case.deputy_id, kind="supervise")


def _unrated_recipients(session: Session, case: Case) -> list[int]:
    followers = session.scalars(select(CaseFollower.resident_id).where(CaseFollower.case_id == case.id)).all()
    rated = set(session.scalars(select(Rating.resident_id).where(
        Rating.case_id == case.id, Rating.round == case.round)))
    return [r for r in dict.fromkeys([case.resident_id, *followers]) if r not in rated]
