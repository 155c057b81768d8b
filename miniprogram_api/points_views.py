"""API of 履职积分: the county's standard (versions), offline activities reported by deputies and
reviewed along the chain, audited adjustments, a deputy's ledger, the 公示 list with grades and its
XLSX export. Views parse, call `liaison.points`, serialise."""
from __future__ import annotations

import base64
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import select

from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.points import lifecycle
from liaison.points import service as points
from liaison.points.models import ActivityReport, PointsStandard

from . import schemas as s
from .framework import Context, endpoint

DEPUTY, STAFF = "deputy", "staff"


def _this_year() -> int:
    return utcnow().astimezone(CHINA_TZ).year


# ---------------------------------------------------------------------------------------------- models
class YearQuery(s.Request):
    year: int | None = Field(None, ge=2000, le=2100)


class ItemIn(s.Request):
    code: str = s.Code
    category: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=60)
    source: str = Field(min_length=1, max_length=32, description="记分依据：" + "、".join(points.SOURCES))
    points: Decimal = Field(ge=-100, le=100)
    cap: Decimal | None = Field(None, gt=0, le=1000, description="年度上限（扣分项为最多扣分）")


class GradeIn(s.Request):
    grade: str = Field(min_length=1, max_length=10)
    min: Decimal | None = Field(None, description="分数线；最低等次不填")


class StepIn(s.Request):
    name: str = Field(min_length=1, max_length=40)
    by: Literal["station_staff", "county_staff"]


class StandardIn(s.Request):
    year: int = Field(ge=2000, le=2100)
    title: str = Field(min_length=1, max_length=100)
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    grades: list[GradeIn] | None = Field(None, min_length=1, max_length=10)
    review_chain: list[StepIn] | None = Field(None, min_length=1, max_length=10)


class StandardOut(s.Out):
    id: str
    year: int
    version: int
    title: str
    active: bool
    items: list[dict[str, Any]]
    grades: list[dict[str, Any]]
    review_chain: list[dict[str, Any]]


class StandardListOut(s.Out):
    items: list[StandardOut]


class ActivityIn(s.Request):
    item_code: str = s.Code
    title: str = Field(min_length=1, max_length=100)
    happened_on: date
    evidence: str = s.Text
    photo_media_ids: list[str] = Field(default_factory=list, max_length=9)


class ReviewOut(s.Out):
    step: int
    step_name: str
    decision: str
    note: str | None
    decided_at: str


class ActivityOut(s.Out):
    id: str
    deputy_code: str
    deputy_name: str
    item_code: str
    title: str
    happened_on: date
    evidence: str
    status: str
    status_label: str
    next_step: str | None
    reviews: list[ReviewOut]


class ActivityListOut(s.Out):
    items: list[ActivityOut]


class ActivityQuery(s.Request):
    status: Literal["pending", "approved", "rejected"] | None = None


class ActivityReviewIn(s.Request):
    decision: Literal["approve", "reject"]
    note: str | None = Field(None, max_length=200)


class AdjustmentIn(s.Request):
    deputy_code: str = s.Code
    year: int = Field(ge=2000, le=2100)
    points: Decimal = Field(ge=-100, le=100)
    reason: str = s.Reason


class AdjustmentOut(s.Out):
    id: str
    deputy_code: str
    year: int
    points: float
    reason: str


class PointsEntryOut(s.Out):
    item_code: str
    item_name: str
    category: str
    points: float
    source: str
    source_ref: str
    occurred_at: str


class PointsLedgerOut(s.Out):
    deputy_code: str
    deputy_name: str
    year: int
    total: float
    grade: str | None
    entries: list[PointsEntryOut]


class StandingOut(s.Out):
    rank: int
    deputy_code: str
    deputy_name: str
    station: str
    total: float
    grade: str
    by_category: dict[str, float]


class PublicationOut(s.Out):
    year: int
    standard: str
    items: list[StandingOut]


class PointsFileOut(s.Out):
    filename: str
    content_type: str
    content_base64: str


# ---------------------------------------------------------------------------------------------- helpers
def _standard_out(standard: PointsStandard) -> StandardOut:
    return StandardOut(id=standard.public_id, year=standard.year, version=standard.version, title=standard.title,
                       active=standard.active, items=standard.items, grades=standard.grades,
                       review_chain=standard.review_chain)


def _activity_out(report: ActivityReport) -> ActivityOut:
    pending = report.status == lifecycle.PENDING
    return ActivityOut(id=report.public_id, deputy_code=report.deputy.code, deputy_name=report.deputy.name,
                       item_code=report.item_code, title=report.title, happened_on=report.happened_on,
                       evidence=report.evidence, status=report.status, status_label=lifecycle.LABELS[report.status],
                       next_step=report.chain[report.step]["name"] if pending else None,
                       reviews=[ReviewOut(step=r.step, step_name=r.step_name, decision=r.decision, note=r.note,
                                          decided_at=r.decided_at.isoformat()) for r in report.reviews])


def _jsonable(rows: list) -> list[dict]:
    return [{k: (float(v) if isinstance(v, Decimal) else v) for k, v in row.model_dump().items()} for row in rows]


def _visible_activity(ctx: Context, public_id: str) -> None:
    points.get_report(ctx.session, ctx.principal, public_id)


# ---------------------------------------------------------------------------------------------- standards
@endpoint("GET", "/points/standards", summary="履职积分标准（各版本，最新的有效）", roles=(DEPUTY, STAFF),
          query=YearQuery, response=StandardListOut, tag="points")
def list_standards(ctx: Context):
    year = ctx.query.year or _this_year()
    rows = ctx.session.scalars(select(PointsStandard).where(PointsStandard.year == year)
                               .order_by(PointsStandard.version.desc())).all()
    return StandardListOut(items=[_standard_out(x) for x in rows])


@endpoint("POST", "/points/standards", summary="发布新版积分标准（县级工委；本年度积分按新版重新计算）",
          roles=(STAFF,), body=StandardIn, response=StandardOut, status=201, tag="points")
def publish_standard(ctx: Context):
    b: StandardIn = ctx.body
    standard = points.publish_standard(
        ctx.session, ctx.principal, b.year, title=b.title, items=_jsonable(b.items),
        grades=_jsonable(b.grades) if b.grades else None,
        review_chain=[x.model_dump() for x in b.review_chain] if b.review_chain else None)
    return _standard_out(standard)


# ---------------------------------------------------------------------------------------------- activities
@endpoint("POST", "/activities", summary="申报线下履职活动（附佐证，逐级审核通过后计分）", roles=(DEPUTY,),
          body=ActivityIn, response=ActivityOut, status=201, tag="points")
def report_activity(ctx: Context):
    b: ActivityIn = ctx.body
    report = points.report_activity(ctx.session, ctx.principal, item_code=b.item_code, title=b.title,
                                    happened_on=b.happened_on, evidence=b.evidence, photo_media_ids=b.photo_media_ids)
    return _activity_out(report)


@endpoint("GET", "/activities", summary="履职活动申报（代表：本人的；工委：辖区的）", roles=(DEPUTY, STAFF),
          query=ActivityQuery, response=ActivityListOut, tag="points")
def list_activities(ctx: Context):
    return ActivityListOut(items=[_activity_out(r) for r in points.reports_for(ctx.session, ctx.principal,
                                                                              ctx.query.status)])


@endpoint("POST", "/activities/<public_id>/review", summary="审核履职活动（当前环节：通过或不通过并写明原因）",
          roles=(STAFF,), body=ActivityReviewIn, response=ActivityOut, tag="points", visible=_visible_activity)
def review_activity(ctx: Context, public_id: str):
    report = points.get_report(ctx.session, ctx.principal, public_id)
    return _activity_out(points.review(ctx.session, ctx.principal, report, ctx.body.decision == "approve",
                                       ctx.body.note))


# ---------------------------------------------------------------------------------------------- ledger
@endpoint("POST", "/points/adjustments", summary="积分调整（县级工委，须写明原因，记入明细）", roles=(STAFF,),
          body=AdjustmentIn, response=AdjustmentOut, status=201, tag="points")
def adjust(ctx: Context):
    b: AdjustmentIn = ctx.body
    row = points.adjust(ctx.session, ctx.principal, b.deputy_code, b.year, b.points, b.reason)
    return AdjustmentOut(id=row.public_id, deputy_code=b.deputy_code, year=row.year, points=float(row.points),
                         reason=row.reason)


@endpoint("GET", "/points/ledger", summary="本人的履职积分明细（每一分及其来源）", roles=(DEPUTY,),
          query=YearQuery, response=PointsLedgerOut, tag="points")
def my_ledger(ctx: Context):
    return _ledger(ctx, None)


@endpoint("GET", "/deputies/<public_id>/points", summary="某位代表的履职积分明细（工委：辖区内的代表）",
          roles=(STAFF,), query=YearQuery, response=PointsLedgerOut, tag="points")
def deputy_ledger(ctx: Context, public_id: str):
    return _ledger(ctx, public_id)


def _ledger(ctx: Context, deputy_code: str | None) -> PointsLedgerOut:
    year = ctx.query.year or _this_year()
    deputy, entries, total = points.ledger(ctx.session, ctx.principal, year, deputy_code)
    standard = points.standard_for(ctx.session, year)
    return PointsLedgerOut(
        deputy_code=deputy.code, deputy_name=deputy.name, year=year, total=float(total),
        grade=points.grade_for(standard, total) if standard else None,
        entries=[PointsEntryOut(item_code=e.item_code, item_name=points.describe(e.item_code, standard)["name"],
                          category=points.describe(e.item_code, standard)["category"], points=float(e.points),
                          source=points.source_label(e.source_ref), source_ref=e.source_ref,
                          occurred_at=e.occurred_at.isoformat()) for e in entries])


@endpoint("GET", "/points/publication", summary="履职积分公示与年度等次", roles=(DEPUTY, STAFF), query=YearQuery,
          response=PublicationOut, tag="points")
def publication(ctx: Context):
    year = ctx.query.year or _this_year()
    standings = points.publication(ctx.session, ctx.principal, year)
    standard = points.standard_for(ctx.session, year)
    return PublicationOut(year=year, standard=standard.title if standard else "", items=[
        StandingOut(rank=x.rank, deputy_code=x.deputy.code, deputy_name=x.deputy.name, station=x.station,
                    total=float(x.total), grade=x.grade, by_category={k: float(v) for k, v in x.by_category.items()})
        for x in standings])


@endpoint("GET", "/points/export", summary="导出履职积分公示及明细（XLSX）", roles=(STAFF,), query=YearQuery,
          response=PointsFileOut, tag="points")
def export(ctx: Context):
    year = ctx.query.year or _this_year()
    content = points.export_xlsx(ctx.session, ctx.principal, year)
    return PointsFileOut(filename=f"履职积分-{year}.xlsx",
                   content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   content_base64=base64.b64encode(content).decode("ascii"))
