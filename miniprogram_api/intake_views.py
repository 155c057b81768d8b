"""Walk-in matters, the 交办单, 回访 and the staff ruling after a second 不满意 (`liaison.intake`)."""
from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from liaison.case import access
from liaison.case import service as cases
from liaison.intake import service as intake
from liaison.people import directory
from liaison.people.models import DeputyGrid, Grid
from liaison.rota import service as rota

from . import schemas as s
from . import serializers as out
from .framework import ApiError, Context, endpoint

RESIDENT, DEPUTY, DEPARTMENT, STAFF = "resident", "deputy", "department", "staff"


class WalkInIn(s.Request):
    text: str = s.Text
    resident_name: str = Field(min_length=1, max_length=50, description="群众姓名")
    resident_phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$",
                                       description="联系电话（可不填）")
    contact_consent: bool = Field(description="群众是否同意回访联系")
    place_kind: Literal["reception", "stall", "post"] = Field(
        description="reception：代表周三见（联络站接待）；stall：街头摆摊；post：监督岗走访")
    place: str | None = Field(default=None, max_length=200, description="地点，如联络站或摊点位置")
    grid_code: str | None = Field(default=None, min_length=1, max_length=32)
    shift_id: str | None = Field(default=None, min_length=1, max_length=24,
                                 description="接待所在的值班（不填：登记人此时在该站的值班）")


class ReturnVisitIn(s.Request):
    method: Literal["phone", "visit"]
    visitor: str = Field(min_length=1, max_length=50, description="回访人")
    visited_at: datetime
    outcome: str = s.Text
    rating: Literal["satisfied", "basically_satisfied", "unsatisfied"]


class ReturnVisitItem(s.Out):
    case: s.CaseItem
    walk_in: bool = Field(description="是否当面登记的诉求")
    resident_name: str | None = Field(description="群众姓名（当面登记时）")
    resident_phone: str | None = Field(description="联系电话（仅当群众同意回访联系）")
    place: str | None


class SheetFileOut(s.Out):
    filename: str
    content_type: str
    content_base64: str


def _scope(ctx: Context) -> access.Scope:
    return access.scope_of(ctx.session, ctx.principal)


def _sees_case(ctx: Context, public_id: str) -> None:
    access.get_case(ctx.session, _scope(ctx), public_id)


def _walk_in_grid(ctx: Context, scope: access.Scope, code: str | None, text: str) -> Grid | None:
    """The grid of a walk-in matter: one the registering deputy serves or the staff member covers
    (given, else the deputy's own, else the one named in the text)."""
    if code is not None:
        grid = ctx.session.scalar(select(Grid).where(Grid.code == code))
        if grid is None or (scope.grid_ids is not None and grid.id not in scope.grid_ids):
            raise ApiError(422, "unknown_grid", f"网格不存在：{code}", "grid_code")
        return grid
    if ctx.principal.role == DEPUTY:
        link = ctx.session.scalar(select(DeputyGrid).where(
            DeputyGrid.deputy_id == ctx.principal.account.deputy_id).order_by(DeputyGrid.role != "lead"))
        return link.grid if link is not None else None  # a deputy without a grid keeps it themselves
    named = directory.get(ctx.session).grid_in_text(text)
    if scope.grid_ids is not None and named not in scope.grid_ids:
        raise ApiError(422, "validation_error", "请选择本站的网格", "grid_code")  # station staff
    return ctx.session.get(Grid, named) if named is not None else None


@endpoint("POST", "/walk-ins", summary="代表、工委登记群众当面反映的诉求（周三见、摆摊、监督岗）",
          roles=(DEPUTY, STAFF), body=WalkInIn, response=s.CaseDetailOut, status=201, tag="intake")
def register_walk_in(ctx: Context):
    body: WalkInIn = ctx.body
    scope = _scope(ctx)
    grid = _walk_in_grid(ctx, scope, body.grid_code, body.text)
    shift = rota.shift_for_walk_in(ctx.session, ctx.principal, place_kind=body.place_kind,
                                   station_id=grid.station_id if grid is not None else None,
                                   shift_public_id=body.shift_id)
    case = intake.register_walk_in(
        ctx.session, ctx.principal.account, text=body.text, resident_name=body.resident_name,
        resident_phone=body.resident_phone, contact_consent=body.contact_consent,
        place_kind=body.place_kind, place=body.place, grid=grid,
        shift_id=shift.id if shift is not None else None)
    return out.case_detail(ctx.session, scope, case)


@endpoint("GET", "/cases/<public_id>/sheet", summary="诉求交办单（PDF，含群众扫码查看进度、评价的二维码）",
          roles=(DEPUTY, DEPARTMENT, STAFF), response=SheetFileOut, tag="intake")
def case_sheet(ctx: Context, public_id: str):
    from liaison import runtime  # the process's WeChat client: wired at start-up, after this module

    case = access.get_case(ctx.session, _scope(ctx), public_id)
    code = intake.case_code(ctx.session, runtime.current().wechat, case)
    pdf = intake.sheet_pdf(intake.sheet_for(ctx.session, case, code))
    return SheetFileOut(filename=f"交办单-{case.number}.pdf", content_type="application/pdf",
                   content_base64=base64.b64encode(pdf).decode("ascii"))


@endpoint("GET", "/return-visits", summary="回访清单：办结后无法在微信评价的诉求（无微信的当面诉求、提醒后仍未评价）",
          roles=(STAFF,), query=s.PageQuery, response=s.Page[ReturnVisitItem], tag="intake")
def return_visits_due(ctx: Context):
    query: s.PageQuery = ctx.query
    scope = _scope(ctx)
    rows, total = intake.return_visit_due(ctx.session, access.case_condition(scope), page=query.page,
                                          page_size=query.page_size)
    items = []
    for case in rows:
        walk_in = intake.walk_in_of(ctx.session, case)
        items.append(ReturnVisitItem(
            case=out.case_out(ctx.session, scope, case), walk_in=walk_in is not None,
            resident_name=walk_in.resident_name if walk_in else None,
            resident_phone=walk_in.resident_phone if walk_in and walk_in.contact_consent else None,
            place=intake.PLACE_KINDS[walk_in.place_kind] if walk_in else None))
    return s.Page[ReturnVisitItem](items=items, page=query.page, page_size=query.page_size, total=total)


@endpoint("POST", "/cases/<public_id>/return-visits", summary="登记回访（电话或上门；所得评价计为本轮评价）",
          roles=(STAFF,), body=ReturnVisitIn, response=s.ActionOut, status=201, visible=_sees_case,
          tag="intake")
def record_return_visit(ctx: Context, public_id: str):
    body: ReturnVisitIn = ctx.body
    if body.visited_at.tzinfo is None:
        raise ApiError(422, "validation_error", "回访时间须带时区", "visited_at")
    scope = _scope(ctx)
    case = access.get_case(ctx.session, scope, public_id, lock=True)
    access.check(scope, "return_visit", case)
    intake.record_return_visit(ctx.session, case, ctx.principal.account, method=body.method,
                               visitor=body.visitor, visited_at=body.visited_at, outcome=body.outcome,
                               rating=body.rating)
    ctx.session.refresh(case)
    return s.ActionOut(case=out.case_detail(ctx.session, scope, case), event=None)


@endpoint("POST", "/cases/<public_id>/conclude", summary="工委裁定终结（二轮办理后仍不满意；附书面理由，告知群众）",
          roles=(STAFF,), body=s.ReasonIn, response=s.ActionOut, visible=_sees_case, tag="intake")
def conclude_case(ctx: Context, public_id: str):
    scope = _scope(ctx)
    case = access.get_case(ctx.session, scope, public_id, lock=True)
    access.check(scope, "conclude", case)
    entry = cases.conclude(ctx.session, case, ctx.principal.actor(), ctx.body.reason)
    ctx.session.flush()
    ctx.session.refresh(case)
    return s.ActionOut(case=out.case_detail(ctx.session, scope, case), event=out.event_out(entry, scope))
