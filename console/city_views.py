"""Console page for city staff: the counties of their city, and adding one (no restart: its webhook
`/wechat/<code>` answers at once). Every rule is `liaison.tenancy.service`'s."""
from __future__ import annotations

import functools

from flask import flash, g, redirect, render_template, request, url_for
from wtforms import BooleanField

from liaison.core.errors import DomainError
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import City

from . import forms
from .views import _error_message, _error_status, bp, signed_in


class CityCountyForm(forms.CountyForm):
    personal_data = BooleanField("允许市级查看本县诉求中的群众个人信息")


def city_only(view):
    """A page of city staff (others: 403); `signed_in` lets city staff reach only such pages."""
    @functools.wraps(view)
    def wrapper(session, **kwargs):
        if g.principal.role != tenancy.CITY_ROLE:
            return render_template("console/error.html", title="无权访问",
                                   message="此页面仅供市级人大工作人员使用。"), 403
        return view(session, **kwargs)

    wrapper.city_page = True
    return wrapper


def _page(session, form=None, status: int = 200, error: str | None = None):
    city = session.get(City, g.principal.account.city_id)
    counties = tenancy.city_counties(session, city.id) if city else []
    return render_template("console/counties.html", city=city, counties=[
        {"code": c.code, "name": c.name, "own_account": bool(c.wechat_app_id),
         "personal_data": tenancy.grants_city_personal_data(c), "webhook": f"/wechat/{c.code}"}
        for c in counties], form=form or CityCountyForm(prefix="county"), error=error), status


@bp.get("/counties")
@signed_in
@city_only
def counties_page(session):
    return _page(session)


@bp.post("/counties")
@signed_in
@city_only
def add_county(session):
    form = CityCountyForm(prefix="county")
    if not form.validate():
        message = next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")
        return _page(session, form, 422, message)
    try:
        with session.begin_nested():  # a refusal adds nothing
            county = tenancy.add_city_county(
                session, g.principal.account.city_id, form.code.data, form.name.data,
                personal_data=form.personal_data.data,
                **{name: getattr(form, name).data for name in tenancy.WECHAT_FIELDS})
    except DomainError as error:
        return _page(session, form, _error_status(error), _error_message(error))
    flash(f"已添加 {county.name}（{county.code}），公众号服务器地址：{request.host_url.rstrip('/')}/wechat/{county.code}")
    return redirect(url_for("console.counties_page"), 303)
