"""API of 民生实事 after the 票决: 征集 of candidate projects and their screening, chosen projects handed
to a lead department, milestones and progress (三色督办), completion, 测评, and the project 台账's
figures. The vote itself is in engagement_views (/project-votes)."""
from __future__ import annotations

import base64
from datetime import date, datetime, time
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import votes
from liaison.project import access, lifecycle, timers
from liaison.project import ledger as project_ledger_book
from liaison.project import service as projects
from liaison.project.models import LivelihoodProject, ProjectProposal

from . import schemas as s
from .framework import ALL_ROLES, Context, endpoint

RESIDENT, DEPUTY, DEPARTMENT, STAFF = "resident", "deputy", "department", "staff"


class ProposalIn(s.Request):
    title: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)


class ScreenIn(s.Request):
    accept: bool
    note: str | None = Field(default=None, max_length=500)


class ProposalOut(s.Out):
    id: str
    title: str
    description: str | None
    source_kind: str
    status: str
    note: str | None
    created_at: datetime


class ProjectFromVoteIn(s.Request):
    candidate: str = s.Code
    lead_department: str = s.Code


class MilestoneIn(s.Request):
    title: str = Field(min_length=1, max_length=100)
    due_date: date = Field(description="计划完成日期")


class ProgressIn(s.Request):
    milestone: str = Field(min_length=1, max_length=24)
    note: str | None = Field(default=None, max_length=1000)


class ProjectNoteIn(s.Request):
    note: str | None = Field(default=None, max_length=1000)


class ProjectRatingIn(s.Request):
    value: s.RatingValue


class MilestoneOut(s.Out):
    id: str
    title: str
    due_at: datetime
    done_at: datetime | None
    color: Literal["green", "yellow", "red"]


class ProjectOut(s.Out):
    id: str
    title: str
    year: int
    lead_department: s.Ref
    status: str
    status_label: str
    color: Literal["green", "yellow", "red"]
    color_label: str
    milestones: list[MilestoneOut]
    ratings: dict[str, int]


class ProjectLedgerQuery(s.Request):
    year: int | None = Field(default=None, ge=2000, le=2100)


class ProjectFigureOut(s.Out):
    key: str
    label: str
    definition: str
    value: float | int | None


class ProjectLedgerOut(s.Out):
    year: int
    figures: list[ProjectFigureOut]
    projects: list[ProjectOut]


def _project(ctx: Context, public_id: str) -> LivelihoodProject:
    return access.get(ctx.session, ctx.principal, public_id)


def _visible(ctx: Context, public_id: str) -> None:
    _project(ctx, public_id)


def _vote_visible(ctx: Context, public_id: str) -> None:
    votes.by_public_id(ctx.session, public_id)


def _proposal_visible(ctx: Context, public_id: str) -> None:
    access.get_proposal(ctx.session, ctx.principal, public_id)


def _out(ctx: Context, project: LivelihoodProject) -> ProjectOut:
    now, warn = utcnow(), timers.warn_days(ctx.session)
    return ProjectOut(
        id=project.public_id, title=project.title, year=project.year,
        lead_department=s.Ref(code=project.lead_department.code, name=project.lead_department.name),
        status=project.status, status_label=lifecycle.STATUS_LABELS[project.status], color=project.color,
        color_label=lifecycle.COLOR_LABELS[project.color],
        milestones=[MilestoneOut(id=m.public_id, title=m.title, due_at=m.due_at, done_at=m.done_at,
                                 color=timers.milestone_color(m, now, warn))
                    for m in timers.milestones_of(ctx.session, project)],
        ratings=projects.ratings_of(ctx.session, project))


def _proposal_out(p: ProjectProposal) -> ProposalOut:
    return ProposalOut(id=p.public_id, title=p.title, description=p.description, source_kind=p.source_kind,
                       status=p.status, note=p.note, created_at=p.created_at)


@endpoint("POST", "/project-proposals", summary="征集：群众或代表提出民生实事候选项目", roles=(RESIDENT, DEPUTY),
          body=ProposalIn, response=ProposalOut, status=201, tag="projects")
def create_project_proposal(ctx: Context):
    return _proposal_out(projects.propose(ctx.session, ctx.principal, ctx.body.title, ctx.body.description))


@endpoint("GET", "/project-proposals", summary="征集的项目（工委：全部；群众和代表：本人提出的）",
          roles=(RESIDENT, DEPUTY, STAFF), response=list[ProposalOut], tag="projects")
def list_project_proposals(ctx: Context):
    rows = ctx.session.scalars(select(ProjectProposal).where(access.proposal_condition(ctx.principal))
                               .order_by(ProjectProposal.id.desc()).limit(200))
    return [_proposal_out(p) for p in rows]


@endpoint("POST", "/project-proposals/<public_id>/screen", summary="筛选征集项目（县级工委：采纳或说明不采纳理由）",
          roles=(STAFF,), body=ScreenIn, response=ProposalOut, visible=_proposal_visible, tag="projects")
def screen_project_proposal(ctx: Context, public_id: str):
    proposal = access.get_proposal(ctx.session, ctx.principal, public_id)
    return _proposal_out(projects.screen(ctx.session, ctx.principal, proposal, ctx.body.accept, ctx.body.note))


@endpoint("POST", "/project-votes/<public_id>/projects", summary="票决入选项目交牵头单位实施（县级工委）",
          roles=(STAFF,), body=ProjectFromVoteIn, response=ProjectOut, status=201, visible=_vote_visible,
          tag="projects")
def create_project(ctx: Context, public_id: str):
    vote = votes.by_public_id(ctx.session, public_id)
    return _out(ctx, projects.create_from_vote(ctx.session, ctx.principal, vote, ctx.body.candidate,
                                               ctx.body.lead_department))


@endpoint("GET", "/projects", summary="民生实事项目（部门：本单位牵头的；群众：已完成的）", roles=ALL_ROLES,
          response=list[ProjectOut], tag="projects")
def list_projects(ctx: Context):
    rows = ctx.session.scalars(select(LivelihoodProject).where(access.condition(ctx.principal))
                               .order_by(LivelihoodProject.id.desc()).limit(200))
    return [_out(ctx, p) for p in rows]


@endpoint("GET", "/projects/<public_id>", summary="项目详情（计划节点与三色）", roles=ALL_ROLES, response=ProjectOut,
          tag="projects")
def get_project(ctx: Context, public_id: str):
    return _out(ctx, _project(ctx, public_id))


@endpoint("POST", "/projects/<public_id>/milestones", summary="新增计划节点（县级工委或牵头单位）",
          roles=(DEPARTMENT, STAFF), body=MilestoneIn, response=ProjectOut, status=201, visible=_visible,
          tag="projects")
def add_project_milestone(ctx: Context, public_id: str):
    project = _project(ctx, public_id)
    due = datetime.combine(ctx.body.due_date, time(18, 0), tzinfo=CHINA_TZ)
    projects.add_milestone(ctx.session, ctx.principal, project, ctx.body.title, due)
    return _out(ctx, project)


@endpoint("POST", "/projects/<public_id>/start", summary="开工实施", roles=(DEPARTMENT, STAFF), response=ProjectOut,
          visible=_visible, tag="projects")
def start_project(ctx: Context, public_id: str):
    project = _project(ctx, public_id)
    projects.start(ctx.session, ctx.principal, project)
    return _out(ctx, project)


@endpoint("POST", "/projects/<public_id>/progress", summary="牵头单位报告节点完成", roles=(DEPARTMENT,),
          body=ProgressIn, response=ProjectOut, visible=_visible, tag="projects")
def report_project_progress(ctx: Context, public_id: str):
    project = _project(ctx, public_id)
    projects.report_progress(ctx.session, ctx.principal, project, ctx.body.milestone, ctx.body.note or "")
    return _out(ctx, project)


@endpoint("POST", "/projects/<public_id>/complete", summary="报告项目完成", roles=(DEPARTMENT, STAFF), body=ProjectNoteIn,
          response=ProjectOut, visible=_visible, tag="projects")
def complete_project(ctx: Context, public_id: str):
    project = _project(ctx, public_id)
    projects.complete(ctx.session, ctx.principal, project, ctx.body.note or "")
    return _out(ctx, project)


@endpoint("POST", "/projects/<public_id>/rating", summary="完成测评（代表和群众，每人一次）", roles=(RESIDENT, DEPUTY),
          body=ProjectRatingIn, response=ProjectOut, visible=_visible, tag="projects")
def rate_project(ctx: Context, public_id: str):
    project = _project(ctx, public_id)
    projects.rate(ctx.session, ctx.principal, project, ctx.body.value)
    return _out(ctx, project)


@endpoint("GET", "/project-ledger", summary="民生实事台账与指标（件数、完成率、三色、满意率）", roles=(STAFF,),
          query=ProjectLedgerQuery, response=ProjectLedgerOut, tag="projects")
def project_ledger(ctx: Context):
    year = ctx.query.year or utcnow().astimezone(CHINA_TZ).year
    values = projects.figures(ctx.session, ctx.principal, year)
    rows = ctx.session.scalars(select(LivelihoodProject).where(LivelihoodProject.year == year)
                               .order_by(LivelihoodProject.id))
    return ProjectLedgerOut(year=year, figures=[ProjectFigureOut(key=k, label=label, definition=d, value=values[k])
                                                for k, (label, d) in projects.FIGURES.items()],
                            projects=[_out(ctx, p) for p in rows])


class ProjectLedgerFileOut(s.Out):
    filename: str
    content_type: str
    content_base64: str


@endpoint("GET", "/project-ledger/export", summary="导出民生实事台账（XLSX）", roles=(STAFF,),
          query=ProjectLedgerQuery, response=ProjectLedgerFileOut, tag="projects")
def export_project_ledger(ctx: Context):
    year = ctx.query.year or utcnow().astimezone(CHINA_TZ).year
    content = project_ledger_book.export_xlsx(ctx.session, ctx.principal, year)
    return ProjectLedgerFileOut(filename=f"民生实事台账-{year}.xlsx",
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                content_base64=base64.b64encode(content).decode("ascii"))
