"""API of the duty rota and grid visits: a deputy's (or department head's) shifts, check-in with the
scanned station code, swaps; staff manage rules, one-off shifts, cancellations and swap decisions,
and see who fell short of the weekly grid visits. Views parse, call `liaison.rota`, serialise."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import Field

from liaison.case import lifecycle as case_lifecycle
from liaison.core.clock import utcnow
from liaison.intake.models import PLACE_KINDS
from liaison.people.models import Deputy, Grid
from liaison.rota import lifecycle
from liaison.rota import service as rota
from liaison.rota.models import DutyShift, ShiftSwap

from . import schemas as s
from .framework import ALL_ROLES, Context, endpoint

DEPUTY, DEPARTMENT, STAFF = "deputy", "department", "staff"
ON_DUTY_ROLES = (DEPUTY, DEPARTMENT)


# ---------------------------------------------------------------------------------------------- models
class ShiftsQuery(s.Request):
    start: date | None = Field(None, description="起始日期（默认今天）")
    days: int = Field(28, ge=1, le=92)


class AssigneeOut(s.Out):
    name: str
    deputy_code: str | None
    status: str
    status_label: str
    checked_in_at: str | None


class ShiftOut(s.Out):
    id: str
    station_code: str
    station_name: str
    kind: str
    title: str
    day: date
    starts_at: str
    ends_at: str
    status: str
    status_label: str
    note: str | None
    on_duty: list[AssigneeOut]


class ShiftMatterOut(s.Out):
    case_id: str
    number: str
    status: str
    status_label: str
    place_label: str
    registered_at: str


class ShiftDetailOut(ShiftOut):
    matters: list[ShiftMatterOut] = Field(description="本班次接待登记的群众诉求")


class ShiftListOut(s.Out):
    items: list[ShiftOut]


class RuleIn(s.Request):
    station_code: str = s.Code
    weekday: int = Field(ge=0, le=6, description="0 = 周一 … 2 = 周三 … 6 = 周日")
    slots: int = Field(2, ge=1, le=20, description="每班人数")
    deputy_codes: list[str] = Field(default_factory=list, max_length=200)
    account_ids: list[str] = Field(default_factory=list, max_length=50, description="局长进站：部门账号")
    kind: Literal["reception", "director", "supervision"] = "reception"
    title: str | None = Field(None, min_length=1, max_length=60)
    start_minute: int = Field(540, ge=0, lt=1440)
    end_minute: int = Field(690, ge=1, lt=1440)
    holiday_policy: Literal["skip", "next_working_day"] = "next_working_day"
    on_makeup_days: bool = False
    valid_from: date | None = None
    valid_until: date | None = None


class RuleOut(s.Out):
    id: str
    station_code: str
    kind: str
    title: str
    weekday: int
    slots: int
    holiday_policy: str
    on_makeup_days: bool
    valid_from: date
    valid_until: date | None
    active: bool


class RuleListOut(s.Out):
    items: list[RuleOut]


class ShiftIn(s.Request):
    station_code: str = s.Code
    day: date
    kind: Literal["reception", "director", "supervision"] = "director"
    title: str | None = Field(None, min_length=1, max_length=60)
    deputy_codes: list[str] = Field(default_factory=list, max_length=50)
    account_ids: list[str] = Field(default_factory=list, max_length=50)
    start_minute: int = Field(540, ge=0, lt=1440)
    end_minute: int = Field(690, ge=1, lt=1440)


class ShiftReasonIn(s.Request):
    reason: str = s.Reason


class CheckInIn(s.Request):
    station_code: str = Field(min_length=1, max_length=32, description="扫描联络站二维码得到的编码")


class SwapIn(s.Request):
    substitute_code: str = s.Code
    reason: str = s.Reason


class SwapDecisionIn(s.Request):
    note: str | None = Field(None, max_length=200)


class SwapOut(s.Out):
    id: str
    shift: ShiftOut
    requester: str
    substitute: str
    reason: str
    status: str
    status_label: str


class SwapListOut(s.Out):
    items: list[SwapOut]


class VisitIn(s.Request):
    grid_code: str = s.Code
    note: str | None = Field(None, max_length=1000)
    photo_media_id: str | None = Field(None, min_length=1, max_length=128)


class VisitOut(s.Out):
    id: str
    deputy_code: str
    grid_code: str
    visited_at: str
    method: str
    note: str | None


class VisitListOut(s.Out):
    items: list[VisitOut]


class ShortfallQuery(s.Request):
    day: date | None = Field(None, description="所在周的任一天（默认本周）")


class ShortfallItem(s.Out):
    deputy_code: str
    deputy_name: str
    visits: int
    minimum: int


class ShortfallOut(s.Out):
    week_start: date
    week_end: date
    items: list[ShortfallItem]


# ---------------------------------------------------------------------------------------------- helpers
def _shift_out(shift: DutyShift) -> ShiftOut:
    return ShiftOut(
        id=shift.public_id, station_code=shift.station.code, station_name=shift.station.name, kind=shift.kind,
        title=shift.title, day=shift.day, starts_at=shift.starts_at.isoformat(), ends_at=shift.ends_at.isoformat(),
        status=shift.status, status_label=lifecycle.LABELS[shift.status], note=shift.note,
        on_duty=[AssigneeOut(name=a.deputy.name if a.deputy else a.account.name,
                             deputy_code=a.deputy.code if a.deputy else None, status=a.status,
                             status_label=lifecycle.LABELS[a.status],
                             checked_in_at=a.checked_in_at.isoformat() if a.checked_in_at else None)
                 for a in shift.assignments])


def _swap_out(session, swap: ShiftSwap) -> SwapOut:
    substitute = session.get(Deputy, swap.substitute_deputy_id)
    return SwapOut(id=swap.public_id, shift=_shift_out(swap.assignment.shift),
                   requester=swap.assignment.deputy.name if swap.assignment.deputy else "",
                   substitute=substitute.name if substitute else "", reason=swap.reason, status=swap.status,
                   status_label=lifecycle.LABELS[swap.status])


def _shift(ctx: Context, public_id: str) -> DutyShift:
    return rota.get_shift(ctx.session, ctx.principal, public_id)


def _visible_shift(ctx: Context, public_id: str) -> None:
    _shift(ctx, public_id)


def _visible_swap(ctx: Context, public_id: str) -> None:
    rota.get_swap(ctx.session, ctx.principal, public_id)


# ---------------------------------------------------------------------------------------------- shifts
@endpoint("GET", "/shifts", summary="值班安排（代表/部门：本人的；工委：辖区的；群众：所在联络站的近期值班）",
          roles=ALL_ROLES, query=ShiftsQuery, response=ShiftListOut, tag="rota")
def list_shifts(ctx: Context):
    start = ctx.query.start or rota.local_day(utcnow())
    shifts = rota.shifts_for(ctx.session, ctx.principal, start=start, end=start + timedelta(days=ctx.query.days - 1))
    return ShiftListOut(items=[_shift_out(x) for x in shifts])


@endpoint("GET", "/shifts/<public_id>", summary="值班详情（含本班次接待登记的群众诉求）",
          roles=ON_DUTY_ROLES + (STAFF,), response=ShiftDetailOut, tag="rota", visible=_visible_shift)
def shift_detail(ctx: Context, public_id: str):
    shift = _shift(ctx, public_id)
    matters = [ShiftMatterOut(case_id=case.public_id, number=case.number, status=case.status,
                              status_label=case_lifecycle.STATUS_LABELS.get(case.status, case.status),
                              place_label=PLACE_KINDS[walk_in.place_kind],
                              registered_at=walk_in.created_at.isoformat())
               for walk_in, case in rota.matters_of(ctx.session, shift)]
    return ShiftDetailOut(**_shift_out(shift).model_dump(), matters=matters)


@endpoint("POST", "/shifts", summary="安排单次值班（局长进站、监督岗或临时调整）", roles=(STAFF,), body=ShiftIn,
          response=ShiftOut, status=201, tag="rota")
def create_shift(ctx: Context):
    b: ShiftIn = ctx.body
    shift = rota.add_shift(ctx.session, ctx.principal, station_code=b.station_code, day=b.day, kind=b.kind,
                           deputy_codes=b.deputy_codes, account_ids=b.account_ids, title=b.title,
                           start_minute=b.start_minute, end_minute=b.end_minute)
    ctx.session.refresh(shift)
    return _shift_out(shift)


@endpoint("POST", "/shifts/<public_id>/cancel", summary="取消一次值班（例外），值班代表会收到通知", roles=(STAFF,),
          body=ShiftReasonIn, response=ShiftOut, tag="rota", visible=_visible_shift)
def cancel_shift(ctx: Context, public_id: str):
    return _shift_out(rota.cancel_shift(ctx.session, ctx.principal, _shift(ctx, public_id), ctx.body.reason))


@endpoint("POST", "/shifts/<public_id>/check-in", summary="值班签到（扫描联络站二维码）", roles=ON_DUTY_ROLES,
          body=CheckInIn, response=ShiftOut, tag="rota", visible=_visible_shift)
def check_in(ctx: Context, public_id: str):
    shift = _shift(ctx, public_id)
    rota.check_in_shift(ctx.session, ctx.principal, shift, ctx.body.station_code)
    return _shift_out(shift)


@endpoint("POST", "/shifts/<public_id>/swaps", summary="申请换班（由其他代表代班，工委审批）", roles=(DEPUTY,),
          body=SwapIn, response=SwapOut, status=201, tag="rota", visible=_visible_shift)
def request_swap(ctx: Context, public_id: str):
    swap = rota.request_swap(ctx.session, ctx.principal, _shift(ctx, public_id), ctx.body.substitute_code,
                             ctx.body.reason)
    return _swap_out(ctx.session, swap)


@endpoint("GET", "/shift-swaps", summary="换班申请（代表：与本人有关的；工委：辖区的）", roles=(DEPUTY, STAFF),
          response=SwapListOut, tag="rota")
def list_swaps(ctx: Context):
    return SwapListOut(items=[_swap_out(ctx.session, x) for x in rota.swaps_for(ctx.session, ctx.principal)])


@endpoint("POST", "/shift-swaps/<public_id>/approve", summary="同意换班", roles=(STAFF,), body=SwapDecisionIn,
          response=SwapOut, tag="rota", visible=_visible_swap)
def approve_swap(ctx: Context, public_id: str):
    swap = rota.get_swap(ctx.session, ctx.principal, public_id)
    return _swap_out(ctx.session, rota.decide_swap(ctx.session, ctx.principal, swap, True, ctx.body.note))


@endpoint("POST", "/shift-swaps/<public_id>/reject", summary="驳回换班", roles=(STAFF,), body=SwapDecisionIn,
          response=SwapOut, tag="rota", visible=_visible_swap)
def reject_swap(ctx: Context, public_id: str):
    swap = rota.get_swap(ctx.session, ctx.principal, public_id)
    return _swap_out(ctx.session, rota.decide_swap(ctx.session, ctx.principal, swap, False, ctx.body.note))


# ---------------------------------------------------------------------------------------------- rules
@endpoint("GET", "/duty-rules", summary="值班规则（如：每周三 2 名代表）", roles=(STAFF,), response=RuleListOut,
          tag="rota")
def list_rules(ctx: Context):
    return RuleListOut(items=[_rule_out(r) for r in rota.rules_for(ctx.session, ctx.principal)])


@endpoint("POST", "/duty-rules", summary="新增值班规则；按工作日历排班（节假日顺延或跳过，调休日可值班）",
          roles=(STAFF,), body=RuleIn, response=RuleOut, status=201, tag="rota")
def create_rule(ctx: Context):
    b: RuleIn = ctx.body
    rule = rota.create_rule(ctx.session, ctx.principal, station_code=b.station_code, weekday=b.weekday,
                            slots=b.slots, deputy_codes=b.deputy_codes, account_ids=b.account_ids, kind=b.kind,
                            title=b.title, start_minute=b.start_minute, end_minute=b.end_minute,
                            holiday_policy=b.holiday_policy, on_makeup_days=b.on_makeup_days,
                            valid_from=b.valid_from, valid_until=b.valid_until)
    return _rule_out(rule)


def _rule_out(rule) -> RuleOut:
    return RuleOut(id=rule.public_id, station_code=rule.station.code, kind=rule.kind, title=rule.title,
                   weekday=rule.weekday, slots=rule.slots, holiday_policy=rule.holiday_policy,
                   on_makeup_days=rule.on_makeup_days, valid_from=rule.valid_from, valid_until=rule.valid_until,
                   active=rule.active)


# ---------------------------------------------------------------------------------------------- grid visits
def _visit_out(session, visit) -> VisitOut:
    return VisitOut(id=visit.public_id, deputy_code=session.get(Deputy, visit.deputy_id).code,
                    grid_code=session.get(Grid, visit.grid_id).code, visited_at=visit.visited_at.isoformat(),
                    method=visit.method, note=visit.note)


@endpoint("POST", "/grid-visits", summary="登记下沉网格走访（文字或照片）", roles=(DEPUTY,), body=VisitIn,
          response=VisitOut, status=201, tag="rota")
def report_visit(ctx: Context):
    b: VisitIn = ctx.body
    return _visit_out(ctx.session, rota.report_visit(ctx.session, ctx.principal, b.grid_code, b.note, b.photo_media_id))


@endpoint("GET", "/grid-visits", summary="走访记录（代表：本人的；工委：辖区的）", roles=(DEPUTY, STAFF),
          response=VisitListOut, tag="rota")
def list_visits(ctx: Context):
    return VisitListOut(items=[_visit_out(ctx.session, v) for v in rota.visits_for(ctx.session, ctx.principal)])


@endpoint("GET", "/grid-visits/shortfall", summary="本周下沉网格未达标的代表（每周最低次数为县级设置）",
          roles=(STAFF,), query=ShortfallQuery, response=ShortfallOut, tag="rota")
def visit_shortfall(ctx: Context):
    week, short = rota.shortfall(ctx.session, ctx.principal, ctx.query.day)
    return ShortfallOut(week_start=week[0], week_end=week[1],
                        items=[ShortfallItem(deputy_code=x.deputy.code, deputy_name=x.deputy.name, visits=x.visits,
                                             minimum=x.minimum) for x in short])
