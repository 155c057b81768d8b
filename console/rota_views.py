"""Console pages of the duty rota (代表周三见, 局长进站, 监督岗): the coming weeks' shifts per station,
recurring rules (create, change, stop), one-off shifts, swaps to decide, check-ins and missed shifts,
and each shift's page with the walk-in matters received on it. Every rule is `liaison.rota.service`'s:
station staff manage their own station, county staff every station of their county."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from liaison.case.lifecycle import STATUS_LABELS as CASE_LABELS
from liaison.core.clock import utcnow
from liaison.core.errors import DomainError
from liaison.people import service as people
from liaison.people.models import Account, Deputy, Station
from liaison.people.service import DEPARTMENT, STAFF
from liaison.rota import lifecycle
from liaison.rota import service as rota
from liaison.rota.models import SHIFT_KIND_LABELS, DutyRule, DutyShift

from . import duty_forms as forms
from .views import _error_message, _error_status, bp, signed_in

MAX_WEEKS = 8


class BadQuery(Exception):
    """A query parameter the page cannot use (answered 400)."""


def _refused(error: Exception, title: str = "无法办理"):
    return render_template("console/error.html", title=title, message=_error_message(error)), _error_status(error)


def _bad(message: str, status: int = 400):
    return render_template("console/error.html", title="请求无效", message=message), status


def _first_error(form) -> str:
    return next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")


def _staff_only():
    if g.principal.role != STAFF:
        return render_template("console/error.html", title="无权访问", message="只有工委账号可以管理值班。"), 403
    return None


def _weeks(default: int) -> int:
    raw = request.args.get("weeks", "")
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WEEKS:
        raise BadQuery(f"周数应为 1–{MAX_WEEKS}")
    return int(raw)


def _stations(session) -> list[Station]:
    """The stations the signed-in staff member plans for (station staff: their own)."""
    query = select(Station).order_by(Station.code)
    own = g.principal.account.station_id
    if g.principal.role == STAFF and own is not None:
        query = query.where(Station.id == own)
    return list(session.scalars(query))


def _station_filter(session) -> Station | None:
    code = request.args.get("station", "")
    if not code:
        return None
    found = next((s for s in _stations(session) if s.code == code), None)
    if found is None:
        raise BadQuery("联络站不存在或不在您的辖区内")
    return found


def _deputy_choices(session, keep: list[int] = ()) -> list[tuple[str, str]]:
    query = select(Deputy).order_by(Deputy.code)
    own = g.principal.account.station_id
    if own is not None:
        query = query.where(Deputy.id.in_(people.station_deputy_ids(own)) | Deputy.id.in_(list(keep)))
    return [(d.code, f"{d.name}（{d.code}）") for d in session.scalars(query)]


def _head_choices(session) -> list[tuple[str, str]]:
    return [(a.public_id, a.name) for a in session.scalars(
        select(Account).where(Account.role == DEPARTMENT, Account.active.is_(True)).order_by(Account.name))]


def _pool_choices(session, form, keep: list[int] = ()) -> None:
    form.deputies.choices = _deputy_choices(session, keep)
    form.heads.choices = _head_choices(session)
    if hasattr(form, "station"):
        form.station.choices = [(s.code, s.name) for s in _stations(session)]


def _rule_form(session, data=None) -> forms.RuleForm:
    form = forms.RuleForm(prefix="rule", formdata=data)
    _pool_choices(session, form)
    return form


def _shift_form(session, data=None) -> forms.ShiftForm:
    form = forms.ShiftForm(prefix="shift", formdata=data)
    _pool_choices(session, form)
    return form


def _by_station_and_week(shifts: list[DutyShift]) -> list[tuple[Station, list[tuple[date, list[DutyShift]]]]]:
    grouped: dict[int, dict[date, list[DutyShift]]] = defaultdict(lambda: defaultdict(list))
    stations: dict[int, Station] = {}
    for shift in shifts:
        stations[shift.station_id] = shift.station
        grouped[shift.station_id][rota.week_of(shift.day)[0]].append(shift)
    return [(stations[sid], sorted(weeks.items())) for sid, weeks in
            sorted(grouped.items(), key=lambda item: stations[item[0]].code)]


def _people(shift: DutyShift) -> list[tuple[str, str, str]]:
    """(name, status key, status label) of everyone on a shift."""
    return [(a.deputy.name if a.deputy is not None else a.account.name, a.status, lifecycle.LABELS[a.status])
            for a in shift.assignments]


def _chrome() -> dict:
    return {"kind_labels": SHIFT_KIND_LABELS, "labels": lifecycle.LABELS, "day_label": rota.day_label,
            "hhmm": forms.hhmm, "minute_of": rota._minute, "people_of": _people, "is_staff": g.principal.role == STAFF}


# ---------------------------------------------------------------------------------------------- shifts
def _render_rota(session, *, form=None, status: int = 200, error: str | None = None):
    try:
        weeks, station = _weeks(4), _station_filter(session)
    except BadQuery as bad:
        return _bad(str(bad))
    today = rota.local_day(utcnow())
    shifts = rota.shifts_for(session, g.principal, start=today, end=today + timedelta(days=7 * weeks - 1))
    if station is not None:
        shifts = [s for s in shifts if s.station_id == station.id]
    pending = 0
    if g.principal.role == STAFF:
        pending = sum(1 for s in rota.swaps_for(session, g.principal) if s.status == lifecycle.REQUESTED)
        form = form or _shift_form(session)
    return render_template("console/rota.html", groups=_by_station_and_week(shifts), weeks=weeks,
                           stations=_stations(session), station=station, pending=pending, form=form,
                           error=error, **_chrome()), status


@bp.get("/rota")
@signed_in
def rota_page(session):
    return _render_rota(session)


@bp.post("/rota/shifts")
@signed_in
def add_shift(session):
    if (refusal := _staff_only()) is not None:
        return refusal
    form = _shift_form(session, request.form)
    if not form.validate():
        return _render_rota(session, form=form, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            shift = rota.add_shift(session, g.principal, station_code=form.station.data, day=form.day.data,
                                   kind=form.kind.data, deputy_codes=form.deputies.data or [],
                                   account_ids=form.heads.data or [], title=(form.title.data or "").strip() or None,
                                   start_minute=forms.minutes(form.start.data), end_minute=forms.minutes(form.end.data))
    except DomainError as error:
        return _render_rota(session, form=form, status=_error_status(error), error=_error_message(error))
    flash(f"已安排{SHIFT_KIND_LABELS[shift.kind]}：{rota.day_label(shift.day)}", "info")
    return redirect(url_for("console.shift_page", public_id=shift.public_id), 303)


def _render_shift(session, shift: DutyShift, *, status: int = 200, error: str | None = None, form=None):
    swaps = [s for s in rota.swaps_for(session, g.principal) if s.assignment.shift_id == shift.id] \
        if g.principal.role == STAFF else []
    can_cancel = g.principal.role == STAFF and lifecycle.allows("shift", "cancel", shift.status)
    substitutes = dict(session.execute(select(Deputy.id, Deputy.name)).all()) if swaps else {}
    return render_template("console/rota_shift.html", shift=shift, matters=rota.matters_of(session, shift),
                           swaps=swaps, substitutes=substitutes, case_labels=CASE_LABELS, error=error,
                           cancel_form=(form or forms.CancelShiftForm(prefix="cancel")) if can_cancel else None,
                           **_chrome()), status


@bp.get("/rota/shifts/<public_id>")
@signed_in
def shift_page(session, public_id: str):
    try:
        shift = rota.get_shift(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "值班不存在")
    return _render_shift(session, shift)


@bp.post("/rota/shifts/<public_id>/cancel")
@signed_in
def cancel_shift(session, public_id: str):
    try:
        shift = rota.get_shift(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "值班不存在")
    if (refusal := _staff_only()) is not None:
        return refusal
    form = forms.CancelShiftForm(prefix="cancel")
    if not form.validate():
        return _render_shift(session, shift, status=422, error=_first_error(form), form=form)
    try:
        with session.begin_nested():
            rota.cancel_shift(session, g.principal, shift, form.reason.data)
    except DomainError as error:
        session.refresh(shift)
        return _render_shift(session, shift, status=_error_status(error), error=_error_message(error), form=form)
    flash("该次值班已取消，已通知值班代表", "info")
    return redirect(url_for("console.shift_page", public_id=shift.public_id), 303)


# ---------------------------------------------------------------------------------------------- rules
def _render_rules(session, *, form=None, status: int = 200, error: str | None = None):
    rules = rota.rules_for(session, g.principal)
    deputies = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    heads = dict(session.execute(select(Account.id, Account.name).where(Account.role == DEPARTMENT)).all())
    return render_template("console/rota_rules.html", rules=rules, deputies=deputies, heads=heads,
                           form=form or _rule_form(session), error=error, **_chrome()), status


@bp.get("/rota/rules")
@signed_in
def rules_page(session):
    if (refusal := _staff_only()) is not None:
        return refusal
    return _render_rules(session)


@bp.post("/rota/rules")
@signed_in
def create_rule(session):
    if (refusal := _staff_only()) is not None:
        return refusal
    form = _rule_form(session, request.form)
    if not form.validate():
        return _render_rules(session, form=form, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            rule = rota.create_rule(
                session, g.principal, station_code=form.station.data, weekday=form.weekday.data,
                slots=form.slots.data, deputy_codes=form.deputies.data or [], account_ids=form.heads.data or [],
                kind=form.kind.data, title=(form.title.data or "").strip() or None,
                start_minute=forms.minutes(form.start.data), end_minute=forms.minutes(form.end.data),
                holiday_policy=form.holiday_policy.data, on_makeup_days=form.on_makeup_days.data,
                valid_from=form.valid_from.data, valid_until=form.valid_until.data)
    except DomainError as error:
        return _render_rules(session, form=form, status=_error_status(error), error=_error_message(error))
    flash(f"已新增值班规则“{rule.title}”，已排出未来 {rota.PLAN_AHEAD_DAYS} 天的值班", "info")
    return redirect(url_for("console.rule_page", public_id=rule.public_id), 303)


def _edit_form(session, rule: DutyRule, data=None) -> forms.RuleEditForm:
    form = forms.RuleEditForm(prefix="edit", formdata=data)
    _pool_choices(session, form, keep=rule.deputy_ids or [])
    if data is None:
        codes = dict(session.execute(select(Deputy.id, Deputy.code).where(Deputy.id.in_(rule.deputy_ids or []))).all())
        heads = dict(session.execute(select(Account.id, Account.public_id).where(
            Account.id.in_(rule.account_ids or []))).all())
        form.deputies.data = [codes[i] for i in rule.deputy_ids or [] if i in codes]
        form.heads.data = [heads[i] for i in rule.account_ids or [] if i in heads]
        form.title.data, form.weekday.data, form.slots.data = rule.title, rule.weekday, rule.slots
        form.start.data, form.end.data = forms.hhmm(rule.start_minute), forms.hhmm(rule.end_minute)
        form.holiday_policy.data, form.on_makeup_days.data = rule.holiday_policy, rule.on_makeup_days
        form.valid_until.data, form.active.data = rule.valid_until, rule.active
    return form


def _render_rule(session, rule: DutyRule, *, form=None, status: int = 200, error: str | None = None):
    today = rota.local_day(utcnow())
    shifts = [s for s in rota.shifts_for(session, g.principal, start=today - timedelta(days=28),
                                         end=today + timedelta(days=rota.PLAN_AHEAD_DAYS + 7))
              if s.rule_id == rule.id]
    return render_template("console/rota_rule.html", rule=rule, form=form or _edit_form(session, rule),
                           shifts=shifts, error=error, today=today, **_chrome()), status


@bp.get("/rota/rules/<public_id>")
@signed_in
def rule_page(session, public_id: str):
    try:
        rule = rota.get_rule(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "值班规则不存在")
    return _render_rule(session, rule)


@bp.post("/rota/rules/<public_id>")
@signed_in
def update_rule(session, public_id: str):
    try:
        rule = rota.get_rule(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "值班规则不存在")
    form = _edit_form(session, rule, request.form)
    if not form.validate():
        return _render_rule(session, rule, form=form, status=422, error=_first_error(form))
    try:
        with session.begin_nested():
            replanned = rota.update_rule(
                session, g.principal, rule, weekday=form.weekday.data, slots=form.slots.data,
                deputy_codes=form.deputies.data or [], account_ids=form.heads.data or [],
                title=(form.title.data or "").strip() or None, start_minute=forms.minutes(form.start.data),
                end_minute=forms.minutes(form.end.data), holiday_policy=form.holiday_policy.data,
                on_makeup_days=form.on_makeup_days.data, valid_until=form.valid_until.data,
                active=form.active.data)
    except DomainError as error:
        session.refresh(rule)
        return _render_rule(session, rule, form=form, status=_error_status(error), error=_error_message(error))
    flash(f"值班规则已保存，自明日起重排 {replanned} 次值班" if rule.active else "值班规则已停用，未开始的值班已撤销",
          "info")
    return redirect(url_for("console.rule_page", public_id=rule.public_id), 303)


# ---------------------------------------------------------------------------------------------- swaps
@bp.get("/rota/swaps")
@signed_in
def swaps_page(session):
    try:
        swaps = rota.swaps_for(session, g.principal)
    except DomainError as error:
        return _refused(error)
    names = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    decided = {s.decided_by for s in swaps if s.decided_by}
    deciders = dict(session.execute(select(Account.id, Account.name).where(Account.id.in_(decided))).all()) if decided else {}
    return render_template("console/rota_swaps.html", swaps=swaps, names=names, deciders=deciders,
                           decision_form=forms.DecisionForm(prefix="decide"), **_chrome())


def _decide(session, public_id: str, approve: bool):
    try:
        swap = rota.get_swap(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error, "换班申请不存在")
    if (refusal := _staff_only()) is not None:
        return refusal
    form = forms.DecisionForm(prefix="decide")
    if not form.validate():
        return _bad(_first_error(form), 422)
    try:
        with session.begin_nested():
            rota.decide_swap(session, g.principal, swap, approve, (form.note.data or "").strip() or None)
    except DomainError as error:
        return _refused(error)
    flash("已同意换班，已通知双方代表" if approve else "已驳回换班申请，已通知申请人", "info")
    return redirect(url_for("console.swaps_page"), 303)


@bp.post("/rota/swaps/<public_id>/approve")
@signed_in
def approve_swap(session, public_id: str):
    return _decide(session, public_id, True)


@bp.post("/rota/swaps/<public_id>/reject")
@signed_in
def reject_swap(session, public_id: str):
    return _decide(session, public_id, False)


# ---------------------------------------------------------------------------------------------- attendance
@bp.get("/rota/attendance")
@signed_in
def attendance_page(session):
    try:
        weeks, station = _weeks(4), _station_filter(session)
    except BadQuery as bad:
        return _bad(str(bad))
    missed_only = request.args.get("missed") == "1"
    today = rota.local_day(utcnow())
    shifts = [s for s in rota.shifts_for(session, g.principal, start=today - timedelta(days=7 * weeks), end=today)
              if s.starts_at <= utcnow() and (station is None or s.station_id == station.id)]
    if missed_only:
        shifts = [s for s in shifts if any(a.status == lifecycle.MISSED for a in s.assignments)]
    shifts.reverse()  # the latest first
    missed = defaultdict(int)
    for shift in shifts:
        for assignment in shift.assignments:
            if assignment.status == lifecycle.MISSED:
                missed[assignment.deputy.name if assignment.deputy else assignment.account.name] += 1
    return render_template("console/rota_attendance.html", shifts=shifts, weeks=weeks, stations=_stations(session),
                           station=station, missed_only=missed_only,
                           missed=sorted(missed.items(), key=lambda item: -item[1]), **_chrome())
