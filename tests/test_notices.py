"""One way to tell a handler something (`case.notices`): 督办 and extension decisions reach the
department's bound WeChat like 派单 does — over real HTTP, PostgreSQL, Redis and an RQ worker
delivering to the fake WeChat API."""
from __future__ import annotations

from sqlalchemy import select

from liaison.case.models import Notice
from liaison.core import db
from liaison.messaging.models import OutboxMessage
from tests.api_fixtures import bootstrap_staff, live_http, make_account, resident
from tests.conftest import wait_for

MINI_SEND = "/cgi-bin/message/subscribe/send"
DEPARTMENT_OPENID = "o_mp_notice_dept"


def pushes_to(fake, openid):
    return [c["json"] for c in fake.calls(MINI_SEND)
            if c.get("errcode") in (0, None) and c["json"] and c["json"].get("touser") == openid]


def push_row(prefix):
    with db.session_scope() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "account_push",
                                                         OutboxMessage.dedup_key.startswith(prefix)))
        return (row.status, row.channel) if row is not None else None


def test_an_urged_department_and_an_extension_decision_reach_wechat(live_server, fake_wechat, rq_worker):
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, "o_mp_notice_staff")
    deputy = make_account(staff, fake_wechat, "o_mp_notice_deputy", role="deputy", name="张建华",
                          deputy_code="D001")
    department = make_account(staff, fake_wechat, DEPARTMENT_OPENID, role="department",
                              name="住建局 刘科长", department_code="zhujian")
    for _ in range(4):  # four one-time subscriptions to the handler's to-do template
        assert department.post("/api/consents", {"results": {"MP_HANDLER_TODO": "accept"}}).status_code == 200
    citizen = resident(http, base, fake_wechat, "o_mp_notice_resident")
    created = citizen.post("/api/cases", {"text": "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑"})
    assert created.status_code == 201, created.text
    case_id, number = created.json()["id"], created.json()["number"]
    assert deputy.post(f"/api/cases/{case_id}/dispatch", {"department_code": "zhujian"}).status_code == 200
    wait_for(lambda: len(pushes_to(fake_wechat, DEPARTMENT_OPENID)) == 1, timeout=20, message="派单 push")

    # 督办: the department is told in the mini-program and on WeChat, once.
    urged = staff.post(f"/api/cases/{case_id}/urge", {"note": "群众反映强烈"}, idempotency_key="urge-1")
    assert urged.status_code == 200, urged.text
    staff.post(f"/api/cases/{case_id}/urge", {"note": "群众反映强烈"}, idempotency_key="urge-1")  # replay
    wait_for(lambda: push_row("urge:") == ("sent", "mp_subscribe"), timeout=20, message="督办 push sent")
    pushes = pushes_to(fake_wechat, DEPARTMENT_OPENID)
    assert len(pushes) == 2
    assert pushes[-1]["data"]["character_string1"]["value"] == number
    assert "被督办" in pushes[-1]["data"]["thing2"]["value"]
    with db.session_scope() as session:
        urges = session.scalars(select(Notice).where(Notice.kind == "urge")).all()
        assert len(urges) == 1 and "群众反映强烈" in urges[0].text and urges[0].dedup_key

    # An extension decision is pushed the same way.
    asked = department.post(f"/api/cases/{case_id}/extension-requests",
                            {"working_days": 3, "reason": "需要采购灯具"})
    assert asked.status_code == 201, asked.text
    decided = staff.post(f"/api/extension-requests/{asked.json()['id']}/approve", {"note": "同意"})
    assert decided.status_code == 200, decided.text
    wait_for(lambda: push_row("extension_approved:") == ("sent", "mp_subscribe"), timeout=20,
             message="延期 decision push sent")
    pushes = pushes_to(fake_wechat, DEPARTMENT_OPENID)
    assert len(pushes) == 3 and pushes[-1]["data"]["character_string1"]["value"] == number
    assert [n["kind"] for n in department.get("/api/notices").json()["items"]][:2] == [
        "extension_approved", "urge"]
