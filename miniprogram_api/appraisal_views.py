"""API of the quarterly 述职 测评: staff schedule and close a deputy's 测评; deputies and staff read the
history (the re-election record) and report 整改 done, which opens the second 测评."""
from __future__ import annotations

from pydantic import Field

from liaison.appraisal import lifecycle
from liaison.appraisal import service as appraisal
from liaison.appraisal.models import Appraisal

from . import schemas as s
from .framework import Context, endpoint

DEPUTY, STAFF = "deputy", "staff"


class AppraisalIn(s.Request):
    deputy_code: str = s.Code
    year: int = Field(ge=2000, le=2100)
    quarter: int = Field(ge=1, le=4)


class RectificationOut(s.Out):
    id: str
    deadline: str
    status: str
    status_label: str
    report: str | None


class AppraisalOut(s.Out):
    id: str
    deputy_code: str
    deputy_name: str
    year: int
    quarter: int
    round: int
    survey_id: str = Field(description="评议二维码的场景为 survey:<survey_id>")
    status: str
    status_label: str
    closes_at: str
    rated: int
    satisfaction_rate: float | None
    rectification: RectificationOut | None


class AppraisalListOut(s.Out):
    items: list[AppraisalOut]


class CompleteIn(s.Request):
    report: str = s.Text


def _out(ctx: Context, row: Appraisal) -> AppraisalOut:
    fix = appraisal.rectification_of(ctx.session, row)
    return AppraisalOut(
        id=row.public_id, deputy_code=row.deputy.code, deputy_name=row.deputy.name, year=row.year,
        quarter=row.quarter, round=row.round, survey_id=row.survey.public_id, status=row.status,
        status_label=lifecycle.LABELS[row.status], closes_at=row.closes_at.isoformat(), rated=row.rated,
        satisfaction_rate=row.satisfaction_rate,
        rectification=RectificationOut(id=fix.public_id, deadline=fix.deadline.isoformat(), status=fix.status,
                                       status_label=lifecycle.LABELS[fix.status], report=fix.report)
        if fix else None)


def _visible_appraisal(ctx: Context, public_id: str) -> None:
    appraisal.get_appraisal(ctx.session, ctx.principal, public_id)


def _visible_rectification(ctx: Context, public_id: str) -> None:
    appraisal.get_rectification(ctx.session, ctx.principal, public_id)


@endpoint("POST", "/appraisals", summary="安排代表季度述职测评（生成评议码，通知所联系网格的选民）", roles=(STAFF,),
          body=AppraisalIn, response=AppraisalOut, status=201, tag="appraisal")
def schedule(ctx: Context):
    b: AppraisalIn = ctx.body
    return _out(ctx, appraisal.schedule(ctx.session, ctx.principal, b.deputy_code, b.year, b.quarter))


@endpoint("GET", "/appraisals", summary="述职测评记录（代表：本人的；工委：辖区的）", roles=(DEPUTY, STAFF),
          response=AppraisalListOut, tag="appraisal")
def history(ctx: Context):
    return AppraisalListOut(items=[_out(ctx, a) for a in appraisal.history(ctx.session, ctx.principal)])


@endpoint("POST", "/appraisals/<public_id>/close", summary="结束测评并计算满意率（低于90%自动生成整改事项）",
          roles=(STAFF,), response=AppraisalOut, tag="appraisal", visible=_visible_appraisal)
def close(ctx: Context, public_id: str):
    row = appraisal.get_appraisal(ctx.session, ctx.principal, public_id)
    appraisal.close(ctx.session, row)
    return _out(ctx, row)


@endpoint("POST", "/rectifications/<public_id>/complete", summary="报告整改完成（随即开启第二次测评）",
          roles=(DEPUTY, STAFF), body=CompleteIn, response=AppraisalOut, tag="appraisal",
          visible=_visible_rectification)
def complete(ctx: Context, public_id: str):
    row = appraisal.get_rectification(ctx.session, ctx.principal, public_id)
    return _out(ctx, appraisal.complete(ctx.session, ctx.principal, row, ctx.body.report))
