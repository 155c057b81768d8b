"""The duty rota through the whole service: staff plan 代表周三见 in the mini-program API, residents ask
"周三见" in the chat and get their own station's deputies, the grids' three-days-ahead notice and the
deputies' day-before reminder reach the fake WeChat once each (real HTTP, PostgreSQL, Redis and an RQ
worker), and a deputy on duty checks in by scanning the station's code."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ, is_working_day
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident
from liaison.points import service as points
from liaison.rota import timers
from liaison.rota.models import DutyShift, ShiftAssignment
from tests.api_fixtures import bootstrap_staff, live_http, make_account
from tests.conftest import wait_for

CUSTOM_SEND, MINI_SEND = "/cgi-bin/message/custom/send", "/cgi-bin/message/subscribe/send"


def _sent(fake, path, openid, needle):
    return [c for c in fake.calls(path) if c.get("errcode") in (0, None) and c["json"]
            and c["json"].get("touser") == openid and needle in str(c["json"])]


def _next_working_weekday(weekday: int, after: date) -> date:
    day = after + timedelta(days=1)
    while day.weekday() != weekday or not is_working_day(day):
        day += timedelta(days=1)
    return day


def test_residents_ask_who_is_on_duty_and_are_told_three_days_ahead_once(live_server, fake_wechat, simulator,
                                                                          rq_worker):
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, "o_rota_staff")
    zhang = make_account(staff, fake_wechat, "o_rota_d1", role="deputy", name="张建华", deputy_code="D001")
    make_account(staff, fake_wechat, "o_rota_d2", role="deputy", name="李秀英", deputy_code="D002")
    assert zhang.post("/api/consents", {"results": {"MP_HANDLER_TODO": "accept"}}).status_code == 200
    today = utcnow().astimezone(CHINA_TZ).date()
    day = _next_working_weekday(today.weekday(), today + timedelta(days=3))  # safely more than 3 days ahead
    rule = staff.post("/api/duty-rules", {"station_code": "S001", "weekday": day.weekday(), "slots": 2,
                                          "deputy_codes": ["D001", "D002"], "title": "代表周三见"})
    assert rule.status_code == 201, rule.text
    assert staff.post("/api/duty-rules", {"station_code": "S001", "weekday": 9, "slots": 2,
                                          "deputy_codes": ["D001"]}).status_code == 422
    shifts = zhang.get("/api/shifts").json()["items"]
    assert day.isoformat() in [s["day"] for s in shifts]

    # A resident of G001 (城关镇 station) and one of G003 (青山乡: no rota) ask in the chat.
    simulator.send_event("o_rota_res1", "subscribe", event_key="qrscene_grid:G001")
    simulator.send_event("o_rota_res3", "subscribe", event_key="qrscene_grid:G003")
    answer = simulator.send_text("o_rota_res1", "周三见").content
    assert "城关镇人大代表联络站" in answer and "张建华" in answer and "李秀英" in answer, answer
    assert "王德明" not in answer
    assert "暂无值班安排" in simulator.send_text("o_rota_res3", "今天谁值班").content
    # A question is not a case.
    assert "诉求已登记" not in answer

    with db.session_scope() as session:
        shift_id = session.scalar(select(DutyShift.id).where(DutyShift.day == day))
    notice_at = datetime.combine(day - timedelta(days=3), time(9, 30), tzinfo=CHINA_TZ)
    remind_at = datetime.combine(day - timedelta(days=1), time(9, 30), tzinfo=CHINA_TZ)
    for moment in (notice_at, notice_at + timedelta(hours=2), remind_at, remind_at + timedelta(hours=5)):
        with db.session_scope() as session:
            timers.run_due(session, moment)
    label = f"{day.month}月{day.day}日"
    wait_for(lambda: len(_sent(fake_wechat, CUSTOM_SEND, "o_rota_res1", label)) == 1, timeout=20,
             message="the grid notice")
    wait_for(lambda: len(_sent(fake_wechat, MINI_SEND, "o_rota_d1", "值班提醒")) == 1, timeout=20,
             message="the day-before reminder")
    def rows():
        with db.session_scope() as session:
            return session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.dedup_key.like(f"duty-%:{shift_id}:%")))

    before = rows()
    with db.session_scope() as session:  # one more sweep: nobody is told again
        timers.run_due(session, remind_at + timedelta(hours=6))
    assert rows() == before
    assert len(_sent(fake_wechat, CUSTOM_SEND, "o_rota_res1", label)) == 1
    assert len(_sent(fake_wechat, MINI_SEND, "o_rota_d1", "值班提醒")) == 1
    assert not _sent(fake_wechat, CUSTOM_SEND, "o_rota_res3", label)  # another station's resident

    # On the day, 张建华 scans the station's code in the official account: checked in (his WeChat user is
    # the same person in the mini-program, linked through the unionid).
    with db.session_scope() as session:
        me = session.scalar(select(Resident).where(Resident.mp_openid == "o_rota_d1"))
        if me is None:
            session.add(Resident(oa_openid="o_rota_d1_oa", mp_openid="o_rota_d1"))
        else:
            me.oa_openid = "o_rota_d1_oa"
        starts = session.get(DutyShift, shift_id).starts_at
    from liaison.core import clock

    clock.set_clock(lambda: starts + timedelta(minutes=10))
    try:
        reply = simulator.send_event("o_rota_d1_oa", "SCAN", event_key="station:S001").content
    finally:
        clock.set_clock(None)
    assert reply.startswith("签到成功"), reply
    with db.session_scope() as session:
        statuses = dict(session.execute(select(ShiftAssignment.deputy_id, ShiftAssignment.status)
                                        .where(ShiftAssignment.shift_id == shift_id)).all())
    assert sorted(statuses.values()) == ["checked_in", "on_duty"]


def test_matters_received_on_a_shift_are_its_walk_ins_and_count_for_a_kept_shift(live_server, fake_wechat):
    """A deputy on a running shift registers a walk-in: it is linked to the shift (no shift id given);
    staff name the shift explicitly; a stall matter is not the shift's; the shift's detail lists its
    matters; a shift not begun is refused; a points item on `shift_matter` counts them once kept."""
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, "o_rwi_staff")
    zhang = make_account(staff, fake_wechat, "o_rwi_d1", role="deputy", name="张建华", deputy_code="D001")
    make_account(staff, fake_wechat, "o_rwi_d2", role="deputy", name="李秀英", deputy_code="D002")
    today = utcnow().astimezone(CHINA_TZ).date()
    running = staff.post("/api/shifts", {"station_code": "S001", "day": today.isoformat(), "kind": "reception",
                                         "deputy_codes": ["D001"], "start_minute": 0, "end_minute": 1439})
    assert running.status_code == 201, running.text
    later = staff.post("/api/shifts", {"station_code": "S001", "day": (today + timedelta(days=8)).isoformat(),
                                       "kind": "reception", "deputy_codes": ["D001"]})
    shift_id, later_id = running.json()["id"], later.json()["id"]
    body = {"text": "幸福里小区5号楼楼道灯不亮，老人晚上上下楼不方便", "resident_name": "刘大妈",
            "contact_consent": True, "place_kind": "reception", "grid_code": "G001"}
    first = zhang.post("/api/walk-ins", body)
    assert first.status_code == 201, first.text
    stall = zhang.post("/api/walk-ins", {**body, "place_kind": "stall", "text": "菜市场门口路面坑洼积水"})
    assert stall.status_code == 201
    by_staff = staff.post("/api/walk-ins", {**body, "text": "城关小学门口早晚接送拥堵", "shift_id": shift_id})
    assert by_staff.status_code == 201, by_staff.text
    refused = zhang.post("/api/walk-ins", {**body, "text": "不应登记", "shift_id": later_id})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "shift_id", refused.text
    assert zhang.post("/api/walk-ins", {**body, "shift_id": "AAAAAAAAAAAAAAAA"}).status_code == 404

    detail = zhang.get(f"/api/shifts/{shift_id}")
    assert detail.status_code == 200, detail.text
    numbers = [m["number"] for m in detail.json()["matters"]]
    assert numbers == [first.json()["number"], by_staff.json()["number"]]
    assert detail.json()["matters"][0]["place_label"] == "代表周三见（联络站接待）"
    assert staff.get(f"/api/shifts/{later_id}").json()["matters"] == []

    # 履职积分: the county's standard counts matters received on kept shifts.
    with db.session_scope() as session:
        deputy_id = session.scalar(select(ShiftAssignment.deputy_id).join(DutyShift).where(
            DutyShift.public_id == shift_id))
        before = points.collect_events(session, today.year, [deputy_id])[deputy_id].get("shift_matter", [])
        assert before == []  # not checked in: the shift is not kept
    assert zhang.post(f"/api/shifts/{shift_id}/check-in", {"station_code": "S001"}).status_code == 200
    with db.session_scope() as session:
        events = points.collect_events(session, today.year, [deputy_id])[deputy_id]["shift_matter"]
        assert len(events) == 1  # the deputy's own matter; staff's and the stall's are not theirs
