"""The legal reply limit of a 代表建议, its reminder and escalation, and the scheduler's sweep.

By law a suggestion is answered within three months of 交办, at most six with approval; each county
may set its own (`counties.settings["suggestion"]`, see `DEFAULTS`). Months are calendar months in
China time (交办 on 31 January: due 30 April). Every suggestion in handling carries
`next_action_at`, the earliest moment something is due (the reminder, the next escalation level);
`schedule()` recomputes it after every change and `run_due()` (the scheduler, every minute) fires
what is due. Nothing here changes a status, so the sweep lives beside the timers.

Escalation: level 1 at the deadline (the departments and the station's and county's staff are told,
逾期未答复); level 2 `escalate_after_working_days` later (county staff: 主任会议督办); level 3 as much
again later (常委会领导约谈: county staff, the departments, and the proposing deputies, who learn that
their suggestion is still unanswered and what is being done).
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from liaison.case import notices
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ, add_working_days
from liaison.people.models import Account, Deputy
from liaison.suggestion import lifecycle
from liaison.suggestion.models import Suggestion, SuggestionDepartment, SuggestionDeputy, SuggestionEvent
from liaison.tenancy.models import County

DEFAULTS: dict[str, Any] = {
    # The review steps in order: code, label, who decides (station: the lead deputy's station staff
    # or county staff; county: county staff only).
    "review_steps": [
        {"code": "station", "label": "联络站初审", "by": "station"},
        {"code": "committee", "label": "代表工委审核", "by": "county"},
        {"code": "directors", "label": "主任会议审定", "by": "county"},
    ],
    "reply_months": 3,           # from 交办
    "max_reply_months": 6,       # with an approved extension
    "second_round_months": 1,    # 二次办理's new limit
    "second_round_on_basic": False,  # True: 基本满意 also starts 二次办理
    "reminder_days_before": 15,
    "escalate_after_working_days": 10,
}
MAX_LEVEL = 3
LEVEL_LABELS = {1: "逾期未答复督办", 2: "主任会议督办", 3: "常委会领导约谈督办"}


@dataclass(frozen=True)
class Policy:
    """A county's suggestion settings (its overrides on `DEFAULTS`)."""

    values: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def policy(session: Session) -> Policy:
    """The settings of the county this unit of work writes in."""
    county_id = tenant.of(session).write_county
    county = session.get(County, county_id) if county_id is not None else None
    own = ((county.settings or {}).get("suggestion") or {}) if county is not None else {}
    return Policy({**DEFAULTS, **own})


def add_months(moment: datetime, months: int) -> datetime:
    """The same time of day `months` calendar months later in China time (day clamped to the month)."""
    local = moment.astimezone(CHINA_TZ)
    month0 = local.month - 1 + months
    year, month = local.year + month0 // 12, month0 % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(moment.tzinfo)


def local_day(moment: datetime | None) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y年%m月%d日") if moment else "—"


def reminder_time(suggestion: Suggestion, rules: Policy) -> datetime:
    return suggestion.deadline - timedelta(days=int(rules.reminder_days_before))


def escalation_time(suggestion: Suggestion, level: int, rules: Policy) -> datetime:
    if level == 1:
        return suggestion.deadline
    return add_working_days(suggestion.deadline, int(rules.escalate_after_working_days) * (level - 1))


def is_overdue(suggestion: Suggestion, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (suggestion.status in lifecycle.HANDLING_STATUSES and suggestion.deadline is not None
            and suggestion.deadline < now)


def schedule(suggestion: Suggestion, rules: Policy, now: datetime | None = None) -> None:
    """Recompute the suggestion's next timer after any change."""
    now = now or utcnow()
    due: list[datetime] = []
    if suggestion.status in lifecycle.HANDLING_STATUSES and suggestion.deadline is not None:
        if suggestion.reminded_for != suggestion.deadline and now < suggestion.deadline:
            due.append(reminder_time(suggestion, rules))
        level = suggestion.escalation_level or 0
        if level < MAX_LEVEL:
            due.append(escalation_time(suggestion, level + 1, rules))
    suggestion.next_action_at = min(due) if due else None


# ---------------------------------------------------------------------------------------- telling people
def system_event(session: Session, suggestion: Suggestion, action: str, **detail: Any) -> None:
    session.add(SuggestionEvent(suggestion_id=suggestion.id, actor_kind="system", action=action,
                                from_status=suggestion.status, to_status=suggestion.status,
                                detail=detail, at=utcnow()))


def tell_departments(session: Session, suggestion: Suggestion, key: str, text: str, *,
                     lead_only: bool = False) -> None:
    """A notice (and push) to each handling department (主办 first), once per `key`."""
    rows = session.execute(select(SuggestionDepartment.department_id, SuggestionDepartment.role).where(
        SuggestionDepartment.suggestion_id == suggestion.id)).all()
    for department_id, role in rows:
        if lead_only and role != "lead":
            continue
        notices.notify(session, None, f"{key}:department:{department_id}", text,
                       department_id=department_id, kind=key.split(":", 1)[0],
                       detail={"suggestion": suggestion.public_id, "role": role})


def tell_deputies(session: Session, suggestion: Suggestion, key: str, text: str, deputy_ids) -> None:
    for deputy_id in deputy_ids:
        notices.notify(session, None, f"{key}:deputy:{deputy_id}", text, deputy_id=deputy_id,
                       kind=key.split(":", 1)[0], detail={"suggestion": suggestion.public_id})


def tell_staff(session: Session, suggestion: Suggestion, key: str, text: str, *,
               county_only: bool = False) -> None:
    """County staff and (unless `county_only`) the lead deputy's station's staff."""
    station_id = session.scalar(select(Deputy.station_id).where(Deputy.id == suggestion.lead_deputy_id))
    where = Account.station_id.is_(None) if county_only or station_id is None else or_(
        Account.station_id.is_(None), Account.station_id == station_id)
    for account_id in session.scalars(select(Account.id).where(
            Account.role == "staff", Account.active.is_(True), where)):
        notices.notify(session, None, f"{key}:staff:{account_id}", text, account_id=account_id,
                       kind=key.split(":", 1)[0], detail={"suggestion": suggestion.public_id})


def escalate(session: Session, suggestion: Suggestion, level: int) -> None:
    suggestion.escalation_level = level
    system_event(session, suggestion, "escalate", level=level, label=LEVEL_LABELS[level])
    text = (f"【{LEVEL_LABELS[level]}】代表建议 {suggestion.number}《{suggestion.title}》"
            f"答复期限 {local_day(suggestion.deadline)} 已过，尚未答复，请立即办理答复。")
    key = f"suggestion_escalate:{suggestion.id}:{suggestion.round}:{level}"
    tell_departments(session, suggestion, key, text)
    tell_staff(session, suggestion, key, text, county_only=level >= 2)
    if level >= 3:
        deputy_ids = session.scalars(select(SuggestionDeputy.deputy_id).where(
            SuggestionDeputy.suggestion_id == suggestion.id).order_by(SuggestionDeputy.deputy_id)).all()
        tell_deputies(session, suggestion, key,
                      f"您提出的代表建议 {suggestion.number}《{suggestion.title}》已过答复期限"
                      f"（{local_day(suggestion.deadline)}）仍未答复，常委会领导将约谈承办单位督促办理，"
                      "答复后会请您测评。", deputy_ids)


# ---------------------------------------------------------------------------------------------- the sweep
def due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    query = (select(Suggestion.id).where(Suggestion.next_action_at <= now)
             .order_by(Suggestion.next_action_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def fire(session: Session, suggestion: Suggestion, now: datetime, rules: Policy) -> None:
    if suggestion.status in lifecycle.HANDLING_STATUSES and suggestion.deadline is not None:
        if (suggestion.reminded_for != suggestion.deadline
                and reminder_time(suggestion, rules) <= now < suggestion.deadline):
            suggestion.reminded_for = suggestion.deadline
            system_event(session, suggestion, "remind", deadline=suggestion.deadline.isoformat())
            tell_departments(session, suggestion,
                             f"suggestion_reminder:{suggestion.id}:{suggestion.deadline.isoformat()}",
                             f"代表建议 {suggestion.number}《{suggestion.title}》将于"
                             f"{local_day(suggestion.deadline)}到期，请按时答复。", lead_only=True)
        for level in range((suggestion.escalation_level or 0) + 1, MAX_LEVEL + 1):
            if now < escalation_time(suggestion, level, rules):
                break
            escalate(session, suggestion, level)
    schedule(suggestion, rules, now)


def run_due(session: Session, now: datetime | None = None, *, batch: int = 200) -> int:
    """Fire every due suggestion timer of the session's county; returns how many it handled."""
    now = now or utcnow()
    rules = policy(session)
    seen: set[int] = set()
    while True:
        ids = [i for i in due_ids(session, now, batch) if i not in seen]
        if not ids:
            session.commit()
            break
        for suggestion in session.scalars(select(Suggestion).where(Suggestion.id.in_(ids))):
            fire(session, suggestion, now, rules)
        session.commit()
        seen.update(ids)
    return len(seen)
