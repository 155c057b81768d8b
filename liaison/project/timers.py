"""三色督办 of 民生实事 projects: each unfinished milestone is green until `warn_days` before it is due,
yellow from then, red once due; a project shows its worst milestone's light. `schedule()` sets the
moment the light next changes; the scheduler's sweep (`run_due`) turns it and tells the lead
department and the county staff when it gets worse (once per milestone and colour)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import notices
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Account
from liaison.project import lifecycle
from liaison.project.models import LivelihoodProject, ProjectEvent, ProjectMilestone
from liaison.tenancy.models import County

DEFAULT_WARN_DAYS = 15
ORDER = {"green": 0, "yellow": 1, "red": 2}


def warn_days(session: Session) -> int:
    county_id = tenant.of(session).write_county
    county = session.get(County, county_id) if county_id is not None else None
    own = ((county.settings or {}).get("project") or {}) if county is not None else {}
    return int(own.get("warn_days", DEFAULT_WARN_DAYS))


def milestone_color(milestone: ProjectMilestone, now: datetime, warn: int) -> str:
    if milestone.done_at is not None:
        return "green"
    if now >= milestone.due_at:
        return "red"
    return "yellow" if now >= milestone.due_at - timedelta(days=warn) else "green"


def milestones_of(session: Session, project: LivelihoodProject) -> list[ProjectMilestone]:
    return list(session.scalars(select(ProjectMilestone).where(ProjectMilestone.project_id == project.id)
                                .order_by(ProjectMilestone.due_at, ProjectMilestone.id)))


def color_of(session: Session, project: LivelihoodProject, now: datetime, warn: int) -> tuple[str, ProjectMilestone | None]:
    if project.status == lifecycle.COMPLETED:
        return "green", None
    worst, which = "green", None
    for milestone in milestones_of(session, project):
        color = milestone_color(milestone, now, warn)
        if ORDER[color] > ORDER[worst]:
            worst, which = color, milestone
    return worst, which


def schedule(session: Session, project: LivelihoodProject, now: datetime | None = None) -> None:
    now = now or utcnow()
    warn = warn_days(session)
    project.color = color_of(session, project, now, warn)[0]
    due = []
    if project.status != lifecycle.COMPLETED:
        for milestone in milestones_of(session, project):
            if milestone.done_at is None:
                due += [t for t in (milestone.due_at - timedelta(days=warn), milestone.due_at) if t > now]
    project.next_action_at = min(due) if due else None


def local_day(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y年%m月%d日")


def fire(session: Session, project: LivelihoodProject, now: datetime) -> None:
    before = project.color
    color, milestone = color_of(session, project, now, warn_days(session))
    if milestone is not None and ORDER[color] > ORDER[before]:
        session.add(ProjectEvent(project_id=project.id, actor_kind="system", action="color",
                                 detail={"from": before, "to": color, "milestone": milestone.title}, at=now))
        text = (f"【民生实事三色督办·{lifecycle.COLOR_LABELS[color]}】{project.title}：节点“{milestone.title}”"
                f"计划{local_day(milestone.due_at)}完成，尚未完成。")
        key = f"project_color:{project.id}:{milestone.id}:{color}"
        notices.notify(session, None, f"{key}:department", text, department_id=project.lead_department_id,
                       kind="project_color", detail={"project": project.public_id})
        for account_id in session.scalars(select(Account.id).where(
                Account.role == "staff", Account.active.is_(True), Account.station_id.is_(None))):
            notices.notify(session, None, f"{key}:staff:{account_id}", text, account_id=account_id,
                           kind="project_color", detail={"project": project.public_id})
    schedule(session, project, now)


def run_due(session: Session, now: datetime | None = None) -> int:
    """Turn every due project's light (the session's county); returns how many it handled."""
    now = now or utcnow()
    query = select(LivelihoodProject).where(LivelihoodProject.next_action_at <= now)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    projects = list(session.scalars(query))
    for project in projects:
        fire(session, project, now)
    session.commit()
    return len(projects)
