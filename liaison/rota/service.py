"""The duty rota: staff plan recurring duty rules per station and exceptions; shifts are planned from
the rules on the working-day calendar; deputies swap with staff approval, check in by scanning the
station's code; residents ask who is on duty. Grid visits (下沉网格) and who fell short of the weekly
minimum. Status changes go through `rota.lifecycle`; reminders and missed shifts are `rota.timers`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liaison.case import notices
from liaison.case.models import Case
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.core.workcalendar import CHINA_TZ, is_working_day
from liaison.intake.models import WalkIn
from liaison.people import service as accounts
from liaison.people.models import Account, Deputy, DeputyGrid, Grid, Resident, Station
from liaison.people.service import DEPARTMENT, DEPUTY, RESIDENT, STAFF, Principal
from liaison.rota import lifecycle
from liaison.rota.models import (
    HOLIDAY_POLICIES,
    SHIFT_KIND_LABELS,
    SHIFT_KINDS,
    DutyRule,
    DutyShift,
    GridVisit,
    ShiftAssignment,
    ShiftSwap,
)
from liaison.tenancy.models import County

PLAN_AHEAD_DAYS = 28
CHECK_IN_EARLY = timedelta(minutes=60)  # a deputy may check in this long before the shift starts
WEEKDAYS = "一二三四五六日"
DEFAULT_VISITS_PER_WEEK = 1  # 代表每周下沉网格不少于1次; a county overrides it (settings.grid_visits_per_week)


class RotaError(Refusal):
    """A rota request refused (kind, code, Chinese message)."""


def local_day(moment: datetime) -> date:
    return moment.astimezone(CHINA_TZ).date()


def at_minute(day: date, minute: int) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=CHINA_TZ).astimezone(timezone.utc)


def day_label(day: date) -> str:
    return f"{day.month}月{day.day}日（周{WEEKDAYS[day.weekday()]}）"


def _hm(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}"


# ---------------------------------------------------------------------------------------------- planning
def rule_days(rule: DutyRule, start: date, end: date) -> list[tuple[date, date]]:
    """(planned_for, day) of the rule's shifts from `start` to `end` inclusive, on the calendar:
    the rule's weekday when it is a working day; on a holiday skipped or moved to the next working
    day; a 调休 working weekend day added when the rule says so."""
    first = max(start, rule.valid_from)
    last = min(end, rule.valid_until) if rule.valid_until else end
    found: list[tuple[date, date]] = []
    day = first
    while day <= last:
        if day.weekday() == rule.weekday:
            if is_working_day(day):
                found.append((day, day))
            elif rule.holiday_policy == "next_working_day":
                moved = day + timedelta(days=1)
                while not is_working_day(moved):
                    moved += timedelta(days=1)
                found.append((day, moved))
        elif rule.on_makeup_days and day.weekday() >= 5 and is_working_day(day):
            found.append((day, day))
        day += timedelta(days=1)
    return found


def _pool(rule: DutyRule) -> list[tuple[str, int]]:
    return [("deputy", i) for i in rule.deputy_ids or []] + [("account", i) for i in rule.account_ids or []]


def plan(session: Session, rule: DutyRule, until: date, *, today: date | None = None) -> list[DutyShift]:
    """Create the rule's shifts up to `until` that do not exist yet (a cancelled one stays cancelled);
    people are taken from the pool in turn, `slots` per shift."""
    today = today or local_day(utcnow())
    if not rule.active:
        return []
    existing = set(session.scalars(select(DutyShift.planned_for).where(DutyShift.rule_id == rule.id)))
    pool = _pool(rule)
    created = []
    for planned_for, day in rule_days(rule, today, until):
        if planned_for in existing:
            continue
        turn = session.scalar(select(func.count()).select_from(DutyShift).where(
            DutyShift.rule_id == rule.id, DutyShift.planned_for < planned_for)) or 0
        shift = DutyShift(station_id=rule.station_id, rule_id=rule.id, kind=rule.kind, title=rule.title,
                          day=day, planned_for=planned_for, starts_at=at_minute(day, rule.start_minute),
                          ends_at=at_minute(day, rule.end_minute), status=lifecycle.PLANNED,
                          note="节假日顺延" if day != planned_for else None)
        session.add(shift)
        session.flush()
        for slot in range(min(rule.slots, len(pool))):
            who, ident = pool[(turn * rule.slots + slot) % len(pool)]
            session.add(ShiftAssignment(shift_id=shift.id, status=lifecycle.ON_DUTY,
                                        deputy_id=ident if who == "deputy" else None,
                                        account_id=ident if who == "account" else None))
        session.flush()
        existing.add(planned_for)
        created.append(shift)
    return created


def plan_all(session: Session, now: datetime | None = None) -> int:
    """Plan every active rule PLAN_AHEAD_DAYS ahead (the scheduler's sweep)."""
    today = local_day(now or utcnow())
    rules = session.scalars(select(DutyRule).where(DutyRule.active.is_(True))).all()
    return sum(len(plan(session, rule, today + timedelta(days=PLAN_AHEAD_DAYS), today=today)) for rule in rules)


# ---------------------------------------------------------------------------------------------- staff
def _staff(principal: Principal) -> Account:
    if principal.role != STAFF:
        raise RotaError(FORBIDDEN, "forbidden", "只有工委可以管理值班安排")
    return principal.account


def _station_in_scope(session: Session, principal: Principal, code: str) -> Station:
    account = _staff(principal)
    station = session.scalar(select(Station).where(Station.code == code))
    if station is None or (account.station_id is not None and account.station_id != station.id):
        raise RotaError(NOT_FOUND, "not_found", "联络站不存在", "station_code")
    return station


def _deputy_ids(session: Session, codes: list[str]) -> list[int]:
    rows = dict(session.execute(select(Deputy.code, Deputy.id).where(Deputy.code.in_(codes))).all())
    unknown = [c for c in codes if c not in rows]
    if unknown:
        raise RotaError(INVALID, "unknown_deputy", "代表不存在：" + "、".join(unknown), "deputy_codes")
    return [rows[c] for c in codes]


def _account_ids(session: Session, public_ids: list[str]) -> list[int]:
    rows = dict(session.execute(select(Account.public_id, Account.id).where(
        Account.public_id.in_(public_ids), Account.role == DEPARTMENT, Account.active.is_(True))).all())
    unknown = [c for c in public_ids if c not in rows]
    if unknown:
        raise RotaError(INVALID, "unknown_account", "部门账号不存在", "account_ids")
    return [rows[c] for c in public_ids]


def _check_times(start_minute: int, end_minute: int) -> None:
    if not 0 <= start_minute < end_minute < 24 * 60:
        raise RotaError(INVALID, "invalid_time", "值班时间无效：结束须晚于开始", "end_minute")


def _rule_pool(session: Session, holiday_policy: str, weekday: int, slots: int, start_minute: int,
               end_minute: int, deputy_codes, account_ids) -> tuple[list[int], list[int]]:
    """What a new or changed rule must satisfy; returns its pool (deputy ids, head-of-unit account ids)."""
    if holiday_policy not in HOLIDAY_POLICIES:
        raise RotaError(INVALID, "invalid_policy", "节假日处理方式无效", "holiday_policy")
    if not 0 <= weekday <= 6 or not 1 <= slots <= 20:
        raise RotaError(INVALID, "invalid_rule", "星期或人数无效", "weekday")
    _check_times(start_minute, end_minute)
    deputies = _deputy_ids(session, deputy_codes)
    heads = _account_ids(session, account_ids or [])
    if not deputies and not heads:
        raise RotaError(INVALID, "empty_pool", "请至少安排一名值班人员", "deputy_codes")
    return deputies, heads


def create_rule(session: Session, principal: Principal, *, station_code: str, weekday: int, slots: int,
                deputy_codes: list[str], account_ids: list[str] | None = None, kind: str = "reception",
                title: str | None = None, start_minute: int = 540, end_minute: int = 690,
                holiday_policy: str = "next_working_day", on_makeup_days: bool = False,
                valid_from: date | None = None, valid_until: date | None = None,
                now: datetime | None = None) -> DutyRule:
    """A recurring duty rule (e.g. every Wednesday, 2 deputies), planned ahead at once."""
    station = _station_in_scope(session, principal, station_code)
    if kind not in SHIFT_KINDS:
        raise RotaError(INVALID, "invalid_kind", "值班类型无效", "kind")
    deputies, heads = _rule_pool(session, holiday_policy, weekday, slots, start_minute, end_minute,
                                 deputy_codes, account_ids)
    today = local_day(now or utcnow())
    valid_from = valid_from or today
    if valid_until is not None and valid_until < valid_from:
        raise RotaError(INVALID, "invalid_dates", "结束日期早于开始日期", "valid_until")
    rule = DutyRule(station_id=station.id, kind=kind, title=title or SHIFT_KIND_LABELS[kind],
                    weekday=weekday, slots=slots, deputy_ids=deputies, account_ids=heads,
                    start_minute=start_minute, end_minute=end_minute, holiday_policy=holiday_policy,
                    on_makeup_days=on_makeup_days, valid_from=valid_from, valid_until=valid_until,
                    created_by=principal.account.id, active=True)
    session.add(rule)
    session.flush()
    plan(session, rule, max(today, valid_from) + timedelta(days=PLAN_AHEAD_DAYS), today=today)
    return rule


def rules_for(session: Session, principal: Principal) -> list[DutyRule]:
    account = _staff(principal)
    query = select(DutyRule).order_by(DutyRule.id)
    if account.station_id is not None:
        query = query.where(DutyRule.station_id == account.station_id)
    return list(session.scalars(query))


def get_rule(session: Session, principal: Principal, public_id: str) -> DutyRule:
    """A rule the staff member manages (station staff: their station's)."""
    account = _staff(principal)
    rule = session.scalar(select(DutyRule).where(DutyRule.public_id == public_id))
    if rule is None or (account.station_id is not None and rule.station_id != account.station_id):
        raise RotaError(NOT_FOUND, "not_found", "值班规则不存在")
    return rule


def _untouched_future_shifts(session: Session, rule: DutyRule, after: date) -> list[DutyShift]:
    """The rule's planned shifts after `after` nobody acted on yet: every assignment still on duty, no
    swap asked for, neither the grids' notice nor the day-before reminder sent."""
    touched = select(ShiftAssignment.shift_id).where(
        (ShiftAssignment.status != lifecycle.ON_DUTY)
        | ShiftAssignment.id.in_(select(ShiftSwap.assignment_id)))
    return list(session.scalars(select(DutyShift).where(
        DutyShift.rule_id == rule.id, DutyShift.day > after, DutyShift.status == lifecycle.PLANNED,
        DutyShift.noticed_at.is_(None), DutyShift.reminded_at.is_(None), DutyShift.id.not_in(touched))))


def update_rule(session: Session, principal: Principal, rule: DutyRule, *, weekday: int, slots: int,
                deputy_codes: list[str], account_ids: list[str] | None = None, title: str | None = None,
                start_minute: int = 540, end_minute: int = 690, holiday_policy: str = "next_working_day",
                on_makeup_days: bool = False, valid_until: date | None = None, active: bool = True,
                now: datetime | None = None) -> int:
    """Change a rule from tomorrow on (or stop it: `active` False). Its future shifts nobody acted on
    yet are planned again under the changed rule; shifts already announced, checked in, swapped or
    cancelled stay as they were. Returns how many shifts were planned again."""
    get_rule(session, principal, rule.public_id)  # staff of the rule's station (or the county)
    deputies, heads = _rule_pool(session, holiday_policy, weekday, slots, start_minute, end_minute,
                                 deputy_codes, account_ids)
    if valid_until is not None and valid_until < rule.valid_from:
        raise RotaError(INVALID, "invalid_dates", "结束日期早于开始日期", "valid_until")
    today = local_day(now or utcnow())
    stale = _untouched_future_shifts(session, rule, today)
    for shift in stale:
        for assignment in shift.assignments:
            session.delete(assignment)
        session.delete(shift)
    session.flush()
    rule.weekday, rule.slots, rule.deputy_ids, rule.account_ids = weekday, slots, deputies, heads
    rule.title = title or SHIFT_KIND_LABELS[rule.kind]
    rule.start_minute, rule.end_minute = start_minute, end_minute
    rule.holiday_policy, rule.on_makeup_days, rule.valid_until, rule.active = (
        holiday_policy, on_makeup_days, valid_until, active)
    session.flush()
    return len(plan(session, rule, max(today, rule.valid_from) + timedelta(days=PLAN_AHEAD_DAYS),
                    today=today + timedelta(days=1)))


def add_shift(session: Session, principal: Principal, *, station_code: str, day: date, kind: str,
              deputy_codes: list[str], account_ids: list[str] | None = None, title: str | None = None,
              start_minute: int = 540, end_minute: int = 690, now: datetime | None = None) -> DutyShift:
    """A one-off shift (an exception to the rules, or a 局长进站 / 监督岗 day)."""
    station = _station_in_scope(session, principal, station_code)
    if kind not in SHIFT_KINDS:
        raise RotaError(INVALID, "invalid_kind", "值班类型无效", "kind")
    _check_times(start_minute, end_minute)
    if day < local_day(now or utcnow()):
        raise RotaError(INVALID, "in_the_past", "不能安排过去的值班", "day")
    deputies = _deputy_ids(session, deputy_codes)
    heads = _account_ids(session, account_ids or [])
    if not deputies and not heads:
        raise RotaError(INVALID, "empty_pool", "请至少安排一名值班人员", "deputy_codes")
    shift = DutyShift(station_id=station.id, kind=kind, title=title or SHIFT_KIND_LABELS[kind], day=day,
                      planned_for=day, starts_at=at_minute(day, start_minute),
                      ends_at=at_minute(day, end_minute), status=lifecycle.PLANNED)
    session.add(shift)
    session.flush()
    session.add_all([ShiftAssignment(shift_id=shift.id, deputy_id=i, status=lifecycle.ON_DUTY) for i in deputies]
                    + [ShiftAssignment(shift_id=shift.id, account_id=i, status=lifecycle.ON_DUTY) for i in heads])
    session.flush()
    return shift


def _is_on(assignment: ShiftAssignment, principal: Principal) -> bool:
    account = principal.account
    if principal.role == DEPUTY:
        return assignment.deputy_id is not None and assignment.deputy_id == account.deputy_id
    return assignment.account_id is not None and assignment.account_id == account.id


def shift_visible(session: Session, principal: Principal, shift: DutyShift) -> bool:
    if principal.role == STAFF:
        station = principal.account.station_id
        return station is None or station == shift.station_id
    if principal.role in (DEPUTY, DEPARTMENT):
        return any(_is_on(a, principal) for a in shift.assignments)
    if principal.role == RESIDENT:
        return shift.station_id == _resident_station(session, principal.resident)
    return False


def get_shift(session: Session, principal: Principal, public_id: str) -> DutyShift:
    shift = session.scalar(select(DutyShift).where(DutyShift.public_id == public_id))
    if shift is None or not shift_visible(session, principal, shift):
        raise RotaError(NOT_FOUND, "not_found", "值班不存在")
    return shift


def cancel_shift(session: Session, principal: Principal, shift: DutyShift, reason: str) -> DutyShift:
    """Staff cancel a planned shift (the station is closed that day); those on duty are told."""
    _staff(principal)
    if not (reason or "").strip():
        raise RotaError(INVALID, "reason_required", "请填写取消原因", "reason")
    lifecycle.move(shift, "cancel")
    shift.note = reason.strip()[:200]
    for a in shift.assignments:
        if a.deputy_id is not None and a.status == lifecycle.ON_DUTY:
            notices.notify(session, None, f"duty-cancel:{shift.id}:{a.deputy_id}",
                           f"{shift.station.name}{day_label(shift.day)}的{shift.title}已取消：{shift.note}",
                           deputy_id=a.deputy_id, kind="duty")
    session.flush()
    return shift


def shifts_for(session: Session, principal: Principal, *, start: date, end: date) -> list[DutyShift]:
    """Shifts from `start` to `end`: a deputy's or a department head's own, a staff member's
    station(s), a resident's station (the coming shifts, as on the notice board)."""
    query = select(DutyShift).where(DutyShift.day >= start, DutyShift.day <= end).order_by(
        DutyShift.starts_at, DutyShift.id)
    if principal.role == DEPUTY:
        query = query.where(DutyShift.id.in_(select(ShiftAssignment.shift_id).where(
            ShiftAssignment.deputy_id == principal.account.deputy_id)))
    elif principal.role == DEPARTMENT:
        query = query.where(DutyShift.id.in_(select(ShiftAssignment.shift_id).where(
            ShiftAssignment.account_id == principal.account.id)))
    elif principal.role == STAFF:
        if principal.account.station_id is not None:
            query = query.where(DutyShift.station_id == principal.account.station_id)
    else:
        station_id = _resident_station(session, principal.resident)
        if station_id is None:
            return []
        query = query.where(DutyShift.station_id == station_id, DutyShift.status == lifecycle.PLANNED)
    return list(session.scalars(query.limit(500)))


def on_duty_names(shift: DutyShift) -> list[str]:
    return [a.deputy.name if a.deputy is not None else a.account.name for a in shift.assignments
            if a.status in (lifecycle.ON_DUTY, lifecycle.CHECKED_IN)]


# ---------------------------------------------------------------------------------------------- swaps
def request_swap(session: Session, principal: Principal, shift: DutyShift, substitute_code: str,
                 reason: str) -> ShiftSwap:
    """A deputy on duty asks that another deputy takes their place; staff approve."""
    if principal.role != DEPUTY:
        raise RotaError(FORBIDDEN, "forbidden", "只有值班代表可以申请换班")
    mine = next((a for a in shift.assignments if _is_on(a, principal)), None)
    if mine is None:
        raise RotaError(NOT_FOUND, "not_found", "值班不存在")
    if shift.status != lifecycle.PLANNED or mine.status != lifecycle.ON_DUTY:
        raise RotaError(CONFLICT, "illegal_transition", "该值班已不能换班")
    if not (reason or "").strip():
        raise RotaError(INVALID, "reason_required", "请填写换班原因", "reason")
    substitute = session.scalar(select(Deputy).where(Deputy.code == substitute_code))
    if substitute is None:
        raise RotaError(INVALID, "unknown_deputy", "代班代表不存在", "substitute_code")
    if any(a.deputy_id == substitute.id for a in shift.assignments):
        raise RotaError(CONFLICT, "already_on_duty", "该代表已在本班次值班", "substitute_code")
    if session.scalar(select(ShiftSwap.id).where(ShiftSwap.assignment_id == mine.id,
                                                 ShiftSwap.status == lifecycle.REQUESTED)):
        raise RotaError(CONFLICT, "already_requested", "已提交换班申请，请等待审批")
    swap = ShiftSwap(assignment_id=mine.id, substitute_deputy_id=substitute.id, reason=reason.strip()[:200],
                     status=lifecycle.REQUESTED)
    session.add(swap)
    session.flush()
    return swap


def swap_visible(session: Session, principal: Principal, swap: ShiftSwap) -> bool:
    shift = swap.assignment.shift
    if principal.role == DEPUTY:
        return principal.account.deputy_id in (swap.assignment.deputy_id, swap.substitute_deputy_id)
    return principal.role == STAFF and shift_visible(session, principal, shift)


def get_swap(session: Session, principal: Principal, public_id: str) -> ShiftSwap:
    swap = session.scalar(select(ShiftSwap).where(ShiftSwap.public_id == public_id))
    if swap is None or not swap_visible(session, principal, swap):
        raise RotaError(NOT_FOUND, "not_found", "换班申请不存在")
    return swap


def swaps_for(session: Session, principal: Principal) -> list[ShiftSwap]:
    rows = session.scalars(select(ShiftSwap).order_by(ShiftSwap.id.desc()).limit(500)).all()
    return [s for s in rows if swap_visible(session, principal, s)]


def decide_swap(session: Session, principal: Principal, swap: ShiftSwap, approve: bool,
                note: str | None = None, now: datetime | None = None) -> ShiftSwap:
    """Staff approve (the substitute is on duty instead) or reject a swap; both deputies are told."""
    _staff(principal)
    shift = swap.assignment.shift
    lifecycle.move(swap, "approve" if approve else "reject")
    swap.decided_by, swap.decided_at, swap.decision_note = principal.account.id, now or utcnow(), note
    label = f"{shift.station.name}{day_label(shift.day)}{shift.title}"
    if approve:
        lifecycle.move(swap.assignment, "swap")
        session.add(ShiftAssignment(shift_id=shift.id, deputy_id=swap.substitute_deputy_id,
                                    status=lifecycle.ON_DUTY))
        notices.notify(session, None, f"duty-swap:{swap.id}:substitute",
                       f"您将代班：{label}，请按时到岗扫码签到。", deputy_id=swap.substitute_deputy_id, kind="duty")
    text = f"您的换班申请（{label}）{'已同意' if approve else '未同意'}" + (f"：{note}" if note else "。")
    notices.notify(session, None, f"duty-swap:{swap.id}:requester", text,
                   deputy_id=swap.assignment.deputy_id, kind="duty")
    session.flush()
    session.expire(shift, ["assignments"])
    return swap


# ---------------------------------------------------------------------------------------------- check-in
def account_of_resident(session: Session, resident: Resident) -> Account | None:
    """The deputy's or department head's account behind an official-account user (the same WeChat
    user in the mini-program: linked through the unionid onto the resident row)."""
    if not resident.mp_openid:
        return None
    return session.scalar(select(Account).where(Account.mp_openid == resident.mp_openid,
                                                Account.role.in_((DEPUTY, DEPARTMENT)),
                                                Account.active.is_(True)))


def _assignment_of(shift: DutyShift, account: Account) -> ShiftAssignment | None:
    principal = Principal(account.role, account=account)
    return next((a for a in shift.assignments if _is_on(a, principal)), None)


def check_in(session: Session, account: Account, station: Station, *, via: str,
             now: datetime | None = None) -> ShiftAssignment:
    """Check in to the caller's shift at `station` now (from an hour before it starts to its end)."""
    now = now or utcnow()
    shifts = session.scalars(select(DutyShift).where(
        DutyShift.station_id == station.id, DutyShift.status == lifecycle.PLANNED,
        DutyShift.starts_at <= now + CHECK_IN_EARLY, DutyShift.ends_at >= now)).all()
    for shift in shifts:
        mine = _assignment_of(shift, account)
        if mine is None:
            continue
        if mine.status == lifecycle.CHECKED_IN:
            return mine
        lifecycle.move(mine, "check_in")
        mine.checked_in_at, mine.check_in_via = now, via
        session.flush()
        return mine
    raise RotaError(CONFLICT, "no_shift_now", f"您此时在{station.name}没有值班安排")


def check_in_shift(session: Session, principal: Principal, shift: DutyShift, station_code: str,
                   now: datetime | None = None) -> ShiftAssignment:
    """The mini-program's check-in: the scanned code must be the shift's station's."""
    if principal.role not in (DEPUTY, DEPARTMENT):
        raise RotaError(FORBIDDEN, "forbidden", "只有值班人员可以签到")
    if station_code != shift.station.code:
        raise RotaError(INVALID, "wrong_station", "请扫描本联络站的二维码签到", "station_code")
    return check_in(session, principal.account, shift.station, via="miniprogram", now=now)


# ---------------------------------------------------------------------------------------------- matters
WALK_IN_PLACES_AT_STATION = ("reception", "post")  # a street stall is not received on a station's shift


def _usable_for_walk_in(shift: DutyShift, now: datetime) -> bool:
    return shift.status != lifecycle.CANCELLED and shift.starts_at <= now + CHECK_IN_EARLY


def shift_for_walk_in(session: Session, principal: Principal, *, place_kind: str, station_id: int | None,
                      shift_public_id: str | None = None, now: datetime | None = None) -> DutyShift | None:
    """The duty shift a walk-in matter is received on: the one named (it must be one the caller may
    see, begun and not cancelled), else the shift the registering deputy (or the station's staff) is
    running now at the matter's station. None: not received on a shift."""
    now = now or utcnow()
    if shift_public_id is not None:
        shift = get_shift(session, principal, shift_public_id)
        if principal.role not in (DEPUTY, STAFF) or not _usable_for_walk_in(shift, now):
            raise RotaError(INVALID, "shift_not_running", "该值班尚未开始或已取消", "shift_id")
        return shift
    if place_kind not in WALK_IN_PLACES_AT_STATION:
        return None
    if principal.role == STAFF and principal.account.station_id is not None:
        station_id = principal.account.station_id
    query = select(DutyShift).where(DutyShift.status.in_((lifecycle.PLANNED, lifecycle.KEPT)),
                                    DutyShift.starts_at <= now + CHECK_IN_EARLY, DutyShift.ends_at >= now)
    if station_id is not None:
        query = query.where(DutyShift.station_id == station_id)
    elif principal.role == STAFF:
        return None  # county staff at no station: only an explicit shift
    if principal.role == DEPUTY:
        query = query.where(DutyShift.id.in_(select(ShiftAssignment.shift_id).where(
            ShiftAssignment.deputy_id == principal.account.deputy_id,
            ShiftAssignment.status.in_((lifecycle.ON_DUTY, lifecycle.CHECKED_IN)))))
    elif principal.role != STAFF:
        return None
    return session.scalars(query.order_by(DutyShift.starts_at, DutyShift.id).limit(1)).first()


def matters_of(session: Session, shift: DutyShift) -> list[tuple[WalkIn, Case]]:
    """The walk-in matters received on a shift, in the order registered."""
    return list(session.execute(select(WalkIn, Case).join(Case, Case.id == WalkIn.case_id)
                                .where(WalkIn.shift_id == shift.id).order_by(WalkIn.id)).tuples())


def scan_station(session: Session, resident: Resident, station: Station, now: datetime | None = None) -> str | None:
    """A scan of a station's code: a deputy or department head on duty there is checked in (the
    reply says so); anyone else gets None (the ordinary welcome)."""
    account = account_of_resident(session, resident)
    if account is None:
        return None
    try:
        mine = check_in(session, account, station, via="scan", now=now)
    except RotaError as refusal:
        return refusal.message
    shift = mine.shift
    return (f"签到成功：{station.name}{day_label(shift.day)} {_hm(_minute(shift.starts_at))}-"
            f"{_hm(_minute(shift.ends_at))} {shift.title}。接待群众时请在小程序登记诉求。")


def _minute(moment: datetime) -> int:
    local = moment.astimezone(CHINA_TZ)
    return local.hour * 60 + local.minute


# ---------------------------------------------------------------------------------------------- the chat
DUTY_QUESTION = re.compile(r"周三见|谁值班|值班代表|谁在站|哪位代表.*(值班|接待)|今天.*接待|接待.*代表")


def _resident_station(session: Session, resident: Resident | None) -> int | None:
    if resident is None or resident.grid_id is None:
        return None
    return session.scalar(select(Grid.station_id).where(Grid.id == resident.grid_id))


def is_duty_question(text: str) -> bool:
    """A short question about who is on duty ("周三见", "今天谁值班"), not a matter to register."""
    return len(text) <= 16 and DUTY_QUESTION.search(text) is not None


def duty_answer(session: Session, resident: Resident, now: datetime | None = None) -> str:
    """Who is on duty at the resident's station: today's shift, else the next ones."""
    now = now or utcnow()
    station_id = _resident_station(session, resident)
    if station_id is None:
        return "您还没有绑定网格。请扫描小区公示牌上的“一键找代表”二维码，即可查询您所在联络站的值班代表。"
    station = session.get(Station, station_id)
    today = local_day(now)
    shifts = session.scalars(select(DutyShift).where(
        DutyShift.station_id == station_id, DutyShift.status == lifecycle.PLANNED, DutyShift.ends_at >= now,
        DutyShift.day <= today + timedelta(days=PLAN_AHEAD_DAYS)).order_by(DutyShift.starts_at).limit(3)).all()
    if not shifts:
        return f"{station.name}近期暂无值班安排。您可以直接发送文字或语音反映诉求。"
    lines = [f"{station.name}值班安排："]
    for shift in shifts:
        when = "今天" if shift.day == today else day_label(shift.day)
        names = "、".join(on_duty_names(shift)) or "待定"
        lines.append(f"{when} {_hm(_minute(shift.starts_at))}-{_hm(_minute(shift.ends_at))} {shift.title}：{names}")
    if station.address:
        lines.append(f"地址：{station.address}")
    lines.append("不方便到站的，可以直接发送文字或语音反映诉求。")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- grid visits
@dataclass(frozen=True)
class Shortfall:
    deputy: Deputy
    visits: int
    minimum: int


def weekly_minimum(session: Session, county_id: int) -> int:
    county = session.get(County, county_id)
    value = (county.settings or {}).get("grid_visits_per_week") if county else None
    return int(value) if value is not None else DEFAULT_VISITS_PER_WEEK


def record_visit(session: Session, deputy_id: int, grid: Grid, *, method: str, note: str | None = None,
                 photo_media_id: str | None = None, now: datetime | None = None) -> GridVisit:
    """A deputy's visit to one of their grids (by scan or report)."""
    if session.scalar(select(DeputyGrid.grid_id).where(DeputyGrid.deputy_id == deputy_id,
                                                       DeputyGrid.grid_id == grid.id)) is None:
        raise RotaError(FORBIDDEN, "not_your_grid", "只能登记本人联系网格的走访")
    if method == "report" and not ((note or "").strip() or photo_media_id):
        raise RotaError(INVALID, "evidence_required", "请填写走访情况或上传照片", "note")
    visit = GridVisit(deputy_id=deputy_id, grid_id=grid.id, visited_at=now or utcnow(), method=method,
                      note=(note or "").strip()[:1000] or None, photo_media_id=photo_media_id)
    session.add(visit)
    session.flush()
    return visit


def report_visit(session: Session, principal: Principal, grid_code: str, note: str | None,
                 photo_media_id: str | None, now: datetime | None = None) -> GridVisit:
    if principal.role != DEPUTY:
        raise RotaError(FORBIDDEN, "forbidden", "只有代表可以登记走访")
    grid = session.scalar(select(Grid).where(Grid.code == grid_code))
    if grid is None:
        raise RotaError(INVALID, "unknown_grid", "网格不存在", "grid_code")
    return record_visit(session, principal.account.deputy_id, grid, method="report", note=note,
                        photo_media_id=photo_media_id, now=now)


def scan_grid(session: Session, resident: Resident, grid: Grid, now: datetime | None = None) -> str | None:
    """A deputy scanning one of their grids' codes records a visit; None for anyone else."""
    account = account_of_resident(session, resident)
    if account is None or account.role != DEPUTY:
        return None
    try:
        record_visit(session, account.deputy_id, grid, method="scan", now=now)
    except RotaError:
        return None  # not their grid: the ordinary answer to a scan
    week = week_of(local_day(now or utcnow()))
    count = _visit_counts(session, week, [account.deputy_id]).get(account.deputy_id, 0)
    return f"已记录走访：{grid.name}。本周已走访网格 {count} 次。"


def week_of(day: date) -> tuple[date, date]:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def _visit_counts(session: Session, week: tuple[date, date], deputy_ids: list[int]) -> dict[int, int]:
    start = datetime.combine(week[0], time(0), tzinfo=CHINA_TZ)
    end = datetime.combine(week[1] + timedelta(days=1), time(0), tzinfo=CHINA_TZ)
    return dict(session.execute(select(GridVisit.deputy_id, func.count()).where(
        GridVisit.deputy_id.in_(deputy_ids), GridVisit.visited_at >= start, GridVisit.visited_at < end)
        .group_by(GridVisit.deputy_id)).all())


def visits_for(session: Session, principal: Principal, limit: int = 200) -> list[GridVisit]:
    query = select(GridVisit).order_by(GridVisit.visited_at.desc()).limit(limit)
    if principal.role == DEPUTY:
        query = query.where(GridVisit.deputy_id == principal.account.deputy_id)
    elif principal.role == STAFF:
        if principal.account.station_id is not None:
            query = query.where(GridVisit.deputy_id.in_(accounts.station_deputy_ids(principal.account.station_id)))
    else:
        raise RotaError(FORBIDDEN, "forbidden", "无权查看走访记录")
    return list(session.scalars(query))


def shortfall(session: Session, principal: Principal, day: date | None = None) -> tuple[tuple[date, date], list[Shortfall]]:
    """Deputies in the staff member's scope with fewer visits in the week of `day` than the minimum."""
    account = _staff(principal)
    week = week_of(day or local_day(utcnow()))
    # Only deputies with a grid of their own owe grid visits (a city deputy at an industry-chain
    # station has none to walk).
    query = select(Deputy).where(Deputy.id.in_(select(DeputyGrid.deputy_id))).order_by(Deputy.code)
    if account.station_id is not None:
        query = query.where(Deputy.id.in_(accounts.station_deputy_ids(account.station_id)))
    deputies = session.scalars(query).all()
    minimum = weekly_minimum(session, account.county_id)
    counts = _visit_counts(session, week, [d.id for d in deputies])
    return week, [Shortfall(d, counts.get(d.id, 0), minimum) for d in deputies if counts.get(d.id, 0) < minimum]
