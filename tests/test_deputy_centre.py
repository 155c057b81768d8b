"""The deputy at the centre (issue 15), over real HTTP, PostgreSQL, Redis, an RQ worker process, the
simulator and the fake WeChat API: a responsible deputy on every case for its whole life."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from liaison.case import service as cases
from liaison.case import sweep as timer_sweep
from liaison.case.models import Notice
from liaison.core import clock as domain_clock
from liaison.core import db
from liaison.people.models import Resident
from liaison.tenancy.models import County
from tests.api_fixtures import bootstrap_staff, live_http, make_account
from tests.conftest import wait_for

MINI_SEND = "/cgi-bin/message/subscribe/send"
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
    created = staff.post("/api/deputies", {"code": "D090", "name": "赵敏", "level": "county", "grids": []})
    assert created.status_code in (200, 201), created.text
    lone = make_account(staff, fake_wechat, "o_mp_sc_lone", role="deputy", name="赵敏", deputy_code="D090")
    scanned = simulator.send_event("o_sc_resident", "subscribe", event_key="qrscene_deputy:D090")
    assert "赵敏" in scanned.content
    reply = simulator.send_text("o_sc_resident", "我们园区门口的红绿灯时间太短，老人过不去马路")
    number = NUMBER.search(reply.content).group(0)
    assert "赵敏" in reply.content
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
