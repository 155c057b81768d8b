"""Console pages of 通报 and 整改: generate a bulletin for a period and scope, see it, download it
(XLSX, PDF), publish it; the 整改 list (overdue ones marked) and each item's page where the unit
answers and staff verify. Every rule is `liaison.bulletin.service`'s."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from liaison.bulletin import lifecycle
from liaison.bulletin import service as bulletins
from liaison.console import service as figures
from liaison.core.clock import utcnow
from liaison.core.errors import DomainError
from liaison.people.models import Station
from liaison.people.service import STAFF

from . import bulletin_export, export, forms
from .views import _error_message, _error_status, bp, signed_in

RECTIFY_ACTIONS = {"respond": forms.RespondForm, "verify": forms.ReviewForm, "send_back": forms.ReviewForm}
RECTIFY_DONE = {"respond": "已报送整改情况", "verify": "已核实销号", "send_back": "已退回重新整改"}


def _refused(error: Exception):
    return render_template("console/error.html", title="无法办理", message=_error_message(error)), \
        _error_status(error)


def _station_choices(session) -> list[tuple[str, str]]:
    own = g.principal.account.station_id
    query = select(Station).order_by(Station.code)
    if own is not None:
        return [(s.code, s.name) for s in session.scalars(query.where(Station.id == own))]
    return [("", "全县")] + [(s.code, s.name) for s in session.scalars(query)]


def _bulletin_form(session) -> forms.BulletinForm:
    form = forms.BulletinForm(prefix="bulletin")
    form.station.choices = _station_choices(session)
    if not form.period.data:
        form.period.data = bulletins.default_period()
    return form


def _list(session, form, status: int = 200, error: str | None = None):
    rows = bulletins.list_bulletins(session, g.scope)
    return render_template("console/bulletins.html", rows=rows, form=form, error=error), status


@bp.get("/bulletins")
@signed_in
def bulletins_page(session):
    if g.principal.role != STAFF:
        return render_template("console/error.html", title="无权访问", message="只有工委账号可以查看通报。"), 403
    return _list(session, _bulletin_form(session))


@bp.post("/bulletins")
@signed_in
def generate_bulletin(session):
    if g.principal.role != STAFF:
        return render_template("console/error.html", title="无权访问", message="只有工委账号可以编发通报。"), 403
    form = _bulletin_form(session)
    if not form.validate():
        message = next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")
        return _list(session, form, 422, message)
    try:
        with session.begin_nested():
            bulletin = bulletins.generate(session, g.scope, form.period.data, form.station.data or None)
    except DomainError as error:
        return _list(session, form, _error_status(error), _error_message(error))
    flash("通报已生成（草稿），核对后请发布", "info")
    return redirect(url_for("console.bulletin_page", public_id=bulletin.public_id), 303)


def _bulletin_or_404(session, public_id: str):
    return bulletins.get_bulletin(session, g.scope, public_id)


@bp.get("/bulletins/<public_id>")
@signed_in
def bulletin_page(session, public_id: str):
    try:
        bulletin = _bulletin_or_404(session, public_id)
    except DomainError as error:
        return _refused(error)
    items = bulletins.list_rectifications(session, g.scope, bulletin=bulletin)
    return render_template(
        "console/bulletin.html", bulletin=bulletin, content=bulletin.content, sections=bulletin_export.tables(bulletin),
        columns=bulletin_export.COLUMNS, fmt=bulletin_export._value, dimensions=bulletins.DIMENSIONS,
        figures=figures.FIGURES, items=items, labels=lifecycle.STATUS_LABELS, now=utcnow(),
        can_publish=bulletins.manages(g.scope, bulletin.station_id) and bulletin.published_at is None,
        publish_form=forms.PublishForm(prefix="publish"))


@bp.post("/bulletins/<public_id>/publish")
@signed_in
def publish_bulletin(session, public_id: str):
    try:
        bulletin = _bulletin_or_404(session, public_id)
    except DomainError as error:
        return _refused(error)
    form = forms.PublishForm(prefix="publish")
    if not form.validate():
        message = next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")
        return render_template("console/error.html", title="无法发布", message=message), 422
    try:
        with session.begin_nested():
            items = bulletins.publish(session, g.scope, bulletin, working_days=form.working_days.data)
    except DomainError as error:
        return _refused(error)
    flash(f"通报已发布，{len(items)} 项整改已通知到单位", "info")
    return redirect(url_for("console.bulletin_page", public_id=bulletin.public_id), 303)


def _download(body: bytes, mimetype: str, bulletin, suffix: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"bulletin.{suffix}\"; filename*=UTF-8''{quote(bulletin.title + '.' + suffix)}")
    return response


@bp.get("/bulletins/<public_id>/download.xlsx")
@signed_in
def bulletin_xlsx(session, public_id: str):
    try:
        bulletin = _bulletin_or_404(session, public_id)
    except DomainError as error:
        return _refused(error)
    return _download(bulletin_export.workbook(bulletin), export.XLSX_MIME, bulletin, "xlsx")


@bp.get("/bulletins/<public_id>/download.pdf")
@signed_in
def bulletin_pdf(session, public_id: str):
    try:
        bulletin = _bulletin_or_404(session, public_id)
    except DomainError as error:
        return _refused(error)
    return _download(bulletin_export.pdf(bulletin), bulletin_export.PDF_MIME, bulletin, "pdf")


# ---------------------------------------------------------------------------------------------- 整改
@bp.get("/rectifications")
@signed_in
def rectifications_page(session):
    status = request.args.get("status") or None
    overdue = {"yes": True, "no": False}.get(request.args.get("overdue", ""))
    try:
        items = bulletins.list_rectifications(session, g.scope, status=status, overdue=overdue)
    except DomainError as error:
        return _refused(error)
    return render_template("console/rectifications.html", items=items, labels=lifecycle.STATUS_LABELS,
                           figures=figures.FIGURES, now=utcnow(), status=status or "",
                           overdue=request.args.get("overdue", ""))


def _render_item(session, item, *, status: int = 200, error: str | None = None, failed=None):
    action_forms = {}
    if bulletins.may_respond(g.scope, item) and lifecycle.allows("respond", item.status):
        action_forms["respond"] = forms.RespondForm(prefix="respond")
    if bulletins.may_verify(g.scope, item):
        for action in ("verify", "send_back"):
            if lifecycle.allows(action, item.status):
                action_forms[action] = forms.ReviewForm(prefix=action)
    if failed:
        action_forms.update({k: v for k, v in failed.items() if k in action_forms})
    follow_label, follow_value = bulletins.next_period_value(session, g.scope, item)
    return render_template(
        "console/rectification.html", item=item, labels=lifecycle.STATUS_LABELS, figure=figures.FIGURES[item.figure],
        forms=action_forms, overdue=bulletins.is_overdue(item), error=error, follow_label=follow_label,
        follow_value=follow_value, dimensions=bulletins.DIMENSIONS,
        transitions=lifecycle.TRANSITIONS), status


@bp.get("/rectifications/<public_id>")
@signed_in
def rectification_page(session, public_id: str):
    try:
        item = bulletins.get_rectification(session, g.scope, public_id)
    except DomainError as error:
        return _refused(error)
    return _render_item(session, item)


@bp.post("/rectifications/<public_id>/<action>")
@signed_in
def rectification_action(session, public_id: str, action: str):
    if action not in RECTIFY_ACTIONS:
        return render_template("console/error.html", title="页面不存在", message="没有这项操作。"), 404
    try:
        item = bulletins.get_rectification(session, g.scope, public_id, lock=True)
    except DomainError as error:
        return _refused(error)
    form = RECTIFY_ACTIONS[action](prefix=action)
    if not form.validate():
        message = next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")
        return _render_item(session, item, status=422, error=message, failed={action: form})
    try:
        with session.begin_nested():
            if action == "respond":
                bulletins.respond(session, g.scope, item, form.response.data)
            elif action == "verify":
                bulletins.verify(session, g.scope, item, form.note.data)
            else:
                bulletins.send_back(session, g.scope, item, form.note.data)
    except DomainError as error:
        session.refresh(item)
        return _render_item(session, item, status=_error_status(error), error=_error_message(error),
                            failed={action: form})
    flash(RECTIFY_DONE[action], "info")
    return redirect(url_for("console.rectification_page", public_id=item.public_id), 303)
