"""A whole case played through the mini-program API over real HTTP, on PostgreSQL and Redis, with a real
RQ worker delivering the resident's notifications to the fake WeChat API.

群众提交 → 代表受理 → 派单 → 部门退单 → 再派单 → 部门受理、答复、办结 → 群众评「不满意」→ 二次办理 →
「满意」→ 销号.

Notifications go out as official-account customer-service messages, which WeChat allows only within 48 h
of the resident's last message. So the resident here is also a follower of the official account who wrote
recently: the test creates that official-account resident row with `last_message_at = now` and the
unionid (in production the unionid comes from WeChat's user-info API), and the mini-program login links
onto it through the same unionid.
"""
from __future__ import annotations

from sqlalchemy import select

from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent, Rating
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident
from tests.api_fixtures import bootstrap_staff, live_http, make_account, resident
from tests.conftest import wait_for

CUSTOM_SEND = "/cgi-bin/message/custom/send"
OA_OPENID, MP_OPENID, UNIONID = "o_oa_e2e_resident", "o_mp_e2e_resident", "u_e2e_resident"


def custom_texts(fake, openid=OA_OPENID):
    return [c["json"]["text"]["content"] for c in fake.calls(CUSTOM_SEND)
            if c["json"] and c["json"].get("touser") == openid]


def expect_texts(fake, count, what):
    wait_for(lambda: len(custom_texts(fake)) >= count, timeout=20, message=what)
    texts = custom_texts(fake)
    assert len(texts) == count, texts
    return texts[-1]


def last_event(user, case_id):
    response = user.get(f"/api/cases/{case_id}")
    assert response.status_code == 200, response.text
    return response.json()["timeline"][-1]


def act(user, case_id, action, body=None, status=200, key=None):
    response = user.post(f"/api/cases/{case_id}/{action}", body, idempotency_key=key)
    assert response.status_code == status, (action, response.status_code, response.text)
    return response.json()


def test_case_through_the_api(live_server, fake_wechat, rq_worker):
    base, http = live_server.url, live_http()
    with db.session_scope() as session:
        now = utcnow()  # they just wrote to the official account: a 48 h customer-service window
        session.add(Resident(oa_openid=OA_OPENID, unionid=UNIONID, subscribed=True, last_message_at=now,
                             window_kind="message", window_opened_at=now, window_used=0))

    # Logins: the resident is recognised automatically and linked by unionid; staff bootstrap, then
    # staff registers the deputy and the department handler, who bind with their one-time codes.
    citizen = resident(http, base, fake_wechat, MP_OPENID, unionid=UNIONID)
    staff = bootstrap_staff(http, base, fake_wechat)
    deputy = make_account(staff, fake_wechat, "o_mp_deputy", role="deputy", name="张建华",
                          deputy_code="D001")
    handler = make_account(staff, fake_wechat, "o_mp_zhujian", role="department", name="住建局 刘科长",
                           department_code="zhujian")
    assert (deputy.role, handler.role) == ("deputy", "department")
    with db.session_scope() as session:
        linked = session.scalars(select(Resident).where(Resident.unionid == UNIONID)).all()
        assert len(linked) == 1 and linked[0].mp_openid == MP_OPENID and linked[0].oa_openid == OA_OPENID

    # 1. The resident submits with a photo and a location.
    response = citizen.post("/api/cases", {
        "text": "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑",
        "photos": ["https://img.example/lamp.jpg"],
        "location": {"latitude": 30.1, "longitude": 120.2, "label": "幸福里小区3号楼"}},
        idempotency_key="submit-1")
    assert response.status_code == 201, response.text
    case = response.json()
    case_id, number = case["id"], case["number"]
    assert case["status"] == Status.ASSIGNED and case["handler_kind"] == "deputy"
    assert [e["action"] for e in case["timeline"]] == ["submit", "assign", "attach"]
    assert case["photos"] == ["https://img.example/lamp.jpg"]
    # A retried submission (same Idempotency-Key) creates nothing new.
    again = citizen.post("/api/cases", {
        "text": "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑",
        "photos": ["https://img.example/lamp.jpg"],
        "location": {"latitude": 30.1, "longitude": 120.2, "label": "幸福里小区3号楼"}},
        idempotency_key="submit-1")
    assert again.status_code == 201 and again.json()["id"] == case_id
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert citizen.get("/api/cases").json()["total"] == 1

    # 2. The deputy finds it in the inbox and accepts.
    inbox = deputy.get("/api/cases", status="assigned").json()
    assert [c["id"] for c in inbox["items"]] == [case_id]
    assert "accept" in inbox["items"][0]["actions"]
    result = act(deputy, case_id, "accept")
    assert result["event"]["action"] == "accept" and result["case"]["status"] == Status.ACCEPTED

    # 3. Hand over to the department with a deadline (派单); the resident is told.
    result = act(deputy, case_id, "dispatch", {"department_code": "zhujian", "working_days": 5,
                                               "note": "请核实路灯产权"}, key="dispatch-1")
    assert result["event"]["action"] == "dispatch" and result["case"]["status"] == Status.TRANSFERRED
    assert result["case"]["deadline"]
    act(deputy, case_id, "dispatch", {"department_code": "zhujian", "working_days": 5,
                                      "note": "请核实路灯产权"}, key="dispatch-1")  # replayed, no-op
    text = expect_texts(fake_wechat, 1, "the dispatch notice")
    assert number in text and "县住房和城乡建设局" in text

    # 4. The department sees it and sends it back (退单) with a reason.
    assert [c["id"] for c in handler.get("/api/cases").json()["items"]] == [case_id]
    result = act(handler, case_id, "return", {"reason": "属地不符：该路灯属小区物业管理"})
    assert result["event"]["action"] == "return" and result["case"]["status"] == Status.RETURNED
    assert result["event"]["detail"]["reason"].startswith("属地不符")
    assert handler.get(f"/api/cases/{case_id}").status_code == 404  # no longer with the department

    # 5. The deputy hands it over again.
    result = act(deputy, case_id, "dispatch", {"department_code": "zhujian"})
    assert result["event"]["action"] == "dispatch" and result["case"]["status"] == Status.TRANSFERRED
    expect_texts(fake_wechat, 2, "the second dispatch notice")

    # 6. The department accepts, replies and closes.
    assert act(handler, case_id, "accept")["event"]["action"] == "accept"
    result = act(handler, case_id, "reply", {"text": "已安排维修班组，明天上午更换灯具。"})
    assert result["event"]["action"] == "reply" and result["case"]["status"] == Status.REPLIED
    text = expect_texts(fake_wechat, 3, "the reply")
    assert "明天上午更换灯具" in text and number in text
    result = act(handler, case_id, "close", {"summary": "路灯已更换，恢复照明。"})
    assert result["event"]["action"] == "close" and result["case"]["status"] == Status.CLOSED
    text = expect_texts(fake_wechat, 4, "the rating prompt")
    assert number in text and "满意" in text

    # 7. The resident is not satisfied: second round with a fresh deadline.
    mine = citizen.get(f"/api/cases/{case_id}").json()
    assert "rate" in mine["actions"]
    result = act(citizen, case_id, "rating", {"value": "unsatisfied", "comment": "晚上还是不亮"})
    assert result["event"]["action"] == "rate_unsatisfied"
    assert result["case"]["status"] == Status.REOPENED and result["case"]["round"] == 2
    timeline = citizen.get(f"/api/cases/{case_id}").json()["timeline"]
    assert [e["action"] for e in timeline[-2:]] == ["rate_unsatisfied", "escalate"]  # one level up

    # 8. Second round: the department accepts again and closes; the resident is satisfied → 销号.
    assert act(handler, case_id, "accept")["case"]["status"] == Status.ACCEPTED
    result = act(handler, case_id, "close", {"summary": "更换了线路，已连续三晚正常照明。"})
    assert result["case"]["status"] == Status.CLOSED
    expect_texts(fake_wechat, 5, "the second rating prompt")
    result = act(citizen, case_id, "rating", {"value": "satisfied"})
    assert result["event"]["action"] == "rate_satisfied" and result["case"]["status"] == Status.ARCHIVED
    assert result["case"]["actions"] == []

    # The whole timeline, as the resident sees it (internal details filtered out).
    timeline = citizen.get(f"/api/cases/{case_id}").json()["timeline"]
    assert [e["action"] for e in timeline] == [
        "submit", "assign", "attach", "accept", "dispatch", "return", "dispatch", "accept", "reply",
        "close", "rate_unsatisfied", "escalate", "accept", "close", "rate_satisfied"]
    assert all("reasons" not in e["detail"] for e in timeline)
    assert deputy.get(f"/api/cases/{case_id}").json()["status"] == Status.ARCHIVED

    wait_for(lambda: _all_sent(), message="every outbox row sent")
    with db.session_scope() as session:
        row = session.scalar(select(Case).where(Case.public_id == case_id))
        assert row.status == Status.ARCHIVED and row.location["label"] == "幸福里小区3号楼"
        ratings = session.scalars(select(Rating).where(Rating.case_id == row.id).order_by(Rating.round))
        assert [(r.round, r.value, r.channel) for r in ratings] == [
            (1, "unsatisfied", "miniprogram"), (2, "satisfied", "miniprogram")]
        dispatches = session.scalars(select(CaseEvent).where(CaseEvent.case_id == row.id,
                                                             CaseEvent.action == "dispatch")).all()
        assert len(dispatches) == 2  # the replayed dispatch did nothing
        to_residents = select(OutboxMessage).where(OutboxMessage.resident_id.is_not(None))
        assert len(session.scalars(to_residents).all()) == len(fake_wechat.calls(CUSTOM_SEND)) == 5
        # The second round's escalation reached the handlers in the mini-program only (no consent).
        pushes = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "account_push")).all()
        assert pushes and {p.status for p in pushes} == {"inapp"}


def _all_sent():
    with db.session_scope() as session:
        return all(row.status == "sent" for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.resident_id.is_not(None))))


def test_a_follower_is_linked_to_their_mini_program_self_by_unionid(live_server, fake_wechat, rq_worker,
                                                                    simulator):
    """The official account learns a new follower's unionid (user/info, by a worker) and joins them
    with the mini-program resident who logged in with the same unionid."""
    http = live_http()
    fake_wechat.register_code("code-link", "o_mp_link", unionid="union_link")
    mp = http.post(live_server.url + "/api/login", json={"code": "code-link"})
    assert mp.status_code == 200, mp.text
    token = mp.json()["token"]
    submitted = http.post(live_server.url + "/api/cases", json={"text": "东关小区的下水道堵了"},
                          headers={"Authorization": f"Bearer {token}"})
    assert submitted.status_code == 201, submitted.text
    fake_wechat.set_unionid("o_oa_link", "union_link")
    simulator.send_event("o_oa_link", "subscribe")

    def linked():
        with db.session_scope() as session:
            rows = session.scalars(select(Resident).where(Resident.unionid == "union_link")).all()
            return len(rows) == 1 and rows[0].oa_openid == "o_oa_link" and rows[0].mp_openid == "o_mp_link"

    wait_for(linked, message="the two identities to be linked")
    with db.session_scope() as session:
        person = session.scalar(select(Resident).where(Resident.unionid == "union_link"))
        assert [c.text for c in session.scalars(select(Case).where(Case.resident_id == person.id))] == [
            "东关小区的下水道堵了"]
