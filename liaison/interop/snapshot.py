"""随手拍 (代表直通车): a deputy reports what they see on a grid walk: a line of text, a location and
photos (media ids). It becomes a case like any other, marked 代表直通车, with the county's shorter
reply deadline (county setting `snapshot_reply_days`, default SNAPSHOT_REPLY_DAYS working days), and
its own source (`deputy_snapshot`) on the timeline, in the 台账 and in the figures."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import service as cases
from liaison.case import timers
from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError
from liaison.core.types import Actor
from liaison.core.workcalendar import add_working_days
from liaison.people.models import Account, Grid, Resident
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import County

SOURCE = "deputy_snapshot"
LABEL = "代表直通车"
SNAPSHOT_REPLY_DAYS = 3


def reply_days(session: Session, county_id: int) -> int:
    """The county's working days for a 随手拍 case (never longer than its category's own limit)."""
    days = tenancy.setting(session.get(County, county_id), "snapshot_reply_days", SNAPSHOT_REPLY_DAYS)
    if not isinstance(days, int) or days < 1:
        return SNAPSHOT_REPLY_DAYS
    return days


def _reporter(session: Session, account: Account) -> Resident:
    """The deputy as the case's reporter (they follow it and rate it), by their mini-program openid."""
    resident = session.scalar(select(Resident).where(Resident.mp_openid == account.mp_openid)) \
        if account.mp_openid else None
    if resident is None:
        resident = Resident(mp_openid=account.mp_openid, subscribed=False)
        session.add(resident)
        session.flush()
    return resident


def report(session: Session, account: Account, text: str, *, photos: list[str] | None = None,
           location: dict[str, Any] | None = None, grid: Grid | None = None) -> Any:
    """A deputy's 随手拍 becomes a routed case marked 代表直通车 with the shorter deadline."""
    if account.deputy_id is None:
        raise DomainError("只有人大代表可以随手拍", kind=INVALID, code="not_a_deputy")
    if not text.strip():
        raise DomainError("请写一句话说明看到的问题", kind=INVALID, code="empty", field="text")
    resident = _reporter(session, account)
    case = cases.open_case(session, resident, text.strip(), channel=SOURCE, grid=grid)
    if location:
        case.location = location
    days = min(reply_days(session, case.county_id), cases.deadline_days(case.category, "reply"))
    case.deadline = add_working_days(utcnow(), days)
    case.routing = {**(case.routing or {}), "source": SOURCE, "label": LABEL}
    timers.schedule(case)
    actor = Actor("deputy", account.deputy_id)
    cases.record_event(session, case, actor, "snapshot", label=LABEL, photos=list(photos or []),
                       deadline=case.deadline.isoformat(), working_days=days)
    return case
