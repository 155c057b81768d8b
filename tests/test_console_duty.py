"""The rota and 履职积分 pages of the office console over HTTP (Flask test client, real PostgreSQL):
rules created, changed and stopped; one-off 局长进站 shifts and cancellations; swaps decided;
check-ins, missed shifts and the walk-in matters of a shift; the points standard, ledgers, the
review chain step by step, adjustments, 公示 and its XLSX export. Every write is also tried without
its CSRF token, with bad input and by someone of another station (nothing changes), and one
browser test approves an activity through the chain and sees the deputy's total change."""
from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from liaison import demo_history
from liaison.case.models import Notice
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.intake import service as intake
from liaison.people import service as people
from liaison.people.models import Account, Department, Deputy, Station
from liaison.people.service import Principal
from liaison.points import service as points
from liaison.points.models import ActivityReport, PointsAdjustment, PointsEntry
from liaison.rota import lifecycle, timers
from liaison.rota import service as rota
from liaison.rota.models import DutyRule, DutyShift, ShiftAssignment, ShiftSwap
from tests.conftest import wait_for
from tests.console_fixtures import csrf_token, make_account, sign_in
from tests.test_console_browser import _shot, _wait_css, _wait_text, browser  # noqa: F401  (fixture)

CHAIN = [{"name": "联络站上报", "by": "station_staff"}, {"name": "代表工委复核", "by": "county_staff"},
         {"name": "主任会议确定", "by": "county_staff"}]


@pytest.fixture
def people_(app):
    made = {
        "county": make_account("staff", "县人大工委 王主任", login="county"),
        "county2": make_account("staff", "县人大工委 刘科长", login="county2"),
        "station1": make_account("staff", "城关镇联络站 小李", station="S001", login="station1"),
        "station2": make_account("staff", "青山乡 小赵", station="S002", login="station2"),
        "deputy1": make_account("deputy", "张建华", deputy="D001", login="deputy1"),
        "deputy3": make_account("deputy", "王德明", deputy="D003", login="deputy3"),
    }
    with db.session_scope() as session:
        department = session.scalar(select(Department).where(Department.code == "zhujian"))
        head, _ = people.create_account(session, "department", "住建局 周局长", department=department)
        made["head"] = head.public_id
    return made


def _client(app, login):
    client = app.test_client()
    assert sign_in(client, login).status_code == 303
    return client


def _token(client, path: str = "/console/rota") -> str:
    return csrf_token(client.get(path).text)


def _today() -> date:
    return utcnow().astimezone(CHINA_TZ).date()


def _count(model, *where) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _principal(session, login_name: str) -> Principal:
    account = session.scalar(select(Account).where(Account.name == login_name))
    return Principal(account.role, account=account)


RULE = {"rule-station": "S001", "rule-kind": "reception", "rule-weekday": "2", "rule-slots": "2",
        "rule-deputies": ["D001", "D002"], "rule-title": "代表周三见", "rule-start": "9:00", "rule-end": "11:30",
        "rule-holiday_policy": "next_working_day"}


def _rule_shifts(public_id: str, after: date) -> list[tuple[date, str, list[str]]]:
    with db.session_scope() as session:
        rule = session.scalar(select(DutyRule).where(DutyRule.public_id == public_id))
        shifts = session.scalars(select(DutyShift).where(DutyShift.rule_id == rule.id, DutyShift.day > after)
                                 .order_by(DutyShift.day)).all()
        return [(s.day, s.status, sorted(a.deputy.name for a in s.assignments if a.status == "on_duty"))
                for s in shifts]


# ---------------------------------------------------------------------------------------------- rota
def test_a_rule_is_planned_changed_and_stopped(app, people_):
    county, station2, deputy = _client(app, "county"), _client(app, "station2"), _client(app, "deputy1")
    token = _token(county, "/console/rota/rules")
    assert county.post("/console/rota/rules", data=RULE).status_code == 400  # no CSRF token
    for bad in ({"rule-start": "25:00"}, {"rule-end": "8:00"}, {"rule-weekday": "9"}, {"rule-slots": "0"},
                {"rule-deputies": ["D999"]}, {"rule-deputies": []}, {"rule-station": "SB01"}):
        answer = county.post("/console/rota/rules", data={**RULE, **bad, "csrf_token": token})
        assert 400 <= answer.status_code < 500 and "action-error" in answer.text, bad
    # Station staff of 青山乡 plan only their own station: 城关镇 is not a choice.
    other = station2.post("/console/rota/rules", data={**RULE, "csrf_token": _token(station2, "/console/rota/rules")})
    assert other.status_code == 422
    assert _count(DutyRule) == 0

    made = county.post("/console/rota/rules", data={**RULE, "csrf_token": token})
    assert made.status_code == 303, made.text[:400]
    rule_id = made.headers["Location"].rsplit("/", 1)[1]
    planned = _rule_shifts(rule_id, _today() - timedelta(days=1))
    assert planned and all(names == ["张建华", "李秀英"] for _, _, names in planned)
    assert {day.weekday() for day, _, _ in planned} <= {2, 3, 4}  # Wednesdays (a holiday moves one on)
    page = county.get("/console/rota").text
    assert "城关镇人大代表联络站" in page and "张建华" in page and "李秀英" in page and "代表周三见" in page
    assert "城关镇人大代表联络站" not in station2.get("/console/rota").text
    assert "代表周三见" in deputy.get("/console/rota").text  # a deputy's own shifts, read-only
    assert deputy.get("/console/rota/rules").status_code == 403
    assert county.get("/console/rota?weeks=99").status_code == 400
    assert county.get("/console/rota?station=SB01").status_code == 400

    # Another station's staff neither see nor change the rule.
    assert station2.get(f"/console/rota/rules/{rule_id}").status_code == 404
    edit = {"edit-weekday": "2", "edit-slots": "1", "edit-deputies": ["D001"], "edit-start": "9:00",
            "edit-end": "11:30", "edit-holiday_policy": "next_working_day", "edit-active": "y",
            "edit-title": "代表周三见"}
    assert station2.post(f"/console/rota/rules/{rule_id}",
                         data={**edit, "csrf_token": _token(station2)}).status_code == 404
    assert deputy.post(f"/console/rota/rules/{rule_id}", data={**edit, "csrf_token": _token(deputy)}).status_code == 403
    assert county.post(f"/console/rota/rules/{rule_id}", data=edit).status_code == 400
    assert county.post(f"/console/rota/rules/{rule_id}",
                       data={**edit, "edit-end": "7:00", "csrf_token": token}).status_code == 422
    assert _rule_shifts(rule_id, _today() - timedelta(days=1)) == planned

    # One deputy a shift from tomorrow on; the rule page shows the replanned shifts.
    changed = county.post(f"/console/rota/rules/{rule_id}", data={**edit, "csrf_token": token})
    assert changed.status_code == 303
    future = _rule_shifts(rule_id, _today())
    assert future and all(names == ["张建华"] for _, _, names in future)
    assert "重排" in county.get(changed.headers["Location"]).text
    # Stopped: the future shifts nobody acted on are withdrawn.
    stop = {k: v for k, v in edit.items() if k != "edit-active"}
    assert county.post(f"/console/rota/rules/{rule_id}", data={**stop, "csrf_token": token}).status_code == 303
    assert _rule_shifts(rule_id, _today()) == []
    assert "已停用" in county.get(f"/console/rota/rules/{rule_id}").text


def test_a_director_visit_is_arranged_and_a_shift_cancelled(app, people_):
    county, station1, station2 = _client(app, "county"), _client(app, "station1"), _client(app, "station2")
    day = (_today() + timedelta(days=7)).isoformat()
    shift = {"shift-station": "S001", "shift-kind": "director", "shift-day": day, "shift-start": "14:30",
             "shift-end": "17:00", "shift-heads": [people_["head"]], "shift-deputies": ["D001"],
             "shift-title": "局长面对面"}
    token = _token(station1)
    assert station1.post("/console/rota/shifts", data=shift).status_code == 400
    past = station1.post("/console/rota/shifts",
                         data={**shift, "shift-day": (_today() - timedelta(days=1)).isoformat(), "csrf_token": token})
    assert past.status_code == 422 and "过去" in past.text
    assert station2.post("/console/rota/shifts", data={**shift, "csrf_token": _token(station2)}).status_code == 422
    assert _count(DutyShift) == 0
    made = station1.post("/console/rota/shifts", data={**shift, "csrf_token": token})
    assert made.status_code == 303
    public_id = made.headers["Location"].rsplit("/", 1)[1]
    page = station1.get(f"/console/rota/shifts/{public_id}").text
    assert "局长面对面" in page and "住建局 周局长" in page and "局长进站" in page and "14:30" in page
    assert "局长面对面" in county.get("/console/rota").text

    assert station2.get(f"/console/rota/shifts/{public_id}").status_code == 404
    path = f"/console/rota/shifts/{public_id}/cancel"
    assert station2.post(path, data={"csrf_token": _token(station2), "cancel-reason": "停电"}).status_code == 404
    assert station1.post(path, data={"cancel-reason": "停电"}).status_code == 400
    assert station1.post(path, data={"csrf_token": token, "cancel-reason": ""}).status_code == 422
    with db.session_scope() as session:
        assert session.scalar(select(DutyShift.status).where(DutyShift.public_id == public_id)) == "planned"
    assert station1.post(path, data={"csrf_token": token, "cancel-reason": "联络站停电"}).status_code == 303
    with db.session_scope() as session:
        assert session.scalar(select(DutyShift.status).where(DutyShift.public_id == public_id)) == "cancelled"
        assert session.scalar(select(func.count()).select_from(Notice).where(Notice.text.contains("联络站停电"))) == 1
    assert station1.post(path, data={"csrf_token": token, "cancel-reason": "再取消"}).status_code == 409


def _swap_world() -> tuple[str, str]:
    """A rule at S001 with D001 and D002; D001 asks D004 to take their next shift."""
    with db.session_scope() as session:
        county = _principal(session, "县人大工委 王主任")
        rule = rota.create_rule(session, county, station_code="S001", weekday=(_today() + timedelta(days=2)).weekday(),
                                slots=2, deputy_codes=["D001", "D002"], title="代表周三见",
                                holiday_policy="next_working_day")
        shift = session.scalars(select(DutyShift).where(DutyShift.rule_id == rule.id, DutyShift.day > _today())
                                .order_by(DutyShift.day)).first()
        swap = rota.request_swap(session, _principal(session, "张建华"), shift, "D004", "外出开会")
        return shift.public_id, swap.public_id


def test_swaps_are_decided_by_the_stations_staff(app, people_):
    shift_id, swap_id = _swap_world()
    county, station2, deputy = _client(app, "county"), _client(app, "station2"), _client(app, "deputy1")
    page = county.get("/console/rota/swaps").text
    assert "外出开会" in page and "陈志强" in page and "待审批" in page
    assert "1 项换班待审批" in county.get("/console/rota").text
    assert "外出开会" not in station2.get("/console/rota/swaps").text
    assert "外出开会" in deputy.get("/console/rota/swaps").text  # their own request, read-only
    approve = f"/console/rota/swaps/{swap_id}/approve"
    assert station2.post(approve, data={"csrf_token": _token(station2)}).status_code == 404
    assert deputy.post(approve, data={"csrf_token": _token(deputy)}).status_code == 403
    assert county.post(approve, data={}).status_code == 400
    assert county.post(approve, data={"csrf_token": _token(county), "decide-note": "x" * 201}).status_code == 422
    assert _count(ShiftSwap, ShiftSwap.status == "requested") == 1
    assert county.post(approve, data={"csrf_token": _token(county), "decide-note": "同意"}).status_code == 303
    with db.session_scope() as session:
        shift = session.scalar(select(DutyShift).where(DutyShift.public_id == shift_id))
        assert sorted(rota.on_duty_names(shift)) == ["李秀英", "陈志强"]
    assert "已同意" in county.get("/console/rota/swaps").text
    assert "已换班" in county.get(f"/console/rota/shifts/{shift_id}").text
    assert county.post(f"/console/rota/swaps/{swap_id}/reject", data={"csrf_token": _token(county)}).status_code == 409


def test_check_ins_missed_shifts_and_the_matters_of_a_shift(app, people_):
    """A shift that began two hours ago: 张建华 checked in, 李秀英 did not; it ended and the sweep
    recorded the miss. A matter received on it is listed on the shift's page."""
    now = utcnow()
    with db.session_scope() as session:
        station = session.scalar(select(Station).where(Station.code == "S001"))
        ids = dict(session.execute(select(Deputy.code, Deputy.id)).all())
        day = now.astimezone(CHINA_TZ).date()
        shift = DutyShift(station_id=station.id, kind="reception", title="代表周三见", day=day, planned_for=day,
                          starts_at=now - timedelta(hours=2), ends_at=now - timedelta(minutes=1), status="planned")
        session.add(shift)
        session.flush()
        kept = ShiftAssignment(shift_id=shift.id, deputy_id=ids["D001"], status="on_duty")
        session.add_all([kept, ShiftAssignment(shift_id=shift.id, deputy_id=ids["D002"], status="on_duty")])
        session.flush()
        lifecycle.move(kept, "check_in")
        kept.checked_in_at, kept.check_in_via = now - timedelta(hours=2), "scan"
        account = session.scalar(select(Account).where(Account.name == "张建华"))
        case = intake.register_walk_in(session, account, text="幸福里小区门口的路灯坏了", resident_name="赵大爷",
                                       place_kind="reception", contact_consent=True, shift_id=shift.id)
        assert timers.close_ended(session, now) == 1
        shift_id, number = shift.public_id, case.number
    station1, station2 = _client(app, "station1"), _client(app, "station2")
    page = station1.get(f"/console/rota/shifts/{shift_id}").text
    assert "已值班" in page and "已签到" in page and "缺勤" in page and "扫码" in page
    assert number in page and "幸福里小区门口的路灯坏了" in page
    attendance = station1.get("/console/rota/attendance?missed=1").text
    assert "李秀英（缺勤）" in attendance and "张建华（已签到" in attendance
    assert station2.get(f"/console/rota/shifts/{shift_id}").status_code == 404
    assert "李秀英（缺勤）" not in station2.get("/console/rota/attendance").text
    assert station1.get("/console/rota/attendance?weeks=x").status_code == 400


# ---------------------------------------------------------------------------------------------- points
def _points_world() -> tuple[str, str]:
    """The year's standard with a three-step chain; D001 reports a meeting and a training."""
    year = _today().year
    with db.session_scope() as session:
        county = _principal(session, "县人大工委 王主任")
        points.publish_standard(session, county, year, title=f"{year}年度履职积分", items=points.DEFAULT_ITEMS,
                                review_chain=CHAIN)
        zhang = _principal(session, "张建华")
        meeting = points.report_activity(session, zhang, item_code="meeting", title="常委会会议", happened_on=_today(),
                                         evidence="列席并发言")
        training = points.report_activity(session, zhang, item_code="training", title="履职培训",
                                          happened_on=_today(), evidence="参加培训")
        return meeting.public_id, training.public_id


def _total(code: str) -> Decimal:
    with db.session_scope() as session:
        deputy = session.scalar(select(Deputy).where(Deputy.code == code))
        return session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
            PointsEntry.deputy_id == deputy.id, PointsEntry.year == _today().year))


def _status(public_id: str) -> tuple[str, int]:
    with db.session_scope() as session:
        report = session.scalar(select(ActivityReport).where(ActivityReport.public_id == public_id))
        return report.status, report.step


def test_an_activity_goes_up_the_review_chain_step_by_step(app, people_):
    meeting, training = _points_world()
    county, county2 = _client(app, "county"), _client(app, "county2")
    station1, station2, deputy = _client(app, "station1"), _client(app, "station2"), _client(app, "deputy1")
    listed = station1.get("/console/points/activities?status=pending").text
    assert "常委会会议" in listed and "联络站上报" in listed
    assert "常委会会议" not in station2.get("/console/points/activities").text
    assert station1.get("/console/points/activities?status=bogus").status_code == 400
    approve, reject = f"/console/points/activities/{meeting}/approve", f"/console/points/activities/{meeting}/reject"
    assert station2.get(f"/console/points/activities/{meeting}").status_code == 404
    assert station2.post(approve, data={"csrf_token": _token(station2)}).status_code == 404
    assert deputy.post(approve, data={"csrf_token": _token(deputy)}).status_code == 403
    assert station1.post(approve, data={}).status_code == 400
    assert _status(meeting) == ("pending", 0)

    assert station1.post(approve, data={"csrf_token": _token(station1), "review-note": "属实"}).status_code == 303
    assert _status(meeting) == ("pending", 1)
    page = station1.get(f"/console/points/activities/{meeting}").text
    assert "由县级工委审核" in page and 'id="form-approve"' not in page
    assert station1.post(approve, data={"csrf_token": _token(station1)}).status_code == 403
    assert county.post(approve, data={"csrf_token": _token(county)}).status_code == 303
    assert "其他人审核" in county.get(f"/console/points/activities/{meeting}").text
    assert county.post(approve, data={"csrf_token": _token(county)}).status_code == 409  # one person, one step
    assert _status(meeting) == ("pending", 2) and _total("D001") == 0
    assert county2.post(approve, data={"csrf_token": _token(county2)}).status_code == 303
    assert _status(meeting) == ("approved", 2) and _total("D001") == Decimal("3.00")
    done = county2.get(f"/console/points/activities/{meeting}").text
    assert "已认定" in done and "城关镇联络站 小李" in done and "属实" in done and "3.0 分" in done
    assert county2.post(reject, data={"csrf_token": _token(county2), "review-note": "晚了"}).status_code == 409

    # A rejection says why, and never counts.
    path = f"/console/points/activities/{training}/reject"
    assert station1.post(path, data={"csrf_token": _token(station1)}).status_code == 422
    assert _status(training) == ("pending", 0)
    assert station1.post(path, data={"csrf_token": _token(station1), "review-note": "佐证不足"}).status_code == 303
    assert _status(training)[0] == "rejected" and _total("D001") == Decimal("3.00")


def test_ledgers_adjustments_publication_and_export(app, people_):
    meeting, _ = _points_world()
    year = _today().year
    with db.session_scope() as session:
        report = session.scalar(select(ActivityReport).where(ActivityReport.public_id == meeting))
        for reviewer in ("城关镇联络站 小李", "县人大工委 王主任", "县人大工委 刘科长"):
            points.review(session, _principal(session, reviewer), report, True)
    county, station1, station2 = _client(app, "county"), _client(app, "station1"), _client(app, "station2")
    deputy = _client(app, "deputy1")

    standard = county.get(f"/console/points/standard?year={year}").text
    assert "参加会议" in standard and "扣分项" in standard and "值班缺勤" in standard and "主任会议确定" in standard
    assert "第 1 版" in standard and "优秀" in standard
    assert county.get(f"/console/points/standard?year={year}&version=9").status_code == 404
    assert county.get("/console/points/standard?year=abc").status_code == 400
    assert "尚未制定" in county.get(f"/console/points/standard?year={year + 1}").text

    ledger = county.get(f"/console/points/deputies/D001?year={year}").text
    assert "3.0" in ledger and "参加人代会、常委会及代表小组会议" in ledger and "履职活动申报" in ledger
    assert station1.get("/console/points/deputies/D001").status_code == 200
    assert station2.get("/console/points/deputies/D001").status_code == 404
    assert deputy.get("/console/points/deputies/D001").status_code == 200
    assert deputy.get("/console/points/deputies/D002").status_code == 404
    assert county.get("/console/points/deputies/D999").status_code == 404

    adjust = f"/console/points/deputies/D001/adjust?year={year}"
    body = {"adjust-points": "-1", "adjust-reason": "会议迟到"}
    assert county.post(adjust, data=body).status_code == 400
    for bad in ({"adjust-points": "abc"}, {"adjust-points": "0"}, {"adjust-points": "500"}, {"adjust-reason": ""}):
        assert county.post(adjust, data={**body, **bad, "csrf_token": _token(county)}).status_code == 422, bad
    assert station1.post(adjust, data={**body, "csrf_token": _token(station1)}).status_code == 403
    assert station2.post(adjust, data={**body, "csrf_token": _token(station2)}).status_code == 404
    assert deputy.post("/console/points/deputies/D001/adjust",
                       data={**body, "csrf_token": _token(deputy)}).status_code == 403
    assert _count(PointsAdjustment) == 0
    assert county.post(adjust, data={**body, "csrf_token": _token(county)}).status_code == 303
    assert _total("D001") == Decimal("2.00")
    ledger = county.get(f"/console/points/deputies/D001?year={year}").text
    assert "会议迟到" in ledger and "县人大工委 王主任" in ledger and "积分调整" in ledger

    board = county.get(f"/console/points?year={year}").text
    assert 'data-deputy="D001"' in board and "不称职" in board and "张建华" in board
    assert 'data-deputy="D001"' not in station2.get("/console/points").text
    assert county.get("/console/points?year=1").status_code == 400
    assert "尚未制定" in county.get(f"/console/points?year={year + 1}").text

    exported = county.get(f"/console/points/export.xlsx?year={year}")
    assert exported.status_code == 200 and "filename*=UTF-8''" in exported.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(exported.data))
    ranked = list(book.worksheets[0].iter_rows(values_only=True))
    assert ranked[0][:4] == ("排名", "代表编码", "姓名", "联络站") and ranked[0][-2:] == ("积分", "等次")
    assert ranked[1][1:3] == ("D001", "张建华") and ranked[1][-2:] == (2.0, "不称职")
    lines = list(book.worksheets[1].iter_rows(values_only=True))[1:]
    assert sorted((r[0], r[3]) for r in lines) == [("D001", -1.0), ("D001", 3.0)]
    theirs = load_workbook(io.BytesIO(station2.get(f"/console/points/export.xlsx?year={year}").data))
    assert [r[1] for r in list(theirs.worksheets[0].iter_rows(values_only=True))[1:]] == ["D003"]
    assert county.get("/console/points/export.xlsx?year=x").status_code == 400
    assert deputy.get("/console/points/export.xlsx").status_code == 403


# ---------------------------------------------------------------------------------------------- browser
@pytest.fixture
def chain_world(demo_county):
    """Three staff accounts with the demo password, the year's standard with a three-step chain and a
    meeting D001 reported (waiting for its first step)."""
    from liaison.console import auth

    with db.session_scope() as session:
        station = session.scalar(select(Station).where(Station.code == "S001"))
        made = {}
        for login, name, at in (("b_station", "城关镇联络站 小李", station), ("b_county", "县人大工委 王主任", None),
                                ("b_county2", "县人大工委 刘科长", None)):
            account, _ = people.create_account(session, "staff", name, station=at)
            _credential, token = auth.issue_password_link(session, account, login=login)
            auth.redeem_password_link(session, token, demo_history.DEMO_PASSWORD)
            made[login] = account
        deputy = session.scalar(select(Deputy).where(Deputy.code == "D001"))
        zhang, _ = people.create_account(session, "deputy", "张建华", deputy=deputy)
        year = _today().year
        points.publish_standard(session, Principal("staff", account=made["b_county"]), year, title=f"{year}年度履职积分",
                                items=points.DEFAULT_ITEMS, review_chain=CHAIN)
        report = points.report_activity(session, Principal("deputy", account=zhang), item_code="meeting",
                                        title="常委会会议", happened_on=_today(), evidence="列席并发言")
        return report.public_id


def _sign_in(chrome, base: str, login: str) -> None:
    from selenium.webdriver.common.by import By

    chrome.delete_all_cookies()
    chrome.get(base + "/console/login")
    _wait_css(chrome, "#sign-in")
    chrome.find_element(By.NAME, "login").send_keys(login)
    chrome.find_element(By.NAME, "password").send_keys(demo_history.DEMO_PASSWORD)
    chrome.find_element(By.ID, "sign-in").click()
    _wait_css(chrome, "#whoami")


def test_an_activity_is_approved_through_the_chain_in_a_browser(browser, live_server, chain_world):  # noqa: F811
    from selenium.webdriver.common.by import By

    base = live_server.url
    _sign_in(browser, base, "b_county")
    browser.find_element(By.LINK_TEXT, "履职积分").click()
    _wait_css(browser, "#standings")
    assert browser.find_element(By.CSS_SELECTOR, 'tr[data-deputy="D001"] td.total').text == "0.0"
    _shot(browser, "11-points")
    for step, login in enumerate(("b_station", "b_county", "b_county2")):
        _sign_in(browser, base, login)
        browser.get(base + "/console/points/activities?status=pending")
        _wait_css(browser, "a.activity-link").click()
        _wait_css(browser, "#form-approve")
        browser.find_element(By.ID, "approve-note").send_keys(f"第{step + 1}环节同意")
        browser.find_element(By.ID, "approve").click()
        _wait_text(browser, ".flash.info", "已认定并计入积分" if step == 2 else "本环节已通过")
    _wait_text(browser, "#activity-status", "已认定")
    _shot(browser, "12-activity")
    browser.find_element(By.ID, "deputy-total").click()
    _wait_text(browser, "#ledger-total", "3.0")
    browser.get(base + "/console/points")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'tr[data-deputy="D001"] td.total').text == "3.0",
             timeout=30, message="the new total on the 公示")
    with db.session_scope() as session:
        assert session.scalar(select(ActivityReport.status).where(ActivityReport.public_id == chain_world)) == "approved"
