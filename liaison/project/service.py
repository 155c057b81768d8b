"""民生实事 services: 征集 of candidate projects from residents and deputies and their screening; a
project chosen by the 票决 (`engagement.votes`) handed to a lead department with milestones; progress
reports; completion and the 测评 of deputies and residents; the project 台账's figures."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.case import notices
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, INVALID, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import votes
from liaison.engagement.models import ProjectCandidate, ProjectVote
from liaison.people.models import Department
from liaison.people.service import DEPUTY, RESIDENT, Principal
from liaison.project import access, lifecycle, timers
from liaison.project.models import (
    LivelihoodProject,
    ProjectEvent,
    ProjectMilestone,
    ProjectProposal,
    ProjectRating,
)

RATING_VALUES = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
FIGURES = {
    "total": ("件数", "票决入选并交办的项目数"),
    "completed": ("已完成", "已报告完成的项目数"),
    "completion_rate": ("完成率", "已完成 / 件数"),
    "green": ("绿灯", "按计划推进的在建项目数"),
    "yellow": ("黄灯", "有节点临近未完成的在建项目数"),
    "red": ("红灯", "有节点逾期未完成的在建项目数"),
    "satisfaction_rate": ("满意率", "（满意 + 基本满意）/ 已测评人次（代表和群众）"),
}


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(message, kind=INVALID, code="invalid", field=field)


def _actor(principal: Principal) -> tuple[str, int | None]:
    if principal.role == RESIDENT:
        return RESIDENT, principal.resident.id
    return principal.role, principal.account.id


def _event(session: Session, project: LivelihoodProject, principal: Principal | None, action: str,
           **detail: Any) -> None:
    kind, actor_id = _actor(principal) if principal is not None else ("system", None)
    session.add(ProjectEvent(project_id=project.id, actor_kind=kind, actor_id=actor_id, action=action,
                             detail=detail, at=utcnow()))


# ------------------------------------------------------------------------------------------------ 征集
def propose(session: Session, principal: Principal, title: str, description: str | None) -> ProjectProposal:
    if principal.role not in (RESIDENT, DEPUTY):
        raise access.Forbidden("民生实事项目由群众和代表提出")
    if not (title or "").strip():
        raise _invalid("请填写项目名称", "title")
    proposal = ProjectProposal(title=title.strip()[:100], description=(description or "").strip() or None,
                               source_kind=principal.role,
                               resident_id=principal.resident.id if principal.role == RESIDENT else None,
                               deputy_id=principal.account.deputy_id if principal.role == DEPUTY else None)
    session.add(proposal)
    session.flush()
    return proposal


def screen(session: Session, principal: Principal, proposal: ProjectProposal, accept: bool,
           note: str | None) -> ProjectProposal:
    """Staff screening: accepted proposals become candidates of the next 票决."""
    if not access.is_county_staff(principal):
        raise access.Forbidden("只有县级工委可以筛选征集项目")
    if proposal.status != "submitted":
        raise DomainError("该项目已筛选", kind=CONFLICT, code="already_screened")
    if not accept and not (note or "").strip():
        raise _invalid("未采纳请说明理由", "note")
    proposal.status, proposal.note = ("accepted" if accept else "declined"), (note or "").strip() or None
    session.flush()
    return proposal


def open_vote(session: Session, principal: Principal, title: str, level: str, proposal_ids: list[str],
              others: list[str], max_choices: int = 1) -> ProjectVote:
    """A 票决 among accepted 征集 proposals (each then names the candidate it became) and further
    candidates staff add by title; quorum, majority and eligibility are `engagement.votes`'."""
    refs = list(dict.fromkeys(proposal_ids))
    proposals = list(session.scalars(select(ProjectProposal).where(ProjectProposal.public_id.in_(refs))
                                     .order_by(ProjectProposal.id).with_for_update())) if refs else []
    if len(proposals) != len(refs):
        raise _invalid("征集项目不存在", "proposals")
    for proposal in proposals:
        if proposal.status != "accepted":
            raise DomainError(f"《{proposal.title}》未被采纳，不能列为候选项目", kind=CONFLICT, code="not_accepted",
                              field="proposals")
        if proposal.candidate_id is not None:
            raise DomainError(f"《{proposal.title}》已列入票决", kind=CONFLICT, code="already_candidate",
                              field="proposals")
    titles = [t.strip()[:100] for t in others if t and t.strip()]
    candidates = [{"code": f"P{i}", "title": p.title, "description": p.description}
                  for i, p in enumerate(proposals, start=1)]
    candidates += [{"code": f"P{len(proposals) + i}", "title": t} for i, t in enumerate(titles, start=1)]
    if not (title or "").strip():
        raise _invalid("请填写票决名称", "title")
    vote = votes.create(session, principal, title.strip()[:100], level, candidates, max_choices)
    by_code = {c.code: c for c in votes.candidates_of(session, vote)}
    for i, proposal in enumerate(proposals, start=1):
        proposal.candidate_id = by_code[f"P{i}"].id
    session.flush()
    return vote


def proposals_of_vote(session: Session, vote: ProjectVote) -> dict[int, ProjectProposal]:
    """candidate id → the 征集 proposal it came from."""
    return {p.candidate_id: p for p in session.scalars(select(ProjectProposal).join(
        ProjectCandidate, ProjectCandidate.id == ProjectProposal.candidate_id).where(ProjectCandidate.vote_id == vote.id))}


# --------------------------------------------------------------------------------------------- projects
def create_from_vote(session: Session, principal: Principal, vote: ProjectVote, candidate_code: str,
                     lead_code: str) -> LivelihoodProject:
    """A candidate the 票决 chose becomes a project with its lead department (told at once)."""
    if not access.is_county_staff(principal):
        raise access.Forbidden("只有县级工委可以交办民生实事项目")
    candidate = session.scalar(select(ProjectCandidate).where(ProjectCandidate.vote_id == vote.id,
                                                              ProjectCandidate.code == candidate_code))
    if candidate is None:
        raise _invalid("候选项目不存在", "candidate")
    if vote.status != "closed" or not candidate.chosen:
        raise DomainError("只有票决入选的项目可以交办", kind=CONFLICT, code="not_chosen", field="candidate")
    department = session.scalar(select(Department).where(Department.code == lead_code))
    if department is None:
        raise _invalid("承办单位不存在", "lead_department")
    project = LivelihoodProject(candidate_id=candidate.id, title=candidate.title, lead_department_id=department.id,
                                year=(vote.closed_at or utcnow()).astimezone(CHINA_TZ).year,
                                status=lifecycle.PLANNED, color="green")
    try:
        with session.begin_nested():
            session.add(project)
            session.flush()
    except IntegrityError:
        raise DomainError("该项目已交办", kind=CONFLICT, code="already_created") from None
    _event(session, project, principal, "create", lead=department.name, votes=candidate.votes)
    notices.notify(session, None, f"project_assigned:{project.id}", f"民生实事项目《{project.title}》交由贵单位牵头实施，"
                   "请制定计划节点并按期报告进度。", department_id=department.id, kind="project_assigned",
                   detail={"project": project.public_id})
    return project


def add_milestone(session: Session, principal: Principal, project: LivelihoodProject, title: str,
                  due_at: datetime) -> ProjectMilestone:
    if not (access.is_county_staff(principal) or access.is_lead_department(principal, project)):
        raise access.Forbidden("只有县级工委或牵头单位可以制定计划节点")
    lifecycle.check("add_milestone", project.status)
    if not (title or "").strip():
        raise _invalid("请填写节点名称", "title")
    milestone = ProjectMilestone(project_id=project.id, title=title.strip()[:100], due_at=due_at)
    session.add(milestone)
    session.flush()
    _event(session, project, principal, "add_milestone", title=milestone.title, due_at=due_at.isoformat())
    timers.schedule(session, project)
    return milestone


def start(session: Session, principal: Principal, project: LivelihoodProject) -> None:
    if not (access.is_county_staff(principal) or access.is_lead_department(principal, project)):
        raise access.Forbidden("只有县级工委或牵头单位可以开工")
    transition = lifecycle.check("start", project.status)
    if not timers.milestones_of(session, project):
        raise DomainError("请先制定计划节点", kind=CONFLICT, code="no_milestones")
    project.status = transition.target
    _event(session, project, principal, "start")
    timers.schedule(session, project)


def report_progress(session: Session, principal: Principal, project: LivelihoodProject, milestone_ref: str,
                    note: str) -> ProjectMilestone:
    if not access.is_lead_department(principal, project):
        raise access.Forbidden("只有牵头单位可以报告进度")
    lifecycle.check("report_progress", project.status)
    milestone = session.scalar(select(ProjectMilestone).where(ProjectMilestone.project_id == project.id,
                                                              ProjectMilestone.public_id == milestone_ref))
    if milestone is None:
        raise _invalid("计划节点不存在", "milestone")
    if milestone.done_at is not None:
        raise DomainError("该节点已报告完成", kind=CONFLICT, code="already_done")
    milestone.done_at = utcnow()
    _event(session, project, principal, "report_progress", milestone=milestone.title, note=(note or "").strip())
    timers.schedule(session, project)
    return milestone


def complete(session: Session, principal: Principal, project: LivelihoodProject, note: str) -> None:
    if not (access.is_county_staff(principal) or access.is_lead_department(principal, project)):
        raise access.Forbidden("只有县级工委或牵头单位可以报告完成")
    transition = lifecycle.check("complete", project.status)
    project.status, project.completed_at = transition.target, utcnow()
    _event(session, project, principal, "complete", note=(note or "").strip())
    timers.schedule(session, project)


def rate(session: Session, principal: Principal, project: LivelihoodProject, value: str) -> ProjectRating:
    """Completion 测评: each deputy and each resident once."""
    if principal.role not in (DEPUTY, RESIDENT):
        raise access.Forbidden("完成测评由代表和群众进行")
    lifecycle.check("rate", project.status)
    if value not in RATING_VALUES:
        raise _invalid("测评应为 满意、基本满意 或 不满意", "value")
    kind, _ = _actor(principal)
    who = principal.resident.id if kind == RESIDENT else principal.account.deputy_id
    row = ProjectRating(project_id=project.id, rater=f"{kind}:{who}", rater_kind=kind, value=value)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise DomainError("您已测评过该项目", kind=CONFLICT, code="already_rated") from None
    return row


def ratings_of(session: Session, project: LivelihoodProject) -> dict[str, int]:
    counts = {value: 0 for value in RATING_VALUES}
    for value in session.scalars(select(ProjectRating.value).where(ProjectRating.project_id == project.id)):
        counts[value] += 1
    return counts


def figures(session: Session, principal: Principal, year: int) -> dict[str, Any]:
    projects = list(session.scalars(select(LivelihoodProject).where(
        access.condition(principal), LivelihoodProject.year == year)))
    done = [p for p in projects if p.status == lifecycle.COMPLETED]
    working = [p for p in projects if p.status != lifecycle.COMPLETED]
    rated = satisfied = 0
    for project in projects:
        counts = ratings_of(session, project)
        rated += sum(counts.values())
        satisfied += counts["satisfied"] + counts["basically_satisfied"]
    return {
        "total": len(projects), "completed": len(done),
        "completion_rate": round(len(done) / len(projects), 4) if projects else None,
        "green": sum(1 for p in working if p.color == "green"),
        "yellow": sum(1 for p in working if p.color == "yellow"),
        "red": sum(1 for p in working if p.color == "red"),
        "satisfaction_rate": round(satisfied / rated, 4) if rated else None,
    }

