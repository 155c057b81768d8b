"""Console page of Open311 partner keys and hand-off targets (直通车), for county staff. Every rule
is `liaison.console.partners`' (who may) and `liaison.interop.service`'s (what is done)."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for

from liaison.console import partners as interop_page
from liaison.core.errors import DomainError

from . import forms
from .views import _error_message, _error_status, bp, signed_in


def _refused(error: Exception):
    return render_template("console/error.html", title="无法办理", message=_error_message(error)), \
        _error_status(error)


def _target_form() -> forms.TargetForm:
    form = forms.TargetForm(prefix="target")
    form.category.choices = [("", interop_page.EVERY_CATEGORY)] + [(c, c) for c in interop_page.categories()]
    return form


def _page(session, *, shown=None, partner_form=None, target_form=None, status: int = 200):
    try:
        rows = interop_page.overview(session, g.principal)
    except interop_page.NotCountyStaff as error:
        return _refused(error)
    return render_template("console/interop.html", shown=shown, **rows,
                           partner_form=partner_form or forms.PartnerForm(prefix="partner"),
                           target_form=target_form or _target_form()), status


@bp.get("/interop")
@signed_in
def interop_page_view(session):
    return _page(session)


@bp.post("/interop/partners")
@signed_in
def issue_partner_key(session):
    form = forms.PartnerForm(prefix="partner")
    try:
        interop_page.require_county_staff(g.principal)
        if not form.validate():
            return _page(session, partner_form=form, status=422)
        with session.begin_nested():  # a refusal leaves nothing behind
            shown = interop_page.issue_key(session, g.principal, form.name.data)
    except DomainError as error:
        return _refused(error)
    return _page(session, shown=shown, status=201)


@bp.post("/interop/partners/<public_id>/revoke")
@signed_in
def revoke_partner_key(session, public_id: str):
    try:
        with session.begin_nested():  # a refusal leaves nothing behind
            name = interop_page.revoke_key(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    flash(f"已停用 {name} 的对接密钥，立即生效", "info")
    return redirect(url_for("console.interop_page_view"), 303)


@bp.post("/interop/targets")
@signed_in
def set_handoff_target(session):
    form = _target_form()
    try:
        interop_page.require_county_staff(g.principal)
        if not form.validate():
            return _page(session, target_form=form, status=422)
        with session.begin_nested():  # a refusal leaves nothing behind
            shown = interop_page.set_target(
                session, g.principal, name=form.name.data, endpoint=form.endpoint.data, api_key=form.api_key.data,
                category=form.category.data, service_code=form.service_code.data,
                jurisdiction_id=form.jurisdiction_id.data)
    except DomainError as error:
        return _refused(error)
    if shown is None:
        flash("已更新转办平台", "info")
        return redirect(url_for("console.interop_page_view"), 303)
    return _page(session, shown=shown, status=201)


@bp.post("/interop/targets/<int:target_id>/rotate")
@signed_in
def rotate_target_secret(session, target_id: int):
    try:
        with session.begin_nested():  # a refusal leaves nothing behind
            shown = interop_page.rotate_secret(session, g.principal, target_id)
    except DomainError as error:
        return _refused(error)
    return _page(session, shown=shown)


@bp.post("/interop/targets/<int:target_id>/remove")
@signed_in
def remove_handoff_target(session, target_id: int):
    try:
        with session.begin_nested():  # a refusal leaves nothing behind
            name = interop_page.remove_target(session, g.principal, target_id)
    except DomainError as error:
        return _refused(error)
    flash(f"{name} 不再接收新的转办（已转办的继续跟踪）", "info")
    return redirect(url_for("console.interop_page_view"), 303)

