"""代表建议 through the mini-program API: a deputy turns residents' cases into a suggestion, staff review
it in the county's three steps and assign it, the lead department answers, the deputy and the committee
rate it; who sees what at each stage, bad input refused with nothing changed, the 台账 and its export."""
from __future__ import annotations

import base64
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from liaison.core import db
from liaison.suggestion.models import SuggestionEvent
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident


@pytest.fixture
def office(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    county = bootstrap_staff(http, "", fake_wechat, "o_sapi_county")
    users = {
        "county": county,
        "station": make_account(county, fake_wechat, "o_sapi_station", role="staff", name="城关站",
                                station_code="S001"),
        "lead": make_account(county, fake_wechat, "o_sapi_d1", role="deputy", name="张建华", deputy_code="D001"),
        "cosigner": make_account(county, fake_wechat, "o_sapi_d2", role="deputy", name="李秀英",
                                 deputy_code="D002"),
        "outsider": make_account(county, fake_wechat, "o_sapi_d3", role="deputy", name="王德明",
                                 deputy_code="D003"),
        "zhujian": make_account(county, fake_wechat, "o_sapi_zj", role="department", name="住建",
                                department_code="zhujian"),
        "jiaotong": make_account(county, fake_wechat, "o_sapi_jt", role="department", name="交通",
                                 department_code="jiaotong"),
    }
    numbers = []
    for i, text in enumerate(["幸福里小区3号楼门口的路灯坏了", "幸福里小区路灯不亮", "幸福里小区南门路灯坏了"]):
        person = resident(http, "", fake_wechat, f"o_sapi_r{i}")
        numbers.append(person.post("/api/cases", {"text": text}).json()["number"])
    return users, numbers


def _events():
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(SuggestionEvent))


def test_a_suggestion_through_the_api(office):
    users, numbers = office
    lead, county = users["lead"], users["county"]

    found = lead.get("/api/suggestion-concentrations", min_cases=3).json()
    assert any(set(numbers) <= set(g["case_numbers"]) for g in found), found
    entry = lead.post("/api/problem-entries", {"title": "幸福里小区路灯集中损坏", "cases": numbers[:2]})
    assert entry.status_code == 201, entry.text
    entry = lead.post(f"/api/problem-entries/{entry.json()['id']}/cases", {"cases": [numbers[2]]}).json()
    assert sorted(entry["case_numbers"]) == sorted(numbers)
    assert users["outsider"].post(f"/api/problem-entries/{entry['id']}/cases",
                                  {"cases": [numbers[0]]}).status_code == 404

    created = lead.post("/api/suggestions", {"title": "关于幸福里小区路灯改造的建议", "problems": "路灯老化",
                                             "proposals": "统一更换", "entry": entry["id"],
                                             "cosigners": ["D002"]})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert [d["role"] for d in created.json()["deputies"]] == ["lead", "cosigner"]
    assert users["cosigner"].get(f"/api/suggestions/{sid}").status_code == 200
    assert users["outsider"].get(f"/api/suggestions/{sid}").status_code == 404
    assert users["zhujian"].get(f"/api/suggestions/{sid}").status_code == 404
    assert users["cosigner"].post(f"/api/suggestions/{sid}/submit").status_code == 403
    assert lead.post(f"/api/suggestions/{sid}/submit").json()["review_step"] == "联络站初审"

    assert users["station"].post(f"/api/suggestions/{sid}/review", {"decision": "pass"}).status_code == 200
    refused = users["station"].post(f"/api/suggestions/{sid}/review", {"decision": "pass"})
    assert refused.status_code == 403 and refused.json()["error"]["message"] == "本审查环节由县级代表工委办理"
    assert county.post(f"/api/suggestions/{sid}/review", {"decision": "pass"}).json()["review_step"] == "主任会议审定"
    assert county.post(f"/api/suggestions/{sid}/review", {"decision": "pass"}).json()["status"] == "approved"

    before = _events()
    bad = county.post(f"/api/suggestions/{sid}/assign", {"lead_department": "nosuch"})
    assert bad.status_code == 422 and _events() == before
    assert county.post(f"/api/suggestions/{sid}/assign", {"lead_department": "zhujian", "nature": "sideways"}
                       ).status_code == 422
    assigned = county.post(f"/api/suggestions/{sid}/assign",
                           {"lead_department": "zhujian", "co_departments": ["jiaotong"]}).json()
    assert assigned["status"] == "assigned" and [d["role"] for d in assigned["departments"]] == ["lead", "co"]
    notices = users["jiaotong"].get("/api/notices").json()
    assert "交办代表建议" in str(notices)
    assert users["jiaotong"].get(f"/api/suggestions/{sid}").status_code == 200
    assert users["jiaotong"].post(f"/api/suggestions/{sid}/answer",
                                  {"category": "A", "text": "已解决"}).status_code == 403
    assert users["zhujian"].post(f"/api/suggestions/{sid}/answer",
                                 {"category": "D", "text": "已解决"}).status_code == 422
    answered = users["zhujian"].post(f"/api/suggestions/{sid}/answer",
                                     {"category": "B", "text": "列入今年改造计划"}).json()
    assert answered["status"] == "answered" and answered["answer_category"] == "B"
    assert "rate" in lead.get(f"/api/suggestions/{sid}").json()["allowed_actions"]

    assert lead.post(f"/api/suggestions/{sid}/rating", {"value": "satisfied"}).status_code == 200
    assert lead.post(f"/api/suggestions/{sid}/rating", {"value": "satisfied"}).status_code == 409
    second = county.post(f"/api/suggestions/{sid}/rating", {"value": "unsatisfied"}).json()
    assert second["status"] == "second_round" and second["round"] == 2
    users["zhujian"].post(f"/api/suggestions/{sid}/answer", {"category": "B", "text": "已开工"})
    lead.post(f"/api/suggestions/{sid}/rating", {"value": "satisfied"})
    closed = county.post(f"/api/suggestions/{sid}/rating", {"value": "satisfied"}).json()
    assert closed["status"] == "archived"
    actions = [e["action"] for e in county.get(f"/api/suggestions/{sid}").json()["timeline"]]
    assert actions.count("answer") == 2 and "reopen" in actions and actions[-1] == "archive"

    book = county.get("/api/suggestion-ledger").json()
    figures = {f["key"]: f["value"] for f in book["figures"]}
    assert figures["total"] == 1 and figures["second_round"] == 1 and figures["double_satisfaction_rate"] == 1.0
    assert users["station"].get("/api/suggestion-ledger").json()["rows"][0]["id"] == sid  # D001 is S001's
    export = county.get("/api/suggestion-ledger/export").json()
    sheet = load_workbook(io.BytesIO(base64.b64decode(export["content_base64"]))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[2][2] == "关于幸福里小区路灯改造的建议" and rows[2][5] == "县住房和城乡建设局"
    assert users["cosigner"].get("/api/suggestion-ledger").status_code == 403


def test_a_livelihood_project_through_the_api(office, app, fake_wechat):
    users, _numbers = office
    county, lead = users["county"], users["lead"]
    http = lead.http
    proposer = resident(http, "", fake_wechat, "o_sapi_proposer")
    proposal = proposer.post("/api/project-proposals", {"title": "幸福里社区建老年食堂"})
    assert proposal.status_code == 201
    assert users["station"].post(f"/api/project-proposals/{proposal.json()['id']}/screen",
                                 {"accept": True}).status_code == 403  # county staff screen
    assert county.post(f"/api/project-proposals/{proposal.json()['id']}/screen",
                       {"accept": False}).status_code == 422  # a refusal says why
    assert county.post(f"/api/project-proposals/{proposal.json()['id']}/screen",
                       {"accept": True}).json()["status"] == "accepted"
    assert [p["status"] for p in proposer.get("/api/project-proposals").json()] == ["accepted"]

    vote = county.post("/api/project-votes", {"title": "2027年民生实事", "level": "county", "candidates": [
        {"code": "P1", "title": "幸福里社区建老年食堂"}, {"code": "P2", "title": "农村公路提升"}]}).json()
    path = f"/api/project-votes/{vote['id']}"
    assert county.post(path + "/close").json()["error"]["code"] == "no_quorum"  # nobody voted yet
    assert county.post(path + "/projects", {"candidate": "P1", "lead_department": "zhujian"}).status_code == 409
    assert lead.post(path + "/ballots", {"candidates": ["P1"]}).status_code == 201  # D001: the only county deputy
    tally = {t["code"]: t["chosen"] for t in county.post(path + "/close").json()["tally"]}
    assert tally == {"P1": True, "P2": False}
    assert county.post(path + "/projects", {"candidate": "P2", "lead_department": "zhujian"}).status_code == 409
    created = county.post(path + "/projects", {"candidate": "P1", "lead_department": "zhujian"})
    assert created.status_code == 201
    pid = created.json()["id"]
    assert users["jiaotong"].get(f"/api/projects/{pid}").status_code == 404
    assert proposer.get(f"/api/projects/{pid}").status_code == 404  # residents see completed ones
    zhujian = users["zhujian"]
    assert zhujian.post(f"/api/projects/{pid}/milestones", {"title": "完成设计", "due_date": "not-a-date"}
                        ).status_code == 422
    project = zhujian.post(f"/api/projects/{pid}/milestones", {"title": "完成设计", "due_date": "2099-03-01"}).json()
    assert zhujian.post(f"/api/projects/{pid}/start").json()["status"] == "in_progress"
    milestone = project["milestones"][0]["id"]
    assert zhujian.post(f"/api/projects/{pid}/progress", {"milestone": milestone}).json()["milestones"][0]["done_at"]
    assert zhujian.post(f"/api/projects/{pid}/complete", {"note": "已建成"}).json()["status"] == "completed"
    assert proposer.post(f"/api/projects/{pid}/rating", {"value": "satisfied"}).status_code == 200
    assert lead.post(f"/api/projects/{pid}/rating", {"value": "basically_satisfied"}).status_code == 200
    assert lead.post(f"/api/projects/{pid}/rating", {"value": "satisfied"}).status_code == 409
    book = county.get("/api/project-ledger", year=utc_year()).json()
    figures = {f["key"]: f["value"] for f in book["figures"]}
    assert figures["completed"] == 1 and figures["satisfaction_rate"] == 1.0
    # The 台账 in the office's layout: one row per project, the figures below.
    export = county.get("/api/project-ledger/export", year=utc_year())
    assert export.status_code == 200, export.text
    assert export.json()["filename"] == f"民生实事台账-{utc_year()}.xlsx"
    rows = list(load_workbook(io.BytesIO(base64.b64decode(export.json()["content_base64"]))).active
                .iter_rows(values_only=True))
    assert rows[1][:4] == ("序号", "项目名称", "年度", "牵头单位")
    header, row = rows[1], dict(zip(rows[1], rows[2]))
    assert row["项目名称"] == "幸福里社区建老年食堂" and row["牵头单位"] == "县住房和城乡建设局"
    assert (row["状态"], row["计划节点数"], row["已完成节点"], row["测评人次"]) == ("已完成", 1, 1, 2)
    assert (row["满意"], row["基本满意"], row["满意率"]) == (1, 1, "100.0%")
    assert len(header) == 18
    tail = {r[0]: r[1] for r in rows[4:] if r and r[0]}
    assert tail["件数"] == 1 and tail["完成率"] == "100.0%"
    assert zhujian.get("/api/project-ledger/export").status_code == 403
    assert county.get("/api/project-ledger/export", year="soon").status_code == 422


def utc_year() -> int:
    from liaison.core.clock import utcnow
    from liaison.core.workcalendar import CHINA_TZ

    return utcnow().astimezone(CHINA_TZ).year


def test_the_scheduler_task_escalates_a_reply_past_the_limit(office):
    """The scheduler's periodic task (per county, on the one clock) escalates an unanswered suggestion."""
    from datetime import timedelta

    from jobs import tasks
    from liaison.core import clock
    from liaison.suggestion.models import Suggestion

    users, numbers = office
    lead, county = users["lead"], users["county"]
    sid = lead.post("/api/suggestions", {"title": "关于路灯的建议", "problems": "路灯坏", "proposals": "更换",
                                         "cases": numbers}).json()["id"]
    lead.post(f"/api/suggestions/{sid}/submit")
    for _ in range(3):
        county.post(f"/api/suggestions/{sid}/review", {"decision": "pass"})
    deadline = county.post(f"/api/suggestions/{sid}/assign", {"lead_department": "zhujian"}).json()["deadline"]
    assert "逾期" not in str(users["zhujian"].get("/api/notices").json())
    with db.session_scope() as session:
        due = session.scalar(select(Suggestion.deadline).where(Suggestion.public_id == sid))
    clock.set_clock(lambda: due + timedelta(minutes=1))
    try:
        assert tasks.run_suggestion_timers() == 1
        assert tasks.run_suggestion_timers() == 0  # nothing more is due until level 2
        detail = county.get(f"/api/suggestions/{sid}").json()
    finally:
        clock.set_clock(None)
    assert detail["overdue"] is True and detail["deadline"] == deadline
    assert [e["action"] for e in detail["timeline"]].count("escalate") == 1
    assert "逾期未答复督办" in str(users["zhujian"].get("/api/notices").json())
