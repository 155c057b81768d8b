"""Who sees what (the hardening issue): followers (并单) see only their own part of someone else's case,
assisting deputies read but do not act, sessions die with re-binding, disabling and role changes, a
replayed Idempotency-Key answer is re-checked, station staff see their station, case surveys are for
the case's residents."""
from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, func, select

from liaison.case.models import Case, CaseFollower
from liaison.conversation import service as conversation
from liaison.core import db
from liaison.core.errors import NOT_FOUND
from liaison.engagement import surveys
from liaison.engagement.models import Survey, SurveyVote
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Account, Deputy, DeputyGrid, Grid, Resident
from tests.api_fixtures import FlaskHttp, bind_with_code, bootstrap_staff, login, make_account, resident

OWNER_TEXT = "幸福里小区3号楼门口的路灯坏了，晚上很黑，我电话13800001111"
OWNER_LABEL = "幸福里小区3号楼 张三家"
OWNER_ADDITION = "我住3号楼2单元201室，备用电话13900002222"
OWNER_PHOTO = "media-owner-photo-1"
FOLLOWER_TEXT = "幸福里小区3号楼门口的路灯坏了，晚上看不见，我是李四，电话13700003333"
OWNER_SECRETS = ("13800001111", "张三", "201室", "13900002222", OWNER_PHOTO, "晚上很黑")


def chat(openid: str, text: str) -> str | None:
    """One official-account text message through the resident's chat (as the webhook hands it over)."""
    incoming = conversation.Incoming(openid=openid, msg_type="text", create_time=1, content=text,
                                     msg_id=f"{openid}-{abs(hash(text))}")
    with db.session_scope() as session:
        return conversation.handle(session, incoming, join_window=timedelta(minutes=10))


def menu(openid: str, key: str) -> str | None:
    incoming = conversation.Incoming(openid=openid, msg_type="event", create_time=2, event="CLICK",
                                     event_key=key)
    with db.session_scope() as session:
        return conversation.handle(session, incoming, join_window=timedelta(minutes=10))


@pytest.fixture
def county(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_wsw_staff")
    return {
        "http": http, "staff": staff,
        "lead": make_account(staff, fake_wechat, "o_wsw_d1", role="deputy", name="张建华", deputy_code="D001"),
        "assist": make_account(staff, fake_wechat, "o_wsw_d2", role="deputy", name="李秀英",
                               deputy_code="D002"),
    }


@pytest.fixture
def followed(county, fake_wechat):
    """The owner's case in G001 (text with phone, photo, location, a later addition) and a resident who
    became its follower by writing a similar chat message that names the community."""
    http = county["http"]
    owner = resident(http, "", fake_wechat, "o_wsw_owner")
    case = owner.post("/api/cases", {"text": OWNER_TEXT, "photos": [OWNER_PHOTO],
                                     "location": {"latitude": 30.1, "longitude": 120.2,
                                                  "label": OWNER_LABEL}}).json()
    assert owner.post(f"/api/cases/{case['id']}/information", {"text": OWNER_ADDITION}).status_code == 200
    # The follower writes to the official account (their mini-program self shares the unionid).
    with db.session_scope() as session:
        session.add(Resident(oa_openid="o_wsw_oa_follower", unionid="u_wsw_follower", subscribed=True))
    reply = chat("o_wsw_oa_follower", FOLLOWER_TEXT)
    assert case["number"] in reply and "已将您加入关注" in reply, reply
    follower = resident(http, "", fake_wechat, "o_wsw_mp_follower", unionid="u_wsw_follower")
    with db.session_scope() as session:
        row = session.scalar(select(Case).where(Case.public_id == case["id"]))
        assert session.scalar(select(CaseFollower).where(CaseFollower.case_id == row.id)) is not None
    return {"owner": owner, "follower": follower, "case": case}


def _leaks(response) -> list[str]:
    body = json.dumps(response.json(), ensure_ascii=False)
    return [secret for secret in OWNER_SECRETS if secret in body]


# ---------------------------------------------------------------------------------------------- 1. 并单
def test_a_follower_sees_only_status_handler_and_public_replies(county, followed):
    follower, owner, case = followed["follower"], followed["owner"], followed["case"]
    lead = county["lead"]

    listing = follower.get("/api/cases")
    assert listing.status_code == 200
    [item] = [c for c in listing.json()["items"] if c["id"] == case["id"]]
    assert item["view"] == "follower" and item["number"] == case["number"]
    assert item["handler"] == "网格代表 张建华（县人大代表）" and item["status_label"]
    assert not _leaks(listing), _leaks(listing)
    for field in ("text", "location", "timeline", "photos", "summary", "grid"):
        assert field not in item

    detail = follower.get(f"/api/cases/{case['id']}")
    assert detail.status_code == 200 and detail.json()["view"] == "follower"
    assert not _leaks(detail), _leaks(detail)
    assert detail.json()["can_rate"] is False and detail.json()["actions"] == []

    # A follower cannot add to or withdraw someone else's case.
    assert follower.post(f"/api/cases/{case['id']}/information", {"text": "x"}).status_code == 403
    assert follower.post(f"/api/cases/{case['id']}/withdraw").status_code == 403

    # The handler's public replies reach the follower's view; their rating prompt too. A question for
    # the owner ("which flat?") is asked of the owner only.
    assert lead.post(f"/api/cases/{case['id']}/accept").status_code == 200
    assert lead.post(f"/api/cases/{case['id']}/information-requests",
                     {"question": "张三您好，具体是哪一户门口？"}).status_code == 200
    with db.session_scope() as session:
        asked = {row.resident_id for row in session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "resident_text")) if "需要补充" in row.payload["text"]}
        owner_id = session.scalar(select(Case.resident_id).where(Case.public_id == case["id"]))
    assert asked == {owner_id}
    assert lead.post(f"/api/cases/{case['id']}/reply", {"text": "已安排电工明天维修"}).status_code == 200
    assert lead.post(f"/api/cases/{case['id']}/close", {"summary": "路灯已修复"}).status_code == 200
    detail = follower.get(f"/api/cases/{case['id']}").json()
    assert [r["text"] for r in detail["replies"]] == ["已安排电工明天维修", "路灯已修复"]
    assert detail["can_rate"] is True and detail["actions"] == ["rate"]
    rated = follower.post(f"/api/cases/{case['id']}/rating", {"value": "satisfied", "comment": "谢谢"})
    assert rated.status_code == 200, rated.text
    assert rated.json()["case"]["view"] == "follower" and not _leaks(rated)
    assert rated.json()["case"]["can_rate"] is False
    # Filters return the same reduced view.
    closed = follower.get("/api/cases", status="closed").json()["items"]
    assert [c["view"] for c in closed] == ["follower"]

    # The owner sees their case in full, but not the follower's words or rating comment.
    mine = owner.get(f"/api/cases/{case['id']}").json()
    assert mine["view"] == "full" and OWNER_ADDITION in mine["text"] and mine["photos"] == [OWNER_PHOTO]
    body = json.dumps(mine, ensure_ascii=False)
    assert "李四" not in body and "13700003333" not in body and "谢谢" not in body
    assert "附议（并单）" in [e["label"] for e in mine["timeline"]]


def test_the_chat_menu_lists_followed_cases_without_their_text(followed):
    case = followed["case"]
    answer = menu("o_wsw_oa_follower", conversation.MENU_MY_CASES)
    assert case["number"] in answer and "关注" in answer
    assert not [secret for secret in OWNER_SECRETS if secret in answer], answer
    assert "幸福里小区3号楼门口" not in answer.split("关注的同类诉求：")[-1]


# ---------------------------------------------------------------------------------------------- 3. 协助代表
def test_an_assisting_deputy_reads_but_does_not_act(county, fake_wechat):
    http, lead, assist, staff = county["http"], county["lead"], county["assist"], county["staff"]
    owner = resident(http, "", fake_wechat, "o_wsw_owner3")
    case = owner.post("/api/cases", {"text": "幸福里小区5号楼楼道的灯不亮了"}).json()
    assert case["handler"] == "网格代表 张建华（县人大代表）"
    # D002 assists in G001: they read the case (and its notes) but it is not theirs to handle.
    seen = assist.get(f"/api/cases/{case['id']}")
    assert seen.status_code == 200 and seen.json()["actions"] == []
    for action, body in [("accept", None), ("reply", {"text": "好"}), ("close", {"summary": "好"}),
                         ("dispatch", {"department_code": "zhujian"}), ("category", {"category": "交通运输"}),
                         ("information-requests", {"question": "几号楼？"})]:
        response = assist.post(f"/api/cases/{case['id']}/{action}", body)
        assert response.status_code == 403, (action, response.status_code, response.text)
    assert assist.get(f"/api/cases/{case['id']}").json()["status"] == "assigned"
    # Handed to them by staff, they act; the lead deputy now only reads.
    assert staff.post(f"/api/cases/{case['id']}/reassign",
                      {"deputy_code": "D002", "reason": "主任代表出差"}).status_code == 200
    assert assist.post(f"/api/cases/{case['id']}/accept").status_code == 200
    assert lead.post(f"/api/cases/{case['id']}/close", {"summary": "好"}).status_code == 403


# ---------------------------------------------------------------------------------------------- 4. sessions
def _account_id(user) -> str:
    return user.get("/api/me").json()["id"]


def test_a_rebound_account_ends_the_previous_holders_session(county, fake_wechat):
    staff, http = county["staff"], county["http"]
    created = staff.post("/api/accounts", {"role": "deputy", "name": "王德明", "deputy_code": "D003"}).json()
    first = bind_with_code(http, "", fake_wechat, "o_wsw_first_holder", created["binding_code"])
    assert first.get("/api/me").json()["role"] == "deputy"
    code = staff.post(f"/api/accounts/{created['account']['id']}/binding-code").json()["binding_code"]
    assert first.get("/api/me").status_code == 200  # a new code alone changes nothing yet
    second = bind_with_code(http, "", fake_wechat, "o_wsw_second_holder", code)
    assert second.get("/api/me").json()["id"] == created["account"]["id"]
    gone = first.get("/api/me")
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "invalid_token"


def test_disabling_an_account_ends_its_sessions_until_enabled_and_logged_in_again(county, fake_wechat):
    staff, lead, http = county["staff"], county["lead"], county["http"]
    account_id = _account_id(lead)
    disabled = staff.post(f"/api/accounts/{account_id}/disable")
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert lead.get("/api/me").status_code == 401
    assert lead.get("/api/cases").status_code == 401
    # Logging in again while disabled gives the plain resident, not the deputy.
    assert login(http, "", fake_wechat, "o_wsw_d1")["me"]["role"] == "resident"
    assert staff.post(f"/api/accounts/{account_id}/enable").json()["active"] is True
    assert lead.get("/api/me").status_code == 401  # the old token stays dead
    again = login(http, "", fake_wechat, "o_wsw_d1")
    assert again["me"]["role"] == "deputy" and again["me"]["id"] == account_id
    # Staff cannot lock themselves out.
    refused = staff.post(f"/api/accounts/{_account_id(staff)}/disable")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cannot_disable_self"


def test_a_role_change_ends_the_accounts_sessions(county):
    lead = county["lead"]
    account_id = _account_id(lead)
    with db.session_scope() as session:
        account = session.scalar(select(Account).where(Account.public_id == account_id))
        account.role, account.deputy_id = "staff", None
    assert lead.get("/api/me").status_code == 401


def test_station_staff_disable_only_their_stations_accounts(county, fake_wechat):
    staff = county["staff"]
    station = make_account(staff, fake_wechat, "o_wsw_station", role="staff", name="青山站",
                           station_code="S002")
    d003 = make_account(staff, fake_wechat, "o_wsw_d3", role="deputy", name="王德明", deputy_code="D003")
    assert station.post(f"/api/accounts/{_account_id(county['lead'])}/disable").status_code == 404
    assert county["lead"].get("/api/me").status_code == 200
    assert station.post(f"/api/accounts/{_account_id(d003)}/disable").status_code == 200
    assert d003.get("/api/me").status_code == 401


# ---------------------------------------------------------------------------------------------- 9. replay
def test_a_stored_answer_is_not_replayed_to_a_deputy_who_lost_the_case(county, fake_wechat):
    http, lead, staff = county["http"], county["lead"], county["staff"]
    owner = resident(http, "", fake_wechat, "o_wsw_owner9")
    case = owner.post("/api/cases", {"text": "幸福里小区7号楼的路灯坏了，电话13811112222"}).json()
    first = lead.post(f"/api/cases/{case['id']}/accept", idempotency_key="accept-once")
    assert first.status_code == 200
    replay = lead.post(f"/api/cases/{case['id']}/accept", idempotency_key="accept-once")
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    # The grid is taken from D001 and the case handed to D002.
    with db.session_scope() as session:
        grid = session.scalar(select(Grid).where(Grid.code == "G001"))
        deputy = session.scalar(select(Deputy).where(Deputy.code == "D001"))
        session.execute(delete(DeputyGrid).where(DeputyGrid.grid_id == grid.id,
                                                 DeputyGrid.deputy_id == deputy.id))
    assert staff.post(f"/api/cases/{case['id']}/reassign",
                      {"deputy_code": "D002", "reason": "网格调整"}).status_code == 200
    assert lead.get(f"/api/cases/{case['id']}").status_code == 404
    again = lead.post(f"/api/cases/{case['id']}/accept", idempotency_key="accept-once")
    assert again.status_code == 404, again.text
    assert "13811112222" not in again.text and again.headers.get("Idempotent-Replayed") is None


# ---------------------------------------------------------------------------------------------- 10. station scope
def test_station_staff_list_and_export_only_their_station(county, fake_wechat):
    staff = county["staff"]
    with db.session_scope() as session:
        for code, phone in (("D001", "13700000001"), ("D002", "13700000002"), ("D003", "13700000003")):
            session.scalar(select(Deputy).where(Deputy.code == code)).phone = phone
    station = make_account(staff, fake_wechat, "o_wsw_station10", role="staff", name="青山站",
                           station_code="S002")
    make_account(staff, fake_wechat, "o_wsw_d3_10", role="deputy", name="王德明", deputy_code="D003")
    make_account(staff, fake_wechat, "o_wsw_dept10", role="department", name="住建",
                 department_code="zhujian")
    names = {a["name"] for a in station.get("/api/accounts", page_size=100).json()["items"]}
    assert names == {"青山站", "王德明"}
    assert station.get("/api/accounts").json()["total"] == 2
    assert len(staff.get("/api/accounts", page_size=100).json()["items"]) == 6  # county: everyone

    csv_text = base64.b64decode(station.get("/api/registry/export", format="csv", sheet="deputies")
                                .json()["content_base64"]).decode("utf-8-sig")
    assert "13700000003" in csv_text and "13700000001" not in csv_text and "13700000002" not in csv_text
    workbook = load_workbook(io.BytesIO(base64.b64decode(
        station.get("/api/registry/export").json()["content_base64"])))
    cells = {str(c.value) for ws in workbook for row in ws.iter_rows() for c in row}
    assert "13700000003" in cells and "13700000001" not in cells and "G001" not in cells
    county_csv = base64.b64decode(staff.get("/api/registry/export", format="csv").json()["content_base64"])
    assert b"13700000001" in county_csv


# ---------------------------------------------------------------------------------------------- 11. case surveys
def test_a_case_survey_is_for_that_cases_residents(county, followed, fake_wechat):
    staff, case = county["staff"], followed["case"]
    survey = staff.post("/api/surveys", {"kind": "case", "case_id": case["id"]}).json()
    # The case number residents are told names the case as well as its id.
    by_number = staff.post("/api/surveys", {"kind": "case", "case_id": case["number"]})
    assert by_number.status_code == 201 and by_number.json()["title"] == survey["title"]
    stranger = resident(county["http"], "", fake_wechat, "o_wsw_stranger")
    assert stranger.get(f"/api/surveys/{survey['id']}").status_code == 404
    refused = stranger.post(f"/api/surveys/{survey['id']}/votes", {"value": "unsatisfied"})
    assert refused.status_code == 404
    # The domain refuses it as "not found" too (a refusal kind, not a stray status number).
    with db.session_scope() as session:
        row = session.scalar(select(Survey).where(Survey.public_id == survey["id"]))
        someone = Resident(oa_openid="o_wsw_domain_stranger")
        session.add(someone)
        session.flush()
        with pytest.raises(surveys.SurveyError) as error:
            surveys.vote(session, row, someone, "unsatisfied")
        assert error.value.kind == NOT_FOUND
    # Scanning the code in the chat does not open a vote for them either.
    scan = conversation.Incoming(openid="o_wsw_oa_stranger", msg_type="event", create_time=3, event="subscribe",
                                 event_key=f"qrscene_survey:{survey['id']}")
    with db.session_scope() as session:
        answer = conversation.handle(session, scan, join_window=timedelta(minutes=10))
    assert "仅限" in answer
    assert chat("o_wsw_oa_stranger", "3").startswith("感谢") is False
    # The case's resident and its follower may.
    for user in (followed["owner"], followed["follower"]):
        assert user.get(f"/api/surveys/{survey['id']}").status_code == 200
        assert user.post(f"/api/surveys/{survey['id']}/votes", {"value": "satisfied"}).status_code == 201
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SurveyVote)) == 2
    # Station surveys stay open to everyone who scans.
    open_survey = staff.post("/api/surveys", {"kind": "station", "station_code": "S001"}).json()
    assert stranger.post(f"/api/surveys/{open_survey['id']}/votes", {"value": "satisfied"}).status_code == 201
