"""Deadlines, reminders, escalation (督办) and the rating loop's timers.

Every case carries `next_action_at`: the earliest moment something is due for it (an acceptance
reminder, a deadline reminder, the next escalation level, a rating reminder, the rating expiry).
`schedule()` recomputes it whenever the case changes; the scheduler's sweep (`run_due`) reads only
the due rows through a partial index, fires what is due and schedules the next timer. Each firing
is recorded on the case timeline and is idempotent (flags on the case, unique notice/outbox keys),
and rows are taken with SKIP LOCKED, so two sweeps at once never do the same work twice.

Escalation chain (levels after the deadline, in working days, in notifications.json):
1 — the grid deputy presses the department (代表督单); for a case the deputy handles, station staff;
2 — liaison station / 人大工委 staff; 3 — department leadership and county staff.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from liaison.case import lifecycle
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent, CaseFollower, Rating
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ, add_working_days, is_working_day
from liaison.messaging import channels, outbox
from liaison.people.models import DeputyGrid, Grid

AWAITING_ACCEPTANCE = frozenset({Status.ASSIGNED, Status.TRANSFERRED, Status.RETURNED, Status.REOPENED})
MAX_LEVEL = 3
LEVEL_LABELS = {1: "一级督办", 2: "二级督办（联络站/人大工委）", 3: "三级督办（部门领导）"}


def _deadline_config() -> dict:
    return channels.config()["deadlines"]


def reminder_time(deadline: datetime) -> datetime:
    """Morning (reminder_hour, China time) of the working day N working days before the deadline."""
    config = _deadline_config()
    day = deadline.astimezone(CHINA_TZ).date()
    remaining = config["reminder_working_days_before"]
    while remaining > 0:
        day -= timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return datetime.combine(day, time(config["reminder_hour"]), tzinfo=CHINA_TZ).astimezone(deadline.tzinfo)


def escalation_time(deadline: datetime, level: int) -> datetime:
    """When escalation `level` is due: the deadline itself for level 1, later levels N working days on."""
    days = int(_deadline_config()["escalation_after_working_days"][str(level)])
    return deadline if days == 0 else add_working_days(deadline, days)


def _rating_times(case: Case) -> tuple[datetime, datetime]:
    rating = channels.config()["rating"]
    return (case.closed_at + timedelta(days=rating["reminder_after_days"]),
            case.closed_at + timedelta(days=rating["expire_after_days"]))


def alert_for(case: Case, now: datetime) -> str:
    """The case's traffic light: red when overdue, yellow from the reminder on, else none."""
    if case.status not in lifecycle.WORKING_STATUSES or case.deadline is None:
        return "none"
    if now >= case.deadline:  # the moment escalation level 1 fires
        return "red"
    return "yellow" if now >= reminder_time(case.deadline) else "none"


def schedule(case: Case, now: datetime | None = None) -> None:
    """Recompute the case's alert and next timer after any change (status, deadline, flags)."""
    now = now or utcnow()
    case.alert = alert_for(case, now)
    due: list[datetime] = []
    if case.status in lifecycle.WORKING_STATUSES:
        if case.status in AWAITING_ACCEPTANCE and case.accept_deadline and not case.accept_reminded:
            due.append(case.accept_deadline)
        if case.deadline is not None:
            if case.reminded_for != case.deadline and now < case.deadline:
                due.append(reminder_time(case.deadline))
            elif case.alert == "yellow":
                due.append(case.deadline)  # turn red on time even with nothing else to send
            level = case.escalation_level or 0  # None until the row is first flushed
            if level < MAX_LEVEL:
                due.append(escalation_time(case.deadline, level + 1))
    elif case.status == Status.CLOSED and case.closed_at is not None:
        remind_at, expire_at = _rating_times(case)
        due.append(expire_at if case.rating_reminded else remind_at)
    case.next_action_at = min(due) if due else None


def deadlines_changed(case: Case, accept_days: int | None = None, now: datetime | None = None) -> None:
    """A new handling period starts (routing, dispatch, second round): fresh acceptance timer."""
    now = now or utcnow()
    if accept_days is not None:
        case.accept_deadline = add_working_days(now, accept_days)
        case.accept_reminded = False
    schedule(case, now)


# ------------------------------------------------------------------------------------------ the sweep

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
        if (case.status in AWAITING_ACCEPTANCE and case.accept_deadline is not None
                and not case.accept_reminded and now >= case.accept_deadline):
            case.accept_reminded = True
            _timeline(session, case, "accept_overdue", deadline=case.accept_deadline.isoformat())
            notify_handler(session, case, "accept_overdue",
                            f"诉求 {case.number} 已超过受理时限，请尽快受理。")
        if case.deadline is not None:
            if (case.reminded_for != case.deadline and reminder_time(case.deadline) <= now < case.deadline):
                case.reminded_for = case.deadline
                _timeline(session, case, "remind", deadline=case.deadline.isoformat())
                notify_handler(session, case, "deadline_reminder",
                                f"诉求 {case.number} 将于 {local_day(case.deadline)} 到期，请按时办结答复。")
            for level in range((case.escalation_level or 0) + 1, MAX_LEVEL + 1):
                if now < escalation_time(case.deadline, level):
                    break
                escalate(session, case, level, reason="逾期未办结")
    elif case.status == Status.CLOSED and case.closed_at is not None:
        remind_at, expire_at = _rating_times(case)
        if now >= expire_at:
            from liaison.case import service as cases

            cases.expire_rating(session, case)
        elif now >= remind_at and not case.rating_reminded:
            case.rating_reminded = True
            _timeline(session, case, "rating_reminder")
            for resident_id in _unrated_recipients(session, case):
                outbox.add(session, "rating_reminder", f"rating-reminder:{case.id}:{case.round}:{resident_id}",
                           {"case_number": case.number}, case_id=case.id, resident_id=resident_id)
    schedule(case, now)


def escalate(session: Session, case: Case, level: int, *, reason: str) -> None:
    """Raise the case to escalation `level` (督办): timeline entry and notices to that level."""
    case.escalation_level = level
    _timeline(session, case, "escalate", level=level, label=LEVEL_LABELS[level], reason=reason)
    text = f"【{LEVEL_LABELS[level]}】诉求 {case.number}（{reason}），办理时限 {local_day(case.deadline)}。"
    key = f"escalate:{case.id}:{case.round}:{level}"
    station_id = session.scalar(select(Grid.station_id).where(Grid.id == case.grid_id)) if case.grid_id else None
    if level == 1:
        if case.handler_kind == "department":
            # 代表督单: the grid deputy presses the department; the department is told too.
            if case.deputy_id:
                _notice(session, case, key + ":deputy", text, deputy_id=case.deputy_id)
            _notice(session, case, key + ":department", text, department_id=case.department_id)
        else:
            notify_handler(session, case, "escalation", text, key=key + ":handler")
            _staff_notices(session, case, key, text, station_id, county_only=False)
    elif level == 2:
        _staff_notices(session, case, key, text, station_id, county_only=False)
    else:
        if case.department_id:
            _notice(session, case, key + ":department", text, department_id=case.department_id)
        _staff_notices(session, case, key, text, station_id, county_only=True)


def _staff_notices(session: Session, case: Case, key: str, text: str, station_id: int | None,
                   county_only: bool) -> None:
    from liaison.people.models import Account

    scope = Account.station_id.is_(None) if county_only or station_id is None else or_(
        Account.station_id.is_(None), Account.station_id == station_id)
    for account_id in session.scalars(select(Account.id).where(
            Account.role == "staff", Account.active.is_(True), scope)):
        _notice(session, case, f"{key}:staff:{account_id}", text, account_id=account_id)


def notify_handler(session: Session, case: Case, kind: str, text: str, key: str | None = None) -> None:
    """A notice (and push) to whoever handles the case now: its deputy, its department's accounts, or
    station/county staff while nobody does."""
    key = key or f"{kind}:{case.id}:{case.round}:{(case.deadline or case.accept_deadline).isoformat()}"
    if case.handler_kind == "department" and case.department_id:
        _notice(session, case, key, text, department_id=case.department_id)
    elif case.handler_kind == "deputy" and case.deputy_id:
        _notice(session, case, key, text, deputy_id=case.deputy_id)
    else:
        station_id = session.scalar(select(Grid.station_id).where(Grid.id == case.grid_id)) if case.grid_id else None
        _staff_notices(session, case, key, text, station_id, county_only=False)


def _notice(session: Session, case: Case | None, key: str, text: str, *, deputy_id: int | None = None,
            department_id: int | None = None, account_id: int | None = None, kind: str | None = None) -> bool:
    """A notice in the mini-program (once per key) plus a WeChat push to each account behind it."""
    from liaison.case.models import Notice
    from liaison.people.models import Account

    if session.scalar(select(Notice.id).where(Notice.dedup_key == key)) is not None:
        return False
    session.add(Notice(dedup_key=key, deputy_id=deputy_id, department_id=department_id,
                       account_id=account_id, case_id=case.id if case else None,
                       kind=kind or key.split(":", 1)[0], text=text, detail={}))
    if account_id is not None:
        account_ids: Iterable[int] = [account_id]
    else:
        owner = Account.deputy_id == deputy_id if deputy_id is not None else Account.department_id == department_id
        account_ids = session.scalars(select(Account.id).where(owner, Account.active.is_(True))).all()
    for target in account_ids:
        outbox.add(session, "account_push", f"{key}:push:{target}",
                   {"account_id": target, "text": text,
                    "case_number": case.number if case else "", "title": text},
                   case_id=case.id if case else None)
    return True


def _timeline(session: Session, case: Case, action: str, **detail) -> None:
    session.add(CaseEvent(case_id=case.id, actor_kind="system", action=action, from_status=case.status,
                          to_status=case.status, detail=detail, at=utcnow()))


def _unrated_recipients(session: Session, case: Case) -> list[int]:
    followers = session.scalars(select(CaseFollower.resident_id).where(CaseFollower.case_id == case.id)).all()
    rated = set(session.scalars(select(Rating.resident_id).where(
        Rating.case_id == case.id, Rating.round == case.round)))
    return [r for r in dict.fromkeys([case.resident_id, *followers]) if r not in rated]


def local_day(moment: datetime | None) -> str:
    """A deadline as residents and handlers read it: 2026年10月15日 (China time)."""
    return moment.astimezone(CHINA_TZ).strftime("%Y年%m月%d日") if moment else "—"


# ------------------------------------------------------------------------------------------ daily digest

def send_digests(session: Session, now: datetime | None = None) -> int:
    """Once a day (after digest_hour, China time): each deputy's open and overdue cases."""
    from liaison.people.models import Deputy

    now = now or utcnow()
    local = now.astimezone(CHINA_TZ)
    if local.hour < channels.config()["digest_hour"]:
        return 0
    today: date = local.date()
    sent = 0
    open_statuses = tuple(lifecycle.WORKING_STATUSES)
    for deputy_id, name in session.execute(select(Deputy.id, Deputy.name)):
        rows = session.execute(select(Case.number, Case.deadline, Case.alert).where(
            Case.status.in_(open_statuses),
            or_(Case.deputy_id == deputy_id,
                Case.grid_id.in_(select(DeputyGrid.grid_id).where(DeputyGrid.deputy_id == deputy_id))))).all()
        if not rows:
            continue
        overdue = [r.number for r in rows if r.deadline is not None and r.deadline < now]
        text = (f"{name}代表，今日待办：在办诉求 {len(rows)} 件，其中逾期 {len(overdue)} 件"
                + (f"（{'、'.join(overdue[:5])}{'等' if len(overdue) > 5 else ''}）" if overdue else "") + "。")
        if _notice(session, None, f"digest:{deputy_id}:{today.isoformat()}", text, deputy_id=deputy_id,
                   kind="digest"):
            sent += 1
    session.commit()
    return sent
