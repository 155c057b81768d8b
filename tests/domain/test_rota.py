"""The duty rota on PostgreSQL: a Wednesday rule across 国庆 2026 (7 October is a holiday, 10 October a
调休 working Saturday), swaps with staff approval, check-in by scanning the station's code, a missed
shift recorded by the sweep, the day-before reminder and the three-days-ahead notice written once."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from liaison.case.models import Notice
from liaison.core import clock
from liaison.core.errors import DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Account, Deputy, Grid, Resident, Station
from liaison.people.service import Principal
from liaison.rota import lifecycle, timers
from liaison.rota import service as rota
from liaison.rota.models import DutyShift, GridVisit, ShiftAssignment

MONDAY = datetime(2026, 9, 28, 8, 0, tzinfo=CHINA_TZ)


@pytest.fixture
def now():
    moment = {"at": MONDAY}
    clock.set_clock(lambda: moment["at"])
    yield moment
    clock.set_clock(None)


def _staff(session, station: str | None = None) -> Principal:
    account = Account(role="staff", name="工委", active=True,
                      station_id=session.scalar(select(Station.id).where(Station.code == station)) if station else None)
    session.add(account)
    session.flush()
    return Principal("staff", account=account)


def _deputy_account(session, code: str, openid: str) -> Account:
    deputy = session.scalar(select(Deputy).where(Deputy.code == code))
    account = Account(role="deputy", name=deputy.name, deputy_id=deputy.id, mp_openid=openid, active=True)
    session.add(account)
    session.flush()
    return account


def _wednesday_rule(session, staff, **extra):
    return rota.create_rule(session, staff, station_code="S001", weekday=2, slots=2,
                            deputy_codes=["D001", "D002"], title="代表周三见", valid_from=date(2026, 9, 28),
                            now=MONDAY, **extra)


def _days(session, rule):
    return [(s.planned_for, s.day) for s in session.scalars(
        select(DutyShift).where(DutyShift.rule_id == rule.id).order_by(DutyShift.planned_for))]


def test_a_wednesday_rule_moves_past_national_day_and_opens_on_the_makeup_saturday(db_session, now):
    staff = _staff(db_session)
    moved = _wednesday_rule(db_session, staff, on_makeup_days=True)
    days = _days(db_session, moved)
    assert (date(2026, 9, 30), date(2026, 9, 30)) in days
    assert (date(2026, 10, 7), date(2026, 10, 8)) in days  # Wednesday 7 October is 国庆: moved to the 8th
    assert (date(2026, 10, 10), date(2026, 10, 10)) in days  # the 调休 Saturday is a working day
    assert (date(2026, 10, 14), date(2026, 10, 14)) in days
    assert not any(day.weekday() == 6 for _p, day in days)  # never an ordinary weekend day
    skipping = _wednesday_rule(db_session, staff, holiday_policy="skip")
    assert date(2026, 10, 7) not in [p for p, _d in _days(db_session, skipping)]
    assert [p for p, _d in _days(db_session, skipping)][:2] == [date(2026, 9, 30), date(2026, 10, 14)]
    # Planning again adds nothing; a cancelled shift is not planned again.
    shift = db_session.scalar(select(DutyShift).where(DutyShift.rule_id == moved.id,
                                                      DutyShift.planned_for == date(2026, 10, 14)))
    rota.cancel_shift(db_session, staff, shift, "联络站装修")
    before = len(days)
    assert rota.plan_all(db_session, MONDAY) >= 0
    assert len(_days(db_session, moved)) == before and shift.status == lifecycle.CANCELLED
    # Two deputies each shift, taken in turn from the pool of two: both every time here.
    first = db_session.scalar(select(DutyShift).where(DutyShift.rule_id == moved.id).order_by(DutyShift.day))
    assert sorted(rota.on_duty_names(first)) == ["张建华", "李秀英"]


def test_station_staff_plan_only_their_station(db_session, now):
    other = _staff(db_session, "S002")
    with pytest.raises(DomainError) as refused:
        _wednesday_rule(db_session, other)
    assert refused.value.kind == "not_found"


def test_the_chat_answers_with_the_deputies_on_duty_at_the_residents_station(db_session, now):
    staff = _staff(db_session)
    _wednesday_rule(db_session, staff)
    g001 = db_session.scalar(select(Grid).where(Grid.code == "G001"))
    resident = Resident(oa_openid="o_rota_resident", grid_id=g001.id)
    db_session.add(resident)
    db_session.flush()
    assert rota.is_duty_question("周三见") and rota.is_duty_question("今天谁值班？")
    assert not rota.is_duty_question("幸福里小区路灯坏了，今天谁值班能来看看吗，已经好几天了")
    answer = rota.duty_answer(db_session, resident, MONDAY)
    assert "城关镇人大代表联络站" in answer and "9月30日（周三）" in answer
    assert "张建华" in answer and "李秀英" in answer and "王德明" not in answer


def test_a_swap_needs_staff_approval_and_the_substitute_checks_in(db_session, now):
    staff = _staff(db_session)
    rota.create_rule(db_session, staff, station_code="S001", weekday=2, slots=1, deputy_codes=["D001"],
                     valid_from=date(2026, 9, 28), now=MONDAY)
    zhang = _deputy_account(db_session, "D001", "mp_zhang")
    wang = _deputy_account(db_session, "D003", "mp_wang")
    shift = db_session.scalar(select(DutyShift).where(DutyShift.day == date(2026, 9, 30)))
    swap = rota.request_swap(db_session, Principal("deputy", account=zhang), shift, "D003", "外出开会")
    assert rota.on_duty_names(shift) == ["张建华"]  # nothing changes before staff decide
    rota.decide_swap(db_session, staff, swap, True, now=MONDAY)
    assert rota.on_duty_names(shift) == ["王德明"] and swap.status == lifecycle.APPROVED
    with pytest.raises(DomainError):
        rota.decide_swap(db_session, staff, swap, False)  # decided once
    # The substitute scans the station's code on the morning of the shift: checked in.
    scanner = Resident(oa_openid="o_wang", mp_openid="mp_wang")
    db_session.add(scanner)
    station = db_session.scalar(select(Station).where(Station.code == "S001"))
    now["at"] = datetime(2026, 9, 30, 8, 40, tzinfo=CHINA_TZ)
    reply = rota.scan_station(db_session, scanner, station)
    assert reply.startswith("签到成功")
    db_session.refresh(shift)
    assert {a.deputy_id: a.status for a in shift.assignments} == {
        zhang.deputy_id: lifecycle.SWAPPED, wang.deputy_id: lifecycle.CHECKED_IN}
    timers.close_ended(db_session, datetime(2026, 9, 30, 12, 0, tzinfo=CHINA_TZ))
    assert shift.status == lifecycle.KEPT


def test_nobody_checked_in_is_a_missed_shift(db_session, now):
    staff = _staff(db_session)
    _wednesday_rule(db_session, staff)
    _deputy_account(db_session, "D001", "mp_zhang2")
    shift = db_session.scalar(select(DutyShift).where(DutyShift.day == date(2026, 9, 30)))
    # Scanning on the wrong day checks nobody in.
    scanner = Resident(oa_openid="o_zhang2", mp_openid="mp_zhang2")
    db_session.add(scanner)
    assert "没有值班安排" in rota.scan_station(db_session, scanner, shift.station)
    timers.close_ended(db_session, datetime(2026, 9, 30, 11, 0, tzinfo=CHINA_TZ))  # still on
    assert shift.status == lifecycle.PLANNED
    timers.run_due(db_session, datetime(2026, 9, 30, 11, 31, tzinfo=CHINA_TZ))
    assert shift.status == lifecycle.MISSED
    assert {a.status for a in shift.assignments} == {lifecycle.MISSED}


def test_the_reminder_and_the_grid_notice_are_written_once(db_session, now):
    staff = _staff(db_session)
    _wednesday_rule(db_session, staff)
    _deputy_account(db_session, "D001", "mp_zhang3")
    grids = {g.code: g.id for g in db_session.scalars(select(Grid))}
    db_session.add_all([Resident(oa_openid="o_g1", grid_id=grids["G001"]),
                        Resident(oa_openid="o_g2", grid_id=grids["G002"]),
                        Resident(oa_openid="o_g3", grid_id=grids["G003"])])  # G003 is S002's grid
    db_session.flush()
    shift = db_session.scalar(select(DutyShift).where(DutyShift.day == date(2026, 10, 14)))

    def rows(prefix):
        return db_session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.dedup_key.like(f"{prefix}:{shift.id}:%")))

    timers.run_due(db_session, datetime(2026, 10, 11, 8, 59, tzinfo=CHINA_TZ))
    assert rows("duty-notice") == 0
    for hour in (9, 10, 15):  # three days ahead: the residents of G001 and G002, once
        timers.run_due(db_session, datetime(2026, 10, 11, hour, 0, tzinfo=CHINA_TZ))
    assert rows("duty-notice") == 2
    text = db_session.scalar(select(OutboxMessage.payload).where(
        OutboxMessage.dedup_key.like(f"duty-notice:{shift.id}:%")).limit(1))["text"]
    assert "10月14日（周三）" in text and "张建华" in text
    assert rows("duty-remind") == 0
    for hour in (9, 18):  # the day before: each deputy on duty, once
        timers.run_due(db_session, datetime(2026, 10, 13, hour, 0, tzinfo=CHINA_TZ))
    reminders = db_session.scalars(select(Notice).where(Notice.dedup_key.like(f"duty-remind:{shift.id}:%"))).all()
    assert sorted(n.deputy_id for n in reminders) == sorted(
        a.deputy_id for a in db_session.scalars(select(ShiftAssignment).where(ShiftAssignment.shift_id == shift.id)))
    assert rows("duty-remind") == 1  # one push: only 张建华 has a bound account


def test_grid_visits_and_who_fell_short(db_session, now):
    staff = _staff(db_session)
    zhang = _deputy_account(db_session, "D001", "mp_zhang4")
    g001 = db_session.scalar(select(Grid).where(Grid.code == "G001"))
    g003 = db_session.scalar(select(Grid).where(Grid.code == "G003"))
    scanner = Resident(oa_openid="o_zhang4", mp_openid="mp_zhang4")
    db_session.add(scanner)
    assert "本周已走访网格 1 次" in rota.scan_grid(db_session, scanner, g001)
    assert rota.scan_grid(db_session, scanner, g003) is None  # not his grid: no visit
    with pytest.raises(DomainError):
        rota.report_visit(db_session, Principal("deputy", account=zhang), "G001", "", None)
    week, short = rota.shortfall(db_session, staff, MONDAY.date())
    assert week == (date(2026, 9, 28), date(2026, 10, 4))
    # D004 leads the enterprise grid and did not visit it; D005 has no grid and owes no visits.
    assert sorted(s.deputy.code for s in short) == ["D002", "D003", "D004"]
    assert db_session.scalar(select(func.count()).select_from(GridVisit)) == 1
    # Next week everyone starts again.
    _week, short = rota.shortfall(db_session, staff, MONDAY.date() + timedelta(days=7))
    assert len(short) == 4  # every deputy with a grid
