"""Scan-to-rate surveys (chat and mini-program, one vote per resident, 满意率 and follow-up flags) and
民生实事票决 (eligibility by level, one ballot each, results only after closing)."""
from __future__ import annotations

from sqlalchemy import func, select

from liaison.core import db
from liaison.engagement.models import SurveyVote
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident


def setup(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_sv_staff")
    return http, staff, {
        "D001": make_account(staff, fake_wechat, "o_sv_d1", role="deputy", name="张建华", deputy_code="D001"),
        "D002": make_account(staff, fake_wechat, "o_sv_d2", role="deputy", name="李秀英", deputy_code="D002"),
        "D003": make_account(staff, fake_wechat, "o_sv_d3", role="deputy", name="王德明", deputy_code="D003"),
    }


def test_survey_votes_by_chat_and_miniprogram_with_repeat_voters(app, fake_wechat, simulator):
    http, staff, deputies = setup(app, fake_wechat)
    report = deputies["D001"].post("/api/surveys", {"kind": "report"}).json()
    assert report["title"] == "张建华代表述职评议"
    assert deputies["D001"].post("/api/surveys", {"kind": "report", "deputy_code": "D002"}).status_code == 403
    station = staff.post("/api/surveys", {"kind": "station", "station_code": "S001"}).json()
    code = deputies["D001"].get(f"/api/surveys/{report['id']}/qrcode").json()
    assert code["scene"] == f"survey:{report['id']}"
    assert deputies["D002"].get(f"/api/surveys/{report['id']}/qrcode").status_code == 404

    # Chat: scan, then reply 2 → basically satisfied; a second scan and reply does not vote again.
    prompt = simulator.send_event("o_sv_r1", "subscribe", event_key="qrscene_" + code["scene"])
    assert "1 满意" in prompt.content
    assert "基本满意" in simulator.send_text("o_sv_r1", "2").content
    again = simulator.send_event("o_sv_r1", "SCAN", event_key=code["scene"])
    assert "已参与" in again.content
    # "1" without a pending survey question is an ordinary message (here: a new case), not a vote.
    assert "诉求" in simulator.send_text("o_sv_r1", "1").content

    # Mini-program: one vote per resident; a repeat is refused.
    voters = [resident(http, "", fake_wechat, f"o_sv_mp{i}") for i in range(4)]
    values = ["satisfied", "unsatisfied", "unsatisfied", "satisfied"]
    for user, value in zip(voters, values):
        assert user.post(f"/api/surveys/{report['id']}/votes", {"value": value, "comment": "好"}).status_code == 201
    repeat = voters[0].post(f"/api/surveys/{report['id']}/votes", {"value": "unsatisfied"})
    assert repeat.status_code == 409 and repeat.json()["error"]["code"] == "already_voted"
    assert voters[0].post(f"/api/surveys/{station['id']}/votes", {"value": "satisfied"}).status_code == 201
    # Deputies and staff cannot vote as residents.
    assert deputies["D001"].post(f"/api/surveys/{report['id']}/votes", {"value": "satisfied"}).status_code == 403
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SurveyVote)) == 6

    results = staff.get("/api/survey-results").json()
    by_survey = {s["id"]: s for s in results["surveys"]}
    assert by_survey[report["id"]]["counts"] == {"satisfied": 2, "basically_satisfied": 1, "unsatisfied": 2}
    assert by_survey[report["id"]]["satisfaction_rate"] == 0.6
    zhang = {d["code"]: d for d in results["deputies"]}["D001"]
    assert zhang["satisfaction_rate"] == 0.6 and zhang["follow_up"] is True   # under 90 %: 限期整改
    s001 = {s["code"]: s for s in results["stations"]}["S001"]
    assert s001["rated"] == 6 and s001["satisfaction_rate"] == round(4 / 6, 4)
    # A deputy sees only their own results; a period with no votes has none.
    assert [d["code"] for d in deputies["D002"].get("/api/survey-results").json()["deputies"]] == []
    assert staff.get("/api/survey-results", since="2099-01-01T00:00:00Z").json()["surveys"] == []


def test_livelihood_project_vote(app, fake_wechat):
    http, staff, deputies = setup(app, fake_wechat)
    body = {"title": "2027年县级民生实事", "level": "county", "max_choices": 2,
            "candidates": [{"code": "P1", "title": "老旧小区加装电梯"}, {"code": "P2", "title": "农村公路提升"},
                           {"code": "P3", "title": "社区食堂"}]}
    assert deputies["D001"].post("/api/project-votes", body).status_code == 403
    vote = staff.post("/api/project-votes", body).json()
    assert vote["electorate"] == 1 and vote["tally"] is None
    path = f"/api/project-votes/{vote['id']}"
    # Only deputies of the vote's level (D001 is county; D002 township, D003 city).
    assert deputies["D002"].post(path + "/ballots", {"candidates": ["P1"]}).json()["error"]["code"] == "not_eligible"
    assert deputies["D003"].get(path).json()["eligible"] is False
    assert deputies["D001"].post(path + "/ballots", {"candidates": ["P1", "P2", "P3"]}).status_code == 422
    assert deputies["D001"].post(path + "/ballots", {"candidates": ["P9"]}).status_code == 422
    assert deputies["D001"].post(path + "/ballots", {"candidates": ["P1", "P3"]}).status_code == 201
    repeat = deputies["D001"].post(path + "/ballots", {"candidates": ["P2"]})
    assert repeat.status_code == 409 and repeat.json()["error"]["code"] == "already_voted"
    resident_user = resident(http, "", fake_wechat, "o_pv_resident")
    assert resident_user.post(path + "/ballots", {"candidates": ["P1"]}).status_code == 403
    open_view = deputies["D001"].get(path).json()
    assert open_view["ballots"] == 1 and open_view["published"] is False and open_view["tally"] is None
    closed = staff.post(path + "/close").json()
    assert closed["published"] is True
    assert [(t["code"], t["votes"]) for t in closed["tally"]] == [("P1", 1), ("P3", 1), ("P2", 0)]
    assert deputies["D001"].post(path + "/ballots", {"candidates": ["P2"]}).status_code in (409,)
