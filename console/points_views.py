"""Console pages of 履职积分: the year's 公示 list with grades and its XLSX export, the county's points
standard (every version, read-only), each deputy's ledger with the event behind every line and the
audited adjustments, and the review chain of offline activities (each step approved or rejected by
whom the step names). Every rule is `liaison.points.service`'s."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from flask import Response, flash, g, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import func, select

from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.errors import NOT_FOUND, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Account, Deputy
from liaison.people.service import DEPUTY, STAFF, Principal
from liaison.points import lifecycle
from liaison.points import service as points
from liaison.points.models import ActivityReport, PointsEntry, PointsStandard

from . import duty_forms as forms
from . import export
from .views import _error_message, _error_status, bp, signed_in

STEP_BY = {points.STATION_STAFF: "联络站/乡镇工作人员", points.COUNTY_STAFF: "县级工委"}


class BadYear(Exception):
    """A `year` the pages cannot use."""


def _year() -> int:
    raw = request.args.get("year", "")
    if not raw:
        return utcnow().astimezone(CHINA_TZ).year
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        raise BadYear()
    return int(raw)


def _bad_year():
    return render_template("console/error.html", title="年度无效", message="年度应为 2000–2100 之间的年份。"), 400


def _refused(error: Exception, title: str = "无法办理"):
    return render_template("console/error.html", title=title, message=_error_message(error)), _error_status(error)


def _years(session) -> list[int]:
    this = utcnow().astimezone(CHINA_TZ).year
    found = {this} | set(session.scalars(select(PointsStandard.year).distinct()))
    return sorted(found, reverse=True)


def _chrome() -> dict:
    return {"report_labels": lifecycle.LABELS, "is_staff": g.principal.role == STAFF,
            "county_staff": g.principal.role == STAFF and g.principal.account.station_id is None}


def _pending_count(session) -> int:
    if g.principal.role != STAFF:
        return 0
    return sum(1 for r in points.reports_for(session, g.principal, lifecycle.PENDING))


# ---------------------------------------------------------------------------------------------- 公示
@bp.get("/points")
@signed_in
def points_page(session):
    try:
        year = _year()
    except BadYear:
        return _bad_year()
    try:
        standings = points.publication(session, g.principal, year)
    except DomainError as error:
        return _refused(error)
    standard = points.standard_for(session, year)
    categories = list(dict.fromkeys(i["category"] for i in standard.items)) + ["调整"] if standard else []
    own = g.principal.account.deputy_id if g.principal.role == DEPUTY else None
    return render_template("console/points.html", standings=standings, standard=standard, year=year,
                           years=_years(session), categories=categories, own=own,
                           pending=_pending_count(session), **_chrome())


@bp.get("/points/export.xlsx")
@signed_in
def points_export(session):
    if g.principal.role != STAFF:
        return render_template("console/error.html", title="无权访问", message="只有工委账号可以导出积分。"), 403
    try:
        year = _year()
        points.publication(session, g.principal, year)  # refuse before streaming starts
    except BadYear:
        return _bad_year()
    except DomainError as error:
        return _refused(error)
    account_id, county_scope = g.principal.account.id, g.county_scope

    def chunks():
        # The download outlives the request's unit of work: read in its own session, same account and county.
        with tenant.use(county_scope), db.session_scope() as reading:
            account = reading.get(Account, account_id)
            principal = Principal(account.role, account=account)
            yield from export.workbook_chunks(points.export_sheets(reading, principal, year))

    response = Response(stream_with_context(chunks()), mimetype=export.XLSX_MIME)
    filename = f"{year}年度履职积分公示-{datetime.now(CHINA_TZ):%Y%m%d}.xlsx"
    response.headers["Content-Disposition"] = f"attachment; filename=\"points.xlsx\"; filename*=UTF-8''{quote(filename)}"
    return response


# ---------------------------------------------------------------------------------------------- standard
@bp.get("/points/standard")
@signed_in
def standard_page(session):
    try:
        year = _year()
    except BadYear:
        return _bad_year()
    versions = points.standards_of(session, year)
    raw = request.args.get("version", "")
    chosen = next((v for v in versions if str(v.version) == raw), None) if raw else (
        points.standard_for(session, year) or (versions[0] if versions else None))
    if raw and chosen is None:
        return render_template("console/error.html", title="版本不存在", message="该年度没有这个版本的积分标准。"), 404
    categories: dict[str, list[dict]] = {}
    for item in chosen.items if chosen else []:
        categories.setdefault(item["category"], []).append(item)
    return render_template("console/points_standard.html", year=year, years=_years(session), versions=versions,
                           standard=chosen, categories=categories, sources=points.SOURCES, step_by=STEP_BY,
                           **_chrome())


# ---------------------------------------------------------------------------------------------- ledger
def _ledger_of(session, deputy_code: str, year: int):
    """The deputy's ledger if the signed-in user may read it (a deputy: only their own)."""
    if g.principal.role == DEPUTY:
        own = session.get(Deputy, g.principal.account.deputy_id)
        if own is None or own.code != deputy_code:
            raise points.PointsError(NOT_FOUND, "not_found", "代表不存在")
    return points.ledger(session, g.principal, year, deputy_code)


def _render_ledger(session, deputy_code: str, year: int, *, form=None, status: int = 200, error: str | None = None):
    try:
        deputy, entries, total = _ledger_of(session, deputy_code, year)
    except DomainError as error_:
        return _refused(error_, "代表不存在")
    standard = points.standard_for(session, year)
    adjustments = points.adjustments_for(session, deputy, year)
    authors = dict(session.execute(select(Account.id, Account.name).where(
        Account.id.in_({a.account_id for a in adjustments}))).all()) if adjustments else {}
    reports = [r for r in points.reports_for(session, g.principal) if r.deputy_id == deputy.id and r.year == year]
    rows = [{"entry": e, "item": points.describe(e.item_code, standard), "source": points.source_label(e.source_ref)}
            for e in entries]
    can_adjust = g.principal.role == STAFF and g.principal.account.station_id is None and standard is not None
    return render_template("console/points_ledger.html", deputy=deputy, rows=rows, total=total, year=year,
                           years=_years(session), grade=points.grade_for(standard, total) if standard else None,
                           adjustments=adjustments, authors=authors, reports=reports, error=error,
                           form=(form or forms.AdjustForm(prefix="adjust")) if can_adjust else None,
                           **_chrome()), status


@bp.get("/points/deputies/<deputy_code>")
@signed_in
def ledger_page_points(session, deputy_code: str):
    try:
        year = _year()
    except BadYear:
        return _bad_year()
    return _render_ledger(session, deputy_code, year)


@bp.post("/points/deputies/<deputy_code>/adjust")
@signed_in
def adjust_points(session, deputy_code: str):
    try:
        year = _year()
        _ledger_of(session, deputy_code, year)
    except BadYear:
        return _bad_year()
    except DomainError as error:
        return _refused(error, "代表不存在")
    form = forms.AdjustForm(prefix="adjust")
    if not form.validate():
        return _render_ledger(session, deputy_code, year, form=form, status=422,
                              error=next(iter(m for e in form.errors.values() for m in e)))
    try:
        with session.begin_nested():
            points.adjust(session, g.principal, deputy_code, year, form.points.data, form.reason.data)
    except DomainError as error:
        return _render_ledger(session, deputy_code, year, form=form, status=_error_status(error),
                              error=_error_message(error))
    flash(f"已调整积分 {form.points.data:+}，原因已记入台账", "info")
    return redirect(url_for("console.ledger_page_points", deputy_code=deputy_code, year=year), 303)


# ---------------------------------------------------------------------------------------------- activities
@bp.get("/points/activities")
@signed_in
def activities_page(session):
    status = request.args.get("status", "")
    if status and status not in lifecycle.LABELS:
        return render_template("console/error.html", title="请求无效", message="状态无效。"), 400
    try:
        reports = points.reports_for(session, g.principal, status or None)
    except DomainError as error:
        return _refused(error)
    names = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    return render_template("console/points_activities.html", reports=reports, names=names, status=status,
                           step_by=STEP_BY, **_chrome())


def _may_decide(report: ActivityReport) -> tuple[bool, str | None]:
    """Whether the signed-in user may decide the report's current step, and if not why (shown)."""
    if g.principal.role != STAFF or report.status != lifecycle.PENDING:
        return False, None
    step = report.chain[report.step]
    if step["by"] == points.COUNTY_STAFF and g.principal.account.station_id is not None:
        return False, f"“{step['name']}”由县级工委审核"
    if g.principal.account.id in {r.account_id for r in report.reviews}:
        return False, "您已审核过本活动的一个环节，下一环节须由其他人审核"
    return True, None


def _render_activity(session, report: ActivityReport, *, form=None, status: int = 200, error: str | None = None):
    may, why = _may_decide(report)
    reviewers = dict(session.execute(select(Account.id, Account.name).where(
        Account.id.in_({r.account_id for r in report.reviews}))).all()) if report.reviews else {}
    standard = session.get(PointsStandard, report.standard_id)
    deputy_total = session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
        PointsEntry.deputy_id == report.deputy_id, PointsEntry.year == report.year))
    return render_template("console/points_activity.html", report=report, reviewers=reviewers,
                           item=points.describe(report.item_code, standard), may=may, why=why, error=error,
                           form=form or forms.DecisionForm(prefix="review"), step_by=STEP_BY,
                           deputy_total=deputy_total, **_chrome()), status


@bp.get("/points/activities/<public_id>")
@signed_in
def activity_page(session, public_id: str):
    try:
        report = points.get_report(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "履职活动不存在")
    return _render_activity(session, report)


def _review(session, public_id: str, approve: bool):
    try:
        report = points.get_report(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "履职活动不存在")
    form = forms.DecisionForm(prefix="review")
    if not form.validate():
        return _render_activity(session, report, form=form, status=422,
                                error=next(iter(m for e in form.errors.values() for m in e)))
    try:
        with session.begin_nested():
            points.review(session, g.principal, report, approve, form.note.data)
    except DomainError as error:
        session.refresh(report)
        return _render_activity(session, report, form=form, status=_error_status(error), error=_error_message(error))
    if report.status == lifecycle.APPROVED:
        flash("审核通过，已认定并计入积分", "info")
    elif report.status == lifecycle.REJECTED:
        flash("已退回：不予认定，不计积分", "info")
    else:
        flash(f"本环节已通过，转“{report.chain[report.step]['name']}”", "info")
    return redirect(url_for("console.activity_page", public_id=report.public_id), 303)


@bp.post("/points/activities/<public_id>/approve")
@signed_in
def approve_activity(session, public_id: str):
    return _review(session, public_id, True)


@bp.post("/points/activities/<public_id>/reject")
@signed_in
def reject_activity(session, public_id: str):
    return _review(session, public_id, False)
