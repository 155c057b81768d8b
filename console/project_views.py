"""Console pages of 民生实事: the year's 台账 (figures, chosen projects in 三色, XLSX), the 征集
proposals with their screening and the candidate each became, the 票决 sessions with their quorum
and majority result, and a project's page (milestones in green/yellow/red, progress, completion,
测评 results). Every rule is the domain's (`liaison.project`, `liaison.engagement.votes`)."""
from __future__ import annotations

from datetime import datetime, time
from typing import Any
from urllib.parse import quote

from flask import Response, flash, g, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.errors import DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import votes
from liaison.engagement.models import ProjectCandidate, ProjectVote
from liaison.people.models import DEPUTY_LEVEL_NAMES, Account, Department
from liaison.people.service import Principal
from liaison.project import access, lifecycle, timers
from liaison.project import ledger as book
from liaison.project import service as projects
from liaison.project.models import LivelihoodProject, ProjectEvent, ProjectProposal

from . import export
from . import suggestion_forms as sforms
from .views import DESK_PAGES, _error_message, _error_status, bp, signed_in

DESK_PAGES.update({"console.projects_page", "console.export_projects", "console.project_page",
                   "console.project_action"})
PROJECT_ACTIONS: dict[str, tuple[type, str, str]] = {
    "add_milestone": (sforms.MilestoneForm, "新增计划节点", "已新增计划节点"),
    "start": (sforms.CompleteForm, "开工实施", "已开工"),
    "report_progress": (sforms.ProgressForm, "报告节点完成", "已报告节点完成"),
    "complete": (sforms.CompleteForm, "报告项目完成", "已报告完成，请代表和群众测评"),
}
EVENT_LABELS = {"create": "票决入选，交牵头单位实施", "add_milestone": "新增计划节点", "start": "开工实施",
                "report_progress": "报告节点完成", "complete": "报告完成", "color": "三色督办变化"}
COLOR_NAMES = {"green": "绿灯", "yellow": "黄灯", "red": "红灯"}


def _refused(error: Exception):
    return render_template("console/error.html", title="无法办理", message=_error_message(error)), \
        _error_status(error)


def _first_error(form) -> str:
    return next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")


def _this_year() -> int:
    return utcnow().astimezone(CHINA_TZ).year


def _year() -> int:
    value = request.args.get("year") or ""
    if not value:
        return _this_year()
    if not value.isdigit() or not 2000 <= int(value) <= 2100:
        raise DomainError("年度无效", code="bad_filter", field="year")
    return int(value)


def _county_staff() -> bool:
    return access.is_county_staff(g.principal)


def _vote_form(session, form=None):
    form = form or sforms.VoteForm(prefix="vote")
    form.level.choices = list(DEPUTY_LEVEL_NAMES.items())
    form.proposals.choices = [(p.public_id, p.title) for p in session.scalars(
        select(ProjectProposal).where(ProjectProposal.status == "accepted", ProjectProposal.candidate_id.is_(None))
        .order_by(ProjectProposal.id))]
    return form


# ---------------------------------------------------------------------------------------------- 台账
def _projects_page(session, *, status: int = 200, error: str | None = None, vote_form=None):
    try:
        year = _year()
    except DomainError as error_:
        return render_template("console/error.html", title="筛选条件无效", message=error_.message), 400
    now, warn = utcnow(), timers.warn_days(session)
    rows = [(p, book.row_values(session, p, now)) for p in book.projects_of(session, g.principal, year)]
    proposals = list(session.scalars(select(ProjectProposal).where(access.proposal_condition(g.principal))
                                     .order_by(ProjectProposal.id.desc()).limit(200)))
    candidates = {c.id: c for c in session.scalars(select(ProjectCandidate).where(
        ProjectCandidate.id.in_([p.candidate_id for p in proposals if p.candidate_id])))}
    vote_ids = {c.vote_id for c in candidates.values()}
    vote_of = {v.id: v for v in session.scalars(select(ProjectVote).where(ProjectVote.id.in_(vote_ids)))}
    vote_rows = []
    if g.principal.role == "staff":
        vote_rows = [(v, votes.summary(session, v)) for v in session.scalars(
            select(ProjectVote).order_by(ProjectVote.id.desc()).limit(50))]
    return render_template(
        "console/projects.html", year=year, rows=rows, layout=book.LAYOUT, figures=projects.FIGURES,
        values=projects.figures(session, g.principal, year), proposals=proposals, candidates=candidates,
        vote_of=vote_of, votes=vote_rows, screen_form=sforms.ScreenForm(prefix="screen"),
        vote_form=_vote_form(session, vote_form) if _county_staff() else None, county_staff=_county_staff(),
        levels=DEPUTY_LEVEL_NAMES, colors=COLOR_NAMES, warn=warn, error=error,
        years=range(_this_year() + 1, _this_year() - 6, -1)), status


@bp.get("/projects")
@signed_in
def projects_page(session):
    return _projects_page(session)


@bp.get("/projects/export.xlsx")
@signed_in
def export_projects(session):
    try:
        year = _year()
    except DomainError as error:
        return render_template("console/error.html", title="筛选条件无效", message=error.message), 400
    account_id, county_scope = g.principal.account.id, g.county_scope

    def chunks():
        with tenant.use(county_scope), db.session_scope() as reading:
            account = reading.get(Account, account_id)
            principal = Principal(account.role, account=account)
            yield from export.stream_workbook(
                f"{year}年民生实事台账", book.LAYOUT, book.sheet_rows(reading, principal, year),
                title=f"{year}年民生实事项目推进台账",
                widths=[6, 30, 6, 20, 8, 18, 9, 9, 11, 20, 12, 11, 11, 8, 6, 8, 6, 8])

    response = Response(stream_with_context(chunks()), mimetype=export.XLSX_MIME)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"projects-{year}.xlsx\"; filename*=UTF-8''{quote(f'民生实事台账-{year}.xlsx')}")
    return response


# ---------------------------------------------------------------------------------------------- 征集
@bp.post("/project-proposals/<public_id>/screen")
@signed_in
def screen_proposal(session, public_id: str):
    try:
        proposal = access.get_proposal(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    form = sforms.ScreenForm(prefix="screen")
    if not form.validate():
        return _projects_page(session, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            projects.screen(session, g.principal, proposal, form.decision.data == "accept", form.note.data)
    except DomainError as error:
        session.expire_all()
        return _projects_page(session, status=_error_status(error), error=_error_message(error))
    flash("已采纳为候选项目" if proposal.status == "accepted" else "已记录不采纳", "info")
    return redirect(url_for("console.projects_page"), 303)


# ---------------------------------------------------------------------------------------------- 票决
@bp.post("/project-votes")
@signed_in
def open_vote(session):
    form = _vote_form(session, sforms.VoteForm(prefix="vote"))
    if not _county_staff():
        return render_template("console/error.html", title="无权访问", message="只有县级工委账号可以发起票决。"), 403
    if not form.validate():
        return _projects_page(session, status=422, error=_first_error(form), vote_form=form)
    others = [line for line in (form.others.data or "").splitlines() if line.strip()]
    try:
        with session.begin_nested():
            vote = projects.open_vote(session, g.principal, form.title.data, form.level.data, form.proposals.data or [],
                                      others, form.max_choices.data)
    except DomainError as error:
        session.expire_all()
        return _projects_page(session, status=_error_status(error), error=_error_message(error), vote_form=form)
    flash("票决已发起，代表可在小程序中投票", "info")
    return redirect(url_for("console.vote_page", public_id=vote.public_id), 303)


def _vote_or_refusal(session, public_id: str):
    if g.principal.role != "staff":
        return None, (render_template("console/error.html", title="无权访问", message="票决由工委管理。"), 403)
    try:
        return votes.by_public_id(session, public_id), None
    except DomainError as error:
        return None, _refused(error)


def _render_vote(session, vote: ProjectVote, *, status: int = 200, error: str | None = None, project_form=None):
    rules = votes.rules(session)
    summary = votes.summary(session, vote)
    made = set(session.scalars(select(LivelihoodProject.candidate_id).where(LivelihoodProject.candidate_id.in_(
        [c.id for c in votes.candidates_of(session, vote)]))))
    chosen = [c for c in votes.candidates_of(session, vote) if c.chosen and c.id not in made]
    if _county_staff() and chosen and project_form is None:
        project_form = sforms.ProjectFromVoteForm(prefix="project")
    if project_form is not None:
        project_form.candidate.choices = [(c.code, f"{c.code} {c.title}") for c in chosen]
        project_form.lead.choices = [(d.code, d.name) for d in session.scalars(select(Department)
                                                                                .order_by(Department.code))]
    electorate = summary["electorate"]
    quorum = float(rules["quorum"])
    return render_template(
        "console/vote.html", vote=vote, summary=summary, candidates=votes.candidates_of(session, vote),
        sources=projects.proposals_of_vote(session, vote), level=DEPUTY_LEVEL_NAMES.get(vote.level, vote.level),
        quorum=quorum, majority=rules["majority"], needed=int(electorate * quorum) + 1,
        has_quorum=summary["ballots"] > electorate * quorum and electorate > 0,
        can_close=_county_staff() and vote.status == "open", close_form=sforms.CompleteForm(prefix="close"),
        project_form=project_form if chosen and _county_staff() else None, made=made, error=error), status


@bp.get("/project-votes/<public_id>")
@signed_in
def vote_page(session, public_id: str):
    vote, refusal = _vote_or_refusal(session, public_id)
    return refusal or _render_vote(session, vote)


@bp.post("/project-votes/<public_id>/close")
@signed_in
def close_vote(session, public_id: str):
    vote, refusal = _vote_or_refusal(session, public_id)
    if refusal:
        return refusal
    form = sforms.CompleteForm(prefix="close")
    if not form.validate():
        return _render_vote(session, vote, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            votes.close(session, g.principal, vote)
    except DomainError as error:
        session.expire_all()
        return _render_vote(session, vote, status=_error_status(error), error=_error_message(error))
    flash("票决已结束，结果已公布", "info")
    return redirect(url_for("console.vote_page", public_id=vote.public_id), 303)


@bp.post("/project-votes/<public_id>/projects")
@signed_in
def project_from_vote(session, public_id: str):
    vote, refusal = _vote_or_refusal(session, public_id)
    if refusal:
        return refusal
    form = sforms.ProjectFromVoteForm(prefix="project")
    form.candidate.choices = [(c.code, c.title) for c in votes.candidates_of(session, vote)]
    form.lead.choices = [(d.code, d.name) for d in session.scalars(select(Department))]
    if not form.validate():
        return _render_vote(session, vote, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            project = projects.create_from_vote(session, g.principal, vote, form.candidate.data, form.lead.data)
    except DomainError as error:
        session.expire_all()
        return _render_vote(session, vote, status=_error_status(error), error=_error_message(error))
    flash("已交牵头单位实施", "info")
    return redirect(url_for("console.project_page", public_id=project.public_id), 303)


# ---------------------------------------------------------------------------------------------- 项目
def _may(action: str, project: LivelihoodProject) -> bool:
    """Offer the action only when the domain would allow this caller and the status."""
    principal = g.principal
    lead = access.is_lead_department(principal, project)
    who = {"add_milestone": lead or _county_staff(), "start": lead or _county_staff(),
           "report_progress": lead, "complete": lead or _county_staff()}[action]
    return who and project.status in lifecycle.ACTIONS[action].sources


def _project_forms(session, project: LivelihoodProject, failed: dict[str, Any] | None = None) -> dict[str, Any]:
    found = {}
    for action, (form_class, _label, _done) in PROJECT_ACTIONS.items():
        if not _may(action, project):
            continue
        form = (failed or {}).get(action) or form_class(prefix=action)
        if action == "report_progress":
            form.milestone.choices = [(m.public_id, m.title) for m in timers.milestones_of(session, project)
                                      if m.done_at is None]
            if not form.milestone.choices:
                continue
        found[action] = form
    return found


def _render_project(session, project: LivelihoodProject, *, status: int = 200, error: str | None = None,
                    failed: dict[str, Any] | None = None):
    now, warn = utcnow(), timers.warn_days(session)
    milestones = [(m, timers.milestone_color(m, now, warn)) for m in timers.milestones_of(session, project)]
    events = list(session.scalars(select(ProjectEvent).where(ProjectEvent.project_id == project.id)
                                  .order_by(ProjectEvent.id)))
    counts = projects.ratings_of(session, project)
    rated = sum(counts.values())
    return render_template(
        "console/project.html", project=project, milestones=milestones, events=events, labels=EVENT_LABELS,
        status_label=lifecycle.STATUS_LABELS[project.status], color_label=lifecycle.COLOR_LABELS[project.color],
        colors=COLOR_NAMES, counts=counts, rated=rated, rating_labels=projects.RATING_VALUES,
        satisfaction=(counts["satisfied"] + counts["basically_satisfied"]) / rated if rated else None,
        forms=_project_forms(session, project, failed), actions=PROJECT_ACTIONS, error=error), status


@bp.get("/projects/<public_id>")
@signed_in
def project_page(session, public_id: str):
    try:
        project = access.get(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    return _render_project(session, project)


@bp.post("/projects/<public_id>/<action>")
@signed_in
def project_action(session, public_id: str, action: str):
    if action not in PROJECT_ACTIONS:
        return render_template("console/error.html", title="页面不存在", message="没有这项操作。"), 404
    try:
        project = access.get(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    form = PROJECT_ACTIONS[action][0](prefix=action)
    if action == "report_progress":
        form.milestone.choices = [(m.public_id, m.title) for m in timers.milestones_of(session, project)]
    if not form.validate():
        return _render_project(session, project, status=422, error=_first_error(form), failed={action: form})
    principal = g.principal
    try:
        with session.begin_nested():
            if action == "add_milestone":
                due = datetime.combine(form.due.data, time(18, 0), tzinfo=CHINA_TZ)
                projects.add_milestone(session, principal, project, form.title.data, due)
            elif action == "start":
                projects.start(session, principal, project)
            elif action == "report_progress":
                projects.report_progress(session, principal, project, form.milestone.data, form.note.data or "")
            else:
                projects.complete(session, principal, project, form.note.data or "")
    except DomainError as error:
        session.expire_all()
        return _render_project(session, project, status=_error_status(error), error=_error_message(error),
                               failed={action: form})
    flash(PROJECT_ACTIONS[action][2], "info")
    return redirect(url_for("console.project_page", public_id=project.public_id), 303)
