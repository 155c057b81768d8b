"""City staff (role `city`): each county's and the whole city's figures, and the cases their counties
hand up to them (三级联动): read, answer or instruct, hand back down. Of a handed-up case they see the
resident's personal data only where the county's settings grant it (`city_personal_data`); the county
side's hand-up is `POST /api/cases/<id>/hand-up` (county staff)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from liaison.case import access, referrals, stats
from liaison.case.lifecycle import REFERRAL_LABELS, STATUS_LABELS
from liaison.case.models import Case, CaseEvent, CaseReferral
from liaison.console import ledger
from liaison.core import tenant
from liaison.people.models import Department, Deputy, Grid
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import City, County

from . import schemas as s
from . import serializers as out
from .framework import ApiError, Context, endpoint, not_found

CITY = "city"


class FiguresOut(s.Out):
    received: int = Field(description="受理量：除不予受理、并单、撤回外的诉求数")
    concluded: int = Field(description="办结量：已办结（待评价、已销号、未评价）")
    conclusion_rate: float | None = Field(description="办结率 = 办结量 / 受理量")
    rated: int
    satisfaction_rate: float | None = Field(description="满意率 =（满意 + 基本满意）/ 已评价")


class CountyFiguresOut(FiguresOut):
    code: str
    name: str
    personal_data: bool = Field(description="本县是否允许市级查看诉求的群众个人信息")


class CityFiguresOut(s.Out):
    city: s.Ref
    counties: list[CountyFiguresOut]
    total: FiguresOut


class ReferralOut(s.Out):
    id: str
    status: Literal["at_city", "answered", "returned"]
    status_label: str
    reason: str = Field(description="县级上报理由")
    handed_up_at: datetime
    answer: str | None = Field(description="市级最近一次答复/批示")
    answered_at: datetime | None
    return_note: str | None
    returned_at: datetime | None


class CityCaseItem(s.Out):
    id: str = Field(description="诉求 public_id")
    number: str
    county: s.Ref
    status: str
    status_label: str
    category: str | None
    referral: ReferralOut


class CityCaseOut(CityCaseItem):
    text: str = Field(description="诉求内容；所在县未授权个人信息时电话、证件号、门牌号已遮盖")
    personal_data: bool = Field(description="所在县是否授权市级查看群众个人信息")
    location: dict | None
    grid: str | None
    deputy: str | None
    department: str | None
    deadline: datetime | None
    created_at: datetime
    referrals: list[ReferralOut]
    timeline: list[s.EventOut]


class CityCasesOut(s.Out):
    items: list[CityCaseItem]


class CityCasesQuery(s.Request):
    status: Literal["at_city", "answered", "returned"] | None = None


class CityAnswerIn(s.Request):
    text: str = s.Text


class CityHandDownIn(s.Request):
    note: str | None = Field(default=None, max_length=2000)


def _figures(figures: stats.Figures) -> dict:
    return dict(received=figures.received, concluded=figures.concluded,
                conclusion_rate=figures.conclusion_rate, rated=figures.rated,
                satisfaction_rate=figures.satisfaction_rate)


def _city(ctx: Context) -> City:
    city = ctx.session.get(City, ctx.principal.account.city_id)
    if city is None:
        raise ApiError(403, "no_city", "账号未关联到市")
    return city


@endpoint("GET", "/city/figures", summary="市级：各县和全市的受理量、办结率、满意率（不含个人信息）",
          roles=(CITY,), response=CityFiguresOut, tag="city")
def city_figures(ctx: Context):
    city = _city(ctx)
    counties = tenancy.city_counties(ctx.session, city.id)
    # Counts only: read every case of the city's counties, explicitly and for this block alone.
    with tenant.widened(ctx.session, tenancy.city_aggregate_scope(tenant.of(ctx.session))):
        figures = stats.county_figures(ctx.session, [c.id for c in counties])
    total = sum(figures.values(), stats.Figures())
    return CityFiguresOut(
        city=s.Ref(code=city.code, name=city.name),
        counties=[CountyFiguresOut(code=c.code, name=c.name, personal_data=tenancy.grants_city_personal_data(c),
                                   **_figures(figures[c.id])) for c in counties],
        total=FiguresOut(**_figures(total)))


def referral_out(referral: CaseReferral) -> ReferralOut:
    return ReferralOut(id=referral.public_id, status=referral.status,
                       status_label=REFERRAL_LABELS[referral.status], reason=referral.reason,
                       handed_up_at=referral.handed_up_at, answer=referral.answer,
                       answered_at=referral.answered_at, return_note=referral.return_note,
                       returned_at=referral.returned_at)


def _item_fields(ctx: Context, case: Case, referral: CaseReferral) -> dict:
    county = ctx.session.get(County, case.county_id)
    return dict(id=case.public_id, number=case.number, county=s.Ref(code=county.code, name=county.name),
                status=case.status, status_label=STATUS_LABELS.get(case.status, case.status),
                category=case.category, referral=referral_out(referral))


def _handed_up(ctx: Context, public_id: str) -> Case:
    """A case handed up to the caller's city (at any time), else 404: nothing else is visible."""
    case = referrals.city_case(ctx.session, _city(ctx).id, access.case_reference(public_id))
    if case is None:
        raise not_found()
    return case


def _masked_detail(county: County, detail: dict) -> dict:
    if tenancy.grants_city_personal_data(county):
        return detail
    return {k: referrals.mask_text(v) if isinstance(v, str) else v for k, v in detail.items()
            if k not in ("location", "photos", "openid")}


def _city_case_out(ctx: Context, case: Case) -> CityCaseOut:
    history = referrals.referrals_of(ctx.session, case)
    county = ctx.session.get(County, case.county_id)
    personal = referrals.personal_view(county, {"text": case.text, "location": case.location})
    names = {model: (ctx.session.get(model, ref_id).name if ref_id else None)
             for model, ref_id in ((Grid, case.grid_id), (Deputy, case.deputy_id),
                                   (Department, case.department_id))}
    timeline = [s.EventOut(at=e.at, actor_kind=e.actor_kind, action=e.action, label=out.action_label(e.action),
                           from_status=e.from_status, to_status=e.to_status,
                           detail=_masked_detail(county, e.detail or {}))
                for e in ctx.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                             .order_by(CaseEvent.at, CaseEvent.id))]
    return CityCaseOut(**_item_fields(ctx, case, history[-1]), text=personal["text"],
                       personal_data=tenancy.grants_city_personal_data(county), location=personal["location"],
                       grid=names[Grid], deputy=names[Deputy], department=names[Department],
                       deadline=case.deadline, created_at=case.created_at,
                       referrals=[referral_out(r) for r in history], timeline=timeline)


@endpoint("GET", "/city/cases", summary="市级：本市各县上报的诉求（三级联动）", roles=(CITY,),
          query=CityCasesQuery, response=CityCasesOut, tag="city")
def city_cases(ctx: Context):
    rows = referrals.city_referrals(ctx.session, _city(ctx).id, ctx.query.status)
    latest: dict[int, CaseReferral] = {}
    for row in rows:
        latest.setdefault(row.case_id, row)
    return CityCasesOut(items=[CityCaseItem(**_item_fields(ctx, row.case, row)) for row in latest.values()])


@endpoint("GET", "/city/cases/<public_id>", summary="市级：上报诉求的详情与时间线（个人信息仅限授权的县）",
          roles=(CITY,), response=CityCaseOut, tag="city")
def city_case(ctx: Context, public_id: str):
    return _city_case_out(ctx, _handed_up(ctx, public_id))


@endpoint("POST", "/city/cases/<public_id>/answer", summary="市级：答复或批示上报的诉求", roles=(CITY,),
          body=CityAnswerIn, response=CityCaseOut, visible=_handed_up, tag="city")
def city_answer(ctx: Context, public_id: str):
    case = _handed_up(ctx, public_id)
    referrals.answer(ctx.session, case, ctx.principal.account.id, ctx.body.text)
    return _city_case_out(ctx, case)


@endpoint("POST", "/city/cases/<public_id>/hand-down", summary="市级：交回县级办理", roles=(CITY,),
          body=CityHandDownIn, response=CityCaseOut, visible=_handed_up, tag="city")
def city_hand_down(ctx: Context, public_id: str):
    case = _handed_up(ctx, public_id)
    referrals.hand_down(ctx.session, case, ctx.principal.account.id, ctx.body.note)
    return _city_case_out(ctx, case)


class CityLedgerQuery(s.Request):
    county: str | None = Field(default=None, max_length=32, description="县编码；不填为全市")
    status: str | None = Field(default=None, max_length=16, description="状态，或 open（未办结）、final（已结束）")
    since: str | None = Field(default=None, max_length=10, description="受理日期自 YYYY-MM-DD")
    until: str | None = Field(default=None, max_length=10)
    category: str | None = Field(default=None, max_length=32)
    source: str | None = Field(default=None, max_length=16)
    overdue: str | None = Field(default=None, max_length=3)
    round: str | None = Field(default=None, max_length=1)
    rating: str | None = Field(default=None, max_length=24)
    q: str | None = Field(default=None, max_length=100)
    page: int = Field(default=1, ge=1, le=10_000)


class CityLedgerRow(s.Out):
    number: str
    county: s.Ref
    channel: str
    resident: str = Field(description="诉求人（遮盖）")
    text: str = Field(description="内容；所在县未授权个人信息时电话、证件号、门牌号已遮盖")
    category: str
    grid: str
    deputy: str
    handler: str
    created_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    on_time: bool | None
    overdue: bool
    rating: str
    round: int
    status: str


class CityLedgerOut(s.Out):
    items: list[CityLedgerRow]
    page: int
    total: int = Field(description="符合条件的诉求数（超过 1000 时为 1001）")


@endpoint("GET", "/city/ledger", summary="市级台账：本市各县的诉求（个人信息仅限授权的县），可按县、状态等筛选",
          roles=(CITY,), query=CityLedgerQuery, response=CityLedgerOut, tag="city")
def city_ledger(ctx: Context):
    city = _city(ctx)
    counties = {c.id: c for c in tenancy.city_counties(ctx.session, city.id)}
    params = ctx.query.model_dump(exclude_none=True, exclude={"page"})
    # Every case of the city's counties, for this block alone; rows come masked from the domain.
    with tenant.widened(ctx.session, tenancy.city_aggregate_scope(tenant.of(ctx.session))):
        rows, total = ledger.city_page(
            ctx.session, {cid: tenancy.grants_city_personal_data(c) for cid, c in counties.items()},
            {k: str(v) for k, v in params.items()}, ctx.query.page)
    return CityLedgerOut(page=ctx.query.page, total=total, items=[
        CityLedgerRow(**{k: v for k, v in row.items() if k in CityLedgerRow.model_fields and k != "county"},
                      county=s.Ref(code=counties[row["county_id"]].code, name=counties[row["county_id"]].name))
        for row in rows])
