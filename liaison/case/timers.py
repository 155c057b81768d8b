"""Deadlines, reminders, escalation (督办) and the rating loop's timers.

Every case carries `next_action_at`: the earliest moment something is due for it (an acceptance
reminder, a deadline reminder, the next escalation level, a rating reminder, the rating expiry).
`schedule()` recomputes it whenever the case changes; the scheduler's sweep (`case.sweep.run_due`,
above the case services because a rating expiry is a status change) fires what is due. Notices go
through `case.notices`.

Escalation chain (levels after the deadline, in working days, in notifications.json):
1 — the grid deputy presses the department (代表督单); for a case the deputy handles, station staff;
2 — liaison station / 人大工委 staff; 3 — department leadership and county staff.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from liaison.case import lifecycle, notices
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ, add_working_days, is_working_day
from liaison.messaging import channels
from liaison.people.models import Deputy, DeputyGrid

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


def rating_times(case: Case) -> tuple[datetime, datetime]:
    """When a closed case's resident is reminded to rate, and when the rating expires."""
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
        remind_at, expire_at = rating_times(case)
        due.append(expire_at if case.rating_reminded else remind_at)
    case.next_action_at = min(due) if due else None


def deadlines_changed(case: Case, accept_days: int | None = None, now: datetime | None = None) -> None:
    """A new handling period starts (routing, dispatch, second round): fresh acceptance timer."""
    now = now or utcnow()
    if accept_days is not None:
        case.accept_deadline = add_working_days(now, accept_days)
        case.accept_reminded = False
    schedule(case, now)


def escalate(session: Session, case: Case, level: int, *, reason: str) -> None:
    """Raise the case to escalation `level` (督办): timeline entry and notices to that level."""
    case.escalation_level = level
    system_event(session, case, "escalate", level=level, label=LEVEL_LABELS[level], reason=reason)
    text = f"【{LEVEL_LABELS[level]}】诉求 {case.number}（{reason}），办理时限 {local_day(case.deadline)}。"
    key = f"escalate:{case.id}:{case.round}:{level}"
    if level == 1:
        if case.handler_kind == "department":
            # 代表督单: the grid deputy presses the department; the department is told too.
            if case.deputy_id:
                notices.notify(session, case, key + ":deputy", text, deputy_id=case.deputy_id)
            notices.notify(session, case, key + ":department", text, department_id=case.department_id)
            if case.round >= 2:  # in the second round 人大 staff supervise it themselves too
                notices.notify_staff(session, case, key, text)
        else:
            notices.notify_handler(session, case, "escalation", text, key=key + ":handler")
            notices.notify_staff(session, case, key, text)
    elif level == 2:
        notices.notify_staff(session, case, key, text)
    else:
        if case.department_id:
            notices.notify(session, case, key + ":department", text, department_id=case.department_id)
        notices.notify_staff(session, case, key, text, county_only=True)


def system_event(session: Session, case: Case, action: str, **detail) -> None:
    """A timeline entry by the system that does not change the status (reminders, escalation)."""
    session.add(CaseEvent(case_id=case.id, actor_kind="system", action=action, from_status=case.status,
                          to_status=case.status, detail=detail, at=utcnow()))


def local_day(moment: datetime | None) -> str:
    """A deadline as residents and handlers read it: 2026年10月15日 (China time)."""
    return moment.astimezone(CHINA_TZ).strftime("%Y年%m月%d日") if moment else "—"


# ------------------------------------------------------------------------------------------ daily digest

def send_digests(session: Session, now: datetime | None = None) -> int:
    """Once a day (after digest_hour, China time): each deputy's open and overdue cases."""
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
        if notices.notify(session, None, f"digest:{deputy_id}:{today.isoformat()}", text,
                          deputy_id=deputy_id, kind="digest"):
            sent += 1
    session.commit()
    return sent
