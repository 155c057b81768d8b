"""Months of made-up history for the demo county, so the office console shows real figures and charts
at once: a few hundred cases worked through the real case services (routing, acceptance, 派单,
办结, ratings, second rounds, 不予受理, 并单, some overdue), plus console accounts to sign in with.

Each step runs at its own moment on the domain clock, so deadlines, working-day durations and the
timeline are what the services would have written then. The messages those steps queued for
fictitious residents are dropped at the end: they were never to be sent.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from liaison.case import lifecycle, timers
from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case
from liaison.console import auth
from liaison.core import clock
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.core.workcalendar import CHINA_TZ, add_working_days, is_working_day
from liaison.messaging.models import OutboxMessage
from liaison.people import service as people
from liaison.people.models import Account, Department, Deputy, DeputyGrid, Grid, Resident, Station
from liaison.points import service as points
from liaison.rota import lifecycle as rota_lifecycle
from liaison.rota import service as rota
from liaison.rota import timers as rota_timers
from liaison.rota.models import DutyShift, ShiftAssignment

DEMO_PASSWORD = "demo-console-2026"
# (login, name, role, station code or None, deputy code or None)
DEMO_ACCOUNTS = [
    ("county", "县人大工委 值班员", people.STAFF, None, None),
    ("station1", "城关镇联络站 工作人员", people.STAFF, "S001", None),
    ("station2", "青山乡代表之家 工作人员", people.STAFF, "S002", None),
    ("deputy1", "张建华", people.DEPUTY, None, "D001"),
]
PLACES = {"G001": ["幸福里小区", "幸福里"], "G002": ["东关小区", "东关街"], "G003": ["青山村"]}
TEXTS = [
    "{p}3号楼门口的路灯坏了，晚上很黑", "{p}楼道里有人飞线充电，很危险", "{p}下水道堵塞，污水漫到路面",
    "{p}物业不作为，垃圾清运不及时", "{p}有人私搭乱建，占用消防通道", "{p}广场舞音响太吵，噪音扰民",
    "在{p}附近工地干活，老板拖欠工资三个月了", "{p}的农民工工资一直没有发放",
    "{p}门口的公交站牌倒了，希望尽快修复", "{p}路口红绿灯时间太短，老人过马路不安全",
    "{p}旁边的工厂晚上排放刺鼻气味", "{p}河道里有人倾倒垃圾，水很臭",
    "{p}附近的小学放学时段交通拥堵，希望增设护学岗", "孩子在{p}上幼儿园，收费不透明",
    "{p}卫生室经常没有医生值班", "{p}菜市场有商贩缺斤短两", "{p}超市卖过期食品，希望查处",
    "{p}加装电梯的事情一直没有进展", "{p}的井盖缺失，晚上走路危险",
]
SUMMARIES = ["已安排人员现场处理完毕", "已协调相关单位整改到位", "已约谈责任方，问题已解决",
             "已列入本月整改计划并完成", "已现场核实并答复群众"]


def seed_history(session: Session, *, cases_count: int = 320, months: int = 6, seed: int = 20260101,
                 now: datetime | None = None) -> int:
    """Seed console accounts and `cases_count` cases over the last `months` months (unless the
    database already holds cases). Returns the number of cases made."""
    if session.scalar(select(Case.id).limit(1)) is not None:
        return 0
    now = now or utcnow()
    staff = seed_console_accounts(session)
    rng = random.Random(seed)
    grids = {g.code: g for g in session.scalars(select(Grid))}
    if not grids:
        return 0
    departments = list(session.scalars(select(Department).order_by(Department.id)))
    lead = {link.grid_id: link.deputy_id for link in session.scalars(
        select(DeputyGrid).where(DeputyGrid.role == "lead"))}
    residents = []
    for index in range(max(cases_count // 3, 1)):
        grid = grids[sorted(grids)[index % len(grids)]]
        resident = Resident(oa_openid=f"o_demo_history_{index:04d}", grid_id=grid.id,
                            created_at=now - timedelta(days=months * 31))
        session.add(resident)
        residents.append(resident)
    session.flush()
    first_outbox = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    start = now - timedelta(days=months * 30)
    moments = sorted(_working_moment(rng, start, now - timedelta(hours=2)) for _ in range(cases_count))
    made = []
    try:
        for moment in moments:
            resident = rng.choice(residents)
            grid = session.get(Grid, resident.grid_id)
            text = rng.choice(TEXTS).format(p=rng.choice(PLACES.get(grid.code, [grid.name])))
            clock.set_clock(lambda m=moment: m)
            case = cases.open_case(session, resident, text, grid=grid)
            made.append(case)
            _work(session, rng, case, made, staff, departments, lead, now)
    finally:
        clock.set_clock(None)
    for case in made:
        timers.schedule(case, now)
    _duty_and_points(session, rng, start, now)
    # Messages to fictitious residents and accounts, written at past moments: never to be sent.
    session.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
    session.flush()
    return len(made)


# (station, weekday, people per shift, deputies): 代表周三见 at 城关镇, Friday reception at 青山乡.
DEMO_RULES = [("S001", 2, 2, ["D001", "D002"]), ("S002", 4, 1, ["D003"]), ("S001", 3, 1, ["D004", "D005"])]
DEMO_ACTIVITIES = [("D001", "meeting", "列席县人大常委会会议", True), ("D001", "research", "老旧小区改造调研", True),
                   ("D002", "training", "代表履职培训班", True), ("D002", "suggestion", "关于增设护学岗的建议", False),
                   ("D003", "meeting", "参加乡人代会", True), ("D003", "excellent_suggestion", "农村公路养护建议", True),
                   ("D004", "research", "园区企业用工情况调研", True), ("D005", "meeting", "列席市人大常委会会议", True)]


def _duty_and_points(session: Session, rng: random.Random, start: datetime, now: datetime) -> None:
    """The rota since `start` (most shifts kept, some missed), weekly grid visits, the year's points
    standard, offline activities through the review chain, and the ledger synced from all of it."""
    county = people.Principal(people.STAFF, account=session.scalar(
        select(Account).where(Account.role == people.STAFF, Account.station_id.is_(None)).order_by(Account.id)))
    start_day, today = start.astimezone(CHINA_TZ).date(), now.astimezone(CHINA_TZ).date()
    for station, weekday, slots, deputies in DEMO_RULES:
        rule = rota.create_rule(session, county, station_code=station, weekday=weekday, slots=slots,
                                deputy_codes=deputies, title={2: "代表周三见", 3: "企业服务日"}.get(weekday, "代表接待日"),
                                valid_from=start_day, now=now)
        rota.plan(session, rule, today + timedelta(days=rota.PLAN_AHEAD_DAYS), today=start_day)
    for assignment in session.scalars(select(ShiftAssignment).join(DutyShift).where(DutyShift.ends_at < now)):
        if rng.random() < 0.85:
            rota_lifecycle.move(assignment, "check_in")
            assignment.checked_in_at = assignment.shift.starts_at + timedelta(minutes=rng.randint(-20, 15))
            assignment.check_in_via = "scan"
    rota_timers.close_ended(session, now)
    links = session.execute(select(DeputyGrid.deputy_id, DeputyGrid.grid_id).where(DeputyGrid.role == "lead")).all()
    grids = {g.id: g for g in session.scalars(select(Grid))}
    week = start
    while week < now - timedelta(days=7):
        for deputy_id, grid_id in links:
            for _ in range(rng.choice((0, 1, 1, 1, 2))):
                rota.record_visit(session, deputy_id, grids[grid_id], method="scan",
                                  now=week + timedelta(days=rng.randint(0, 4), hours=rng.randint(1, 8)))
        week += timedelta(days=7)
    reviewers = [county] + [people.Principal(people.STAFF, account=people.create_account(session, people.STAFF, name)[0])
                            for name in ("县人大代表工委 复核员", "县人大常委会 主任会议秘书")]
    stations = {a.station_id: a for a in session.scalars(select(Account).where(
        Account.role == people.STAFF, Account.station_id.is_not(None)))}
    year = today.year
    points.publish_standard(session, county, year, title=f"{year}年度县人大代表履职积分标准", items=points.DEFAULT_ITEMS)
    for code, item, title, approve in DEMO_ACTIVITIES:
        deputy = session.scalar(select(Deputy).where(Deputy.code == code))
        account = session.scalar(select(Account).where(Account.deputy_id == deputy.id)) or \
            people.create_account(session, people.DEPUTY, deputy.name, deputy=deputy)[0]
        clock.set_clock(lambda: now - timedelta(days=20))
        try:
            report = points.report_activity(session, people.Principal(people.DEPUTY, account=account), item_code=item,
                                            title=title, happened_on=today - timedelta(days=rng.randint(25, 120)),
                                            evidence=f"{title}：签到表及现场照片")
        finally:
            clock.set_clock(None)
        chain = [people.Principal(people.STAFF, account=stations[deputy.station_id])] + reviewers
        for step, reviewer in enumerate(chain):
            last = step == len(chain) - 1
            points.review(session, reviewer, report, approve or not last,
                          note=None if approve or not last else "佐证材料不足，未予认定")
    points.sync(session, year)


def seed_console_accounts(session: Session) -> Actor:
    """The demo's console accounts (all with DEMO_PASSWORD); returns the county staff's actor."""
    county = None
    for login, name, role, station_code, deputy_code in DEMO_ACCOUNTS:
        station = (session.scalar(select(Station).where(Station.code == station_code))
                   if station_code else None)
        deputy = session.scalar(select(Deputy).where(Deputy.code == deputy_code)) if deputy_code else None
        account, _code = people.create_account(session, role, name, deputy=deputy, station=station)
        auth.issue_password_link(session, account, login=login)
        auth.set_password(session, account, DEMO_PASSWORD)
        if county is None:
            county = Actor(people.STAFF, account.id)
    return county


def _working_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A random moment between `start` and `end`, mostly in office hours on working days."""
    for _ in range(50):
        moment = start + (end - start) * rng.random()
        local = moment.astimezone(CHINA_TZ)
        if is_working_day(local.date()) and 8 <= local.hour < 20 or rng.random() < 0.08:
            return moment
    return moment


def _later(rng: random.Random, moment: datetime, max_working_days: float) -> datetime:
    days = int(rng.random() * max_working_days)
    base = add_working_days(moment, days) - timedelta(hours=rng.uniform(6, 14)) if days else moment
    return max(base, moment) + timedelta(minutes=rng.randint(20, 300))


def _work(session: Session, rng: random.Random, case: Case, made: list[Case], staff: Actor,
          departments: list[Department], lead: dict[int, int], now: datetime) -> None:
    """Take one fresh case as far as its age allows, the way the office works."""
    t = case.created_at

    def at(moment: datetime, step: Callable[[], object]) -> bool:
        nonlocal t
        if moment >= now:
            return False
        t = moment
        clock.set_clock(lambda m=moment: m)
        step()
        return True

    roll = rng.random()
    if roll < 0.04:
        at(t + timedelta(hours=2), lambda: cases.reject(session, case, staff, "不属于人大代表联络事项，请向12345热线反映"))
        return
    if roll < 0.07:
        # Only a case still open takes another in (`cases.merge`): one awaiting its rating is not final
        # but can no longer be merged into, and which cases are which depends on today's calendar.
        target = next((c for c in reversed(made[:-1]) if c.grid_id == case.grid_id
                       and c.status in lifecycle.OPEN_STATUSES), None)
        if target is not None and case.status in (Status.SUBMITTED, Status.ASSIGNED):
            at(t + timedelta(hours=1), lambda: cases.merge(session, case, target, staff, "同一问题，合并办理"))
            return
    if case.handler_kind not in ("deputy", "department"):
        deputy = session.get(Deputy, lead.get(case.grid_id) or session.scalar(select(Deputy.id).limit(1)))
        if not at(t + timedelta(hours=3), lambda: cases.reassign(session, case, staff, deputy=deputy,
                                                                  reason="按网格分派")):
            return
    for round_number in (1, 2):
        if not _one_round(session, rng, case, at, departments, lambda: t, first=round_number == 1):
            return
        if case.status != Status.REOPENED:
            return


def _one_round(session, rng, case, at, departments, current, *, first: bool) -> bool:
    """Accept, maybe 派单, close and rate one round; False when the story stops (too recent, open)."""
    def handler() -> Actor:
        return (Actor("department", case.department_id) if case.handler_kind == "department"
                else Actor("deputy", case.deputy_id))

    if not at(_later(rng, current(), 1.6), lambda: cases.accept(session, case, handler())):
        return False
    if first and case.handler_kind == "deputy" and rng.random() < 0.4 and departments:
        department = rng.choice(departments)
        if not at(_later(rng, current(), 1), lambda: cases.dispatch(session, case, handler(), department)):
            return False
        if not at(_later(rng, current(), 1.5), lambda: cases.accept(session, case, handler())):
            return False
    if rng.random() < 0.07:
        return False  # still being worked (overdue once its deadline passes)
    limit = max((case.deadline - current()).days, 1) if case.deadline else 7
    late = rng.random() < 0.18
    span = rng.uniform(limit * 1.1, limit * 1.8) if late else rng.uniform(0.1, limit * 0.9)
    close_at = current() + timedelta(days=span)
    if not at(close_at, lambda: cases.close(session, case, handler(), rng.choice(SUMMARIES))):
        return False
    resident = case.resident
    roll = rng.random()
    if roll < 0.08:
        return at(current() + timedelta(days=7, hours=1), lambda: cases.expire_rating(session, case))
    value = ("satisfied" if roll < 0.68 else "basically_satisfied" if roll < 0.86 or not first
             else "unsatisfied")
    return at(current() + timedelta(hours=rng.uniform(1, 60)),
              lambda: cases.rate(session, case, resident, value, channel="chat"))
