"""The deputy at the centre (issue 15), over real HTTP, PostgreSQL, Redis, an RQ worker process, the
simulator and the fake WeChat API: a responsible deputy on every case for its whole life."""
from __future__ import annotations

import base64
import io
import re
from datetime import timedelta

import zxingcpp
from pypdf import PdfReader
from sqlalchemy import select

from liaison.case import service as cases
from liaison.case import sweep as timer_sweep
from liaison.case import timers
from liaison.case.models import Notice, Rating
from liaison.core import clock as domain_clock
from liaison.core import db
from liaison.core.types import Actor
from liaison.intake.models import ReturnVisit
from liaison.people.models import Resident
from liaison.tenancy.models import County
from tests.api_fixtures import bootstrap_staff, live_http, make_account
from tests.conftest import wait_for

MINI_SEND = "/cgi-bin/message/subscribe/send"
CUSTOM_SEND = "/cgi-bin/message/custom/send"
NUMBER = re.compile(r"\d{4}-\d{6}")
WAGES = "公司拖欠我们工资三个月了，老板一直不露面"


def set_flow(flow: str) -> None:
    with db.session_scope() as session:
        county = session.get(County, 1)
        county.settings = {**(county.settings or {}), "case_flow": flow}


def pushes_to(fake, openid):
    return [c["json"] for c in fake.calls(MINI_SEND)
            if c.get("errcode") in (0, None) and c["json"] and c["json"].get("touser") == openid]


def people(live_server, fake_wechat, tag):
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, f"o_mp_{tag}_staff")
    deputy = make_account(staff, fake_wechat, f"o_mp_{tag}_deputy", role="deputy", name="张建华",
                          deputy_code="D001")
    department = make_account(staff, fake_wechat, f"o_mp_{tag}_dept", role="department",
                              name="人社局 王科长", department_code="renshe")
    for user in (deputy, department):
        for _ in range(6):
            assert user.post("/api/consents", {"results": {"MP_HANDLER_TODO": "accept"}}).status_code == 200
    return staff, deputy, department


def custom_texts(fake, openid):
    return [c["json"]["text"]["content"] for c in fake.calls(CUSTOM_SEND)
            if c["json"] and c["json"].get("touser") == openid]


def notices_of(user, kind):
    return [n for n in user.get("/api/notices").json()["items"] if n["kind"] == kind]


def test_a_department_routed_case_keeps_its_deputy(live_server, simulator, fake_wechat, rq_worker):
    set_flow("direct_dispatch")
    staff, deputy, department = people(live_server, fake_wechat, "dc")
    openid = "o_dc_resident"
    simulator.send_event(openid, "subscribe", event_key="qrscene_grid:G001")
    reply = simulator.send_text(openid, WAGES)
    number = NUMBER.search(reply.content).group(0)
    # The first reply names the department and the deputy who supervises it.
    assert "人力资源和社会保障局" in reply.content and "张建华" in reply.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.handler_kind == "department" and case.deputy.code == "D001"
        case_id = case.public_id

    # The deputy sees the case in their list and was told of 派单 (notice and WeChat push).
    listed = deputy.get("/api/cases").json()["items"]
    assert number in [c["number"] for c in listed]
    told = notices_of(deputy, "supervise")
    assert len(told) == 1 and number in told[0]["text"] and "已派" in told[0]["text"]
    wait_for(lambda: pushes_to(fake_wechat, "o_mp_dc_deputy"), timeout=20, message="派单 push to the deputy")

    # The department accepts and answers: the deputy is told of the 答复.
    assert department.post(f"/api/cases/{case_id}/accept").status_code == 200
    answered = department.post(f"/api/cases/{case_id}/reply", {"text": "已约谈企业负责人，本周内发放工资。"})
    assert answered.status_code == 200, answered.text
    told = notices_of(deputy, "supervise")
    assert len(told) == 2 and "已答复" in told[0]["text"] and "本周内发放工资" in told[0]["text"]

    # 督单: the deputy presses the department with a note; on the timeline, pushed to the department.
    before = len(pushes_to(fake_wechat, "o_mp_dc_dept"))
    urged = deputy.post(f"/api/cases/{case_id}/urge", {"note": "群众等着过年，请尽快兑现"})
    assert urged.status_code == 200, urged.text
    timeline = urged.json()["case"]["timeline"]
    assert timeline[-1]["action"] == "urge" and "请尽快兑现" in str(timeline[-1])
    wait_for(lambda: len(pushes_to(fake_wechat, "o_mp_dc_dept")) > before, timeout=20,
             message="督单 push to the department")
    assert "被督办" in pushes_to(fake_wechat, "o_mp_dc_dept")[-1]["data"]["thing2"]["value"]

    # At the deadline the deputy is the first to be told (escalation level 1: 代表督单).
    with db.session_scope() as session:
        deadline = cases.case_by_number(session, number).deadline
    domain_clock.set_clock(lambda: deadline + timedelta(minutes=1))
    try:
        with db.session_scope() as session:
            timer_sweep.run_due(session)
    finally:
        domain_clock.set_clock(None)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.escalation_level == 1
        told = session.scalars(select(Notice).where(Notice.case_id == case.id, Notice.kind == "escalate")
                               .order_by(Notice.id)).all()
        assert told[0].deputy_id == case.deputy_id
        assert {n.department_id for n in told[1:]} == {case.department_id}


def test_deputy_first_is_the_default_and_the_deputy_dispatches(live_server, simulator, fake_wechat,
                                                               rq_worker):
    staff, deputy, department = people(live_server, fake_wechat, "df")
    simulator.send_event("o_df_resident", "subscribe", event_key="qrscene_grid:G001")
    reply = simulator.send_text("o_df_resident", WAGES)
    number = NUMBER.search(reply.content).group(0)
    assert "张建华" in reply.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.handler_kind == "deputy" and case.department_id is None
        assert case.routing["flow"] == "deputy_first" and case.routing["suggested_department"] == "renshe"
        case_id = case.public_id
    assert deputy.post(f"/api/cases/{case_id}/accept").status_code == 200
    assert deputy.post(f"/api/cases/{case_id}/dispatch", {"department_code": "renshe"}).status_code == 200
    seen = deputy.get(f"/api/cases/{case_id}")  # still the deputy's case while the department works it
    assert seen.status_code == 200 and seen.json()["deputy"]["code"] == "D001"
    assert notices_of(deputy, "supervise") == []  # their own 派单 is not told back to them
    assert "urge" in seen.json()["actions"]


def test_a_resident_who_scanned_a_deputys_own_code_gets_that_deputy(live_server, simulator, fake_wechat,
                                                                    rq_worker):
    staff, _deputy, _department = people(live_server, fake_wechat, "sc")
    created = staff.post("/api/deputies", {"code": "D090", "name": "孙丽", "level": "city", "grids": []})
    assert created.status_code in (200, 201), created.text
    lone = make_account(staff, fake_wechat, "o_mp_sc_lone", role="deputy", name="孙丽", deputy_code="D090")
    scanned = simulator.send_event("o_sc_resident", "subscribe", event_key="qrscene_deputy:D090")
    assert "孙丽" in scanned.content
    reply = simulator.send_text("o_sc_resident", "我们园区门口的红绿灯时间太短，老人过不去马路")
    number = NUMBER.search(reply.content).group(0)
    assert "孙丽" in reply.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.deputy.code == "D090" and case.grid_id is None
    assert number in [c["number"] for c in lone.get("/api/cases").json()["items"]]
    # Scanning a grid's code later hands the resident back to that grid's lead deputy.
    simulator.send_event("o_sc_resident", "SCAN", event_key="grid:G002")
    with db.session_scope() as session:
        resident = session.scalar(select(Resident).where(Resident.oa_openid == "o_sc_resident"))
        assert resident.deputy_id is None and resident.grid.code == "G002"
        assert cases.open_case(session, resident, "东关小区的井盖丢了一个，晚上很危险").deputy.code == "D002"


# ------------------------------------------------------------------------ walk-ins, 交办单, 回访, ruling
def sheet_of(user, case_id):
    answer = user.get(f"/api/cases/{case_id}/sheet")
    assert answer.status_code == 200, answer.text
    assert answer.json()["content_type"] == "application/pdf"
    return base64.b64decode(answer.json()["content_base64"])


def read_sheet(pdf: bytes) -> tuple[str, list[str]]:
    """The 交办单's text and the contents of the QR codes drawn on it (decoded from its images)."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    decoded = []
    for image in page.images:
        decoded += [found.text for found in zxingcpp.read_barcodes(image.image)]
    return page.extract_text(), decoded


def test_a_walk_in_matter_runs_to_a_return_visit_rating(live_server, simulator, fake_wechat, rq_worker):
    staff, deputy, _department = people(live_server, fake_wechat, "wi")
    body = {"text": "幸福里小区5号楼楼道灯不亮，老人晚上上下楼不方便", "resident_name": "刘大妈",
            "resident_phone": "13800001111", "contact_consent": True, "place_kind": "reception",
            "place": "城关镇人大代表联络站"}
    assert deputy.post("/api/walk-ins", {**body, "place_kind": "bar"}).status_code == 422
    assert deputy.post("/api/walk-ins", {**body, "grid_code": "G003"}).status_code == 422  # not their grid
    created = deputy.post("/api/walk-ins", body)
    assert created.status_code == 201, created.text
    case_id, number = created.json()["id"], created.json()["number"]
    assert created.json()["deputy"]["code"] == "D001" and created.json()["grid"]["code"] == "G001"
    assert [e["action"] for e in created.json()["timeline"]] == ["submit", "assign", "walk_in"]

    # The 交办单: case number, deadline and a QR code that is a WeChat code for this case.
    pdf = sheet_of(deputy, case_id)
    text, codes = read_sheet(pdf)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        deadline = timers.local_day(case.deadline)
    assert number in text and deadline in text and "交办单" in text and "张建华" in text
    assert "13800001111" not in text  # the resident's phone is not printed for the department
    assert len(codes) == 1
    scene = next(q["scene"] for q in fake_wechat.qrcodes().values() if q["url"] == codes[0])
    assert scene.startswith("case:")

    # The deputy works it; closed, the resident has no WeChat: it is on the staff 回访 list.
    assert deputy.post(f"/api/cases/{case_id}/accept").status_code == 200
    assert deputy.post(f"/api/cases/{case_id}/close", {"summary": "已更换楼道声控灯"}).status_code == 200
    due = staff.get("/api/return-visits").json()
    assert [c["case"]["number"] for c in due["items"]] == [number]
    assert (due["items"][0]["resident_name"], due["items"][0]["resident_phone"]) == ("刘大妈", "13800001111")
    visit = {"method": "phone", "visitor": "工委 陈主任", "visited_at": "2026-12-01T10:00:00+08:00",
             "outcome": "群众表示灯已修好", "rating": "basically_satisfied"}
    assert deputy.post(f"/api/cases/{case_id}/return-visits", visit).status_code == 403
    assert staff.post(f"/api/cases/{case_id}/return-visits", {**visit, "method": "fax"}).status_code == 422
    recorded = staff.post(f"/api/cases/{case_id}/return-visits", visit)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["case"]["status"] == "archived"
    assert staff.post(f"/api/cases/{case_id}/return-visits", visit).status_code == 409  # rated already
    assert staff.get("/api/return-visits").json()["total"] == 0
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        (rating,) = session.scalars(select(Rating).where(Rating.case_id == case.id)).all()
        assert (rating.value, rating.channel, rating.round) == ("basically_satisfied", "return_visit", 1)
        visit_row = session.scalar(select(ReturnVisit).where(ReturnVisit.case_id == case.id))
        assert visit_row.rating_id == rating.id and visit_row.method == "phone"


def test_the_resident_scans_the_sheet_and_rates_in_wechat(live_server, simulator, fake_wechat, rq_worker):
    staff, deputy, _department = people(live_server, fake_wechat, "qr")
    created = staff.post("/api/walk-ins", {"text": "东关小区门口的井盖松动", "resident_name": "王师傅",
                                           "contact_consent": False, "place_kind": "stall",
                                           "place": "东关街口", "grid_code": "G002"})
    assert created.status_code == 201, created.text
    case_id, number = created.json()["id"], created.json()["number"]
    _text, codes = read_sheet(sheet_of(staff, case_id))
    scene = next(q["scene"] for q in fake_wechat.qrcodes().values() if q["url"] == codes[0])
    scanned = simulator.send_event("o_qr_wang", "subscribe", event_key="qrscene_" + scene)
    assert number in scanned.content and "李秀英" in scanned.content
    # Claimed: someone else scanning it later learns nothing of the case.
    other = simulator.send_event("o_qr_stranger", "subscribe", event_key="qrscene_" + scene)
    assert number not in other.content and "东关" not in other.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.resident.oa_openid == "o_qr_wang"
        deputy_id = case.deputy_id
    handler = Actor("deputy", deputy_id)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, handler)
        cases.close(session, case, handler, "已联系市政加固井盖")
    wait_for(lambda: any(number in t for t in custom_texts(fake_wechat, "o_qr_wang")), timeout=20,
             message="the rating prompt to the resident who scanned")
    rated = simulator.send_text("o_qr_wang", "1")
    assert "销号" in rated.content


def test_a_second_unsatisfied_ends_in_a_staff_ruling(live_server, simulator, fake_wechat, rq_worker):
    staff, deputy, _department = people(live_server, fake_wechat, "ru")
    openid = "o_ru_resident"
    reply = simulator.send_text(openid, "幸福里小区门口的垃圾桶一直没人清理，臭气熏天")
    number = NUMBER.search(reply.content).group(0)
    with db.session_scope() as session:
        case_id = cases.case_by_number(session, number).public_id
    for round_ in (1, 2):
        assert deputy.post(f"/api/cases/{case_id}/accept").status_code == 200
        assert deputy.post(f"/api/cases/{case_id}/close", {"summary": f"第{round_}次清理"}).status_code == 200
        wait_for(lambda r=round_: len([t for t in custom_texts(fake_wechat, openid) if "评价" in t]) >= r,
                 timeout=20, message=f"rating prompt of round {round_}")
        answer = simulator.send_text(openid, "3")
    assert "工委" in answer.content or "裁定" in answer.content
    detail = staff.get(f"/api/cases/{case_id}").json()
    assert detail["status"] == "ruling" and detail["round"] == 2 and "conclude" in detail["actions"]
    staff_told = [n for n in staff.get("/api/notices").json()["items"] if number in n["text"]]
    assert any("裁定" in n["text"] for n in staff_told)  # 人大 staff are told
    assert any("二次办理" in n["text"] for n in staff_told)  # and were told of the second round
    assert deputy.post(f"/api/cases/{case_id}/conclude", {"reason": "已答复"}).status_code == 403
    assert staff.post(f"/api/cases/{case_id}/conclude", {"reason": ""}).status_code == 422
    ruled = staff.post(f"/api/cases/{case_id}/conclude",
                       {"reason": "环卫已按标准每日清运两次，群众另提的搬迁垃圾站不具备条件，作终结处理"})
    assert ruled.status_code == 200, ruled.text
    assert ruled.json()["case"]["status"] == "concluded"
    wait_for(lambda: any("终结" in t for t in custom_texts(fake_wechat, openid)), timeout=20,
             message="the resident told of the ruling")
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        last = session.scalar(select(Rating).where(Rating.case_id == case.id).order_by(Rating.round.desc()))
        assert (last.round, last.value) == (2, "unsatisfied")


def test_an_enterprises_message_reaches_the_enterprise_grids_deputy(live_server, simulator, fake_wechat,
                                                                     rq_worker):
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, "o_mp_en_staff")
    chen = make_account(staff, fake_wechat, "o_mp_en_deputy", role="deputy", name="陈志强", deputy_code="D004")
    grids = {g["code"]: g["kind"] for g in staff.get("/api/grids").json()}
    assert grids["G004"] == "enterprise" and grids["G001"] == "community"
    reply = simulator.send_text("o_en_contact", "恒通机械有限公司反映：厂区门口道路破损，货车进出困难")
    number = NUMBER.search(reply.content).group(0)
    assert "陈志强" in reply.content  # 企业点单 — 代表接单
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.grid.code == "G004" and case.grid.kind == "enterprise" and case.deputy.code == "D004"
    assert number in [c["number"] for c in chen.get("/api/cases").json()["items"]]
    # The demo's deputy without a grid is reached through their own code.
    scanned = simulator.send_event("o_en_other", "subscribe", event_key="qrscene_deputy:D005")
    assert "赵敏" in scanned.content
    reply = simulator.send_text("o_en_other", "新能源企业用电报装流程太长，希望代表帮忙反映")
    with db.session_scope() as session:
        assert cases.case_by_number(session, NUMBER.search(reply.content).group(0)).deputy.code == "D005"


def test_walk_in_contacts_and_the_return_visit_list_follow_the_scope(live_server, fake_wechat, rq_worker):
    staff, deputy, department = people(live_server, fake_wechat, "ws")
    station = make_account(staff, fake_wechat, "o_mp_ws_station", role="staff", name="青山站", station_code="S002")
    ours = deputy.post("/api/walk-ins", {"text": "幸福里小区健身器材坏了", "resident_name": "赵大爷",
                                         "resident_phone": "13700009999", "contact_consent": False,
                                         "place_kind": "post"}).json()
    theirs = station.post("/api/walk-ins", {"text": "青山村村口的路灯坏了", "resident_name": "钱阿姨",
                                            "resident_phone": "13600008888", "contact_consent": True,
                                            "place_kind": "stall"})
    assert theirs.status_code == 201, theirs.text
    theirs = theirs.json()
    # Station staff may not land a walk-in outside their station.
    assert station.post("/api/walk-ins", {"text": "幸福里小区的路灯坏了", "resident_name": "孙",
                                          "contact_consent": True, "place_kind": "stall"}).status_code == 422
    assert deputy.post(f"/api/cases/{ours['id']}/accept").status_code == 200
    assert deputy.post(f"/api/cases/{ours['id']}/close", {"summary": "已修好"}).status_code == 200
    with db.session_scope() as session:
        case = cases.case_by_number(session, theirs["number"])
        cases.accept(session, case, Actor("deputy", case.deputy_id))
        cases.close(session, case, Actor("deputy", case.deputy_id), "已修好")
    county_list = {i["case"]["number"]: i for i in staff.get("/api/return-visits").json()["items"]}
    assert set(county_list) == {ours["number"], theirs["number"]}
    assert county_list[ours["number"]]["resident_phone"] is None  # no consent: no phone for the call
    assert county_list[theirs["number"]]["resident_phone"] == "13600008888"
    station_list = station.get("/api/return-visits").json()["items"]
    assert [i["case"]["number"] for i in station_list] == [theirs["number"]]
    assert station.post(f"/api/cases/{ours['id']}/return-visits", {
        "method": "visit", "visitor": "青山站", "visited_at": "2026-12-01T10:00:00+08:00",
        "outcome": "满意", "rating": "satisfied"}).status_code == 404
    # Nobody's answer carries the walk-in's name or phone but the staff 回访 list.
    for user in (deputy, department, station):
        for case in (ours, theirs):
            answer = user.get(f"/api/cases/{case['id']}")
            assert "13700009999" not in answer.text and "13600008888" not in answer.text
            assert "赵大爷" not in answer.text and "钱阿姨" not in answer.text
    assert department.get(f"/api/cases/{ours['id']}/sheet").status_code == 404  # not with the department
