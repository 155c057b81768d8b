"""并单 (merge) and 不予受理 (reject) by staff through the API: reasons required, both timelines
written, the residents told in plain Chinese, and foreign ids, wrong roles and illegal states refused
without changing anything."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from liaison.case.models import Case, CaseEvent, CaseFollower
from liaison.core import db
from liaison.messaging.models import OutboxMessage
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident


@pytest.fixture
def people(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    county = bootstrap_staff(http, "", fake_wechat, "o_mr_county")
    return {
        "county": county,
        "station": make_account(county, fake_wechat, "o_mr_station", role="staff", name="青山站",
                                station_code="S002"),
        "deputy": make_account(county, fake_wechat, "o_mr_deputy", role="deputy", name="张建华",
                               deputy_code="D001"),
        "first": resident(http, "", fake_wechat, "o_mr_first"),
        "second": resident(http, "", fake_wechat, "o_mr_second"),
    }


def submit(user, text, **extra):
    response = user.post("/api/cases", {"text": text, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def counts():
    with db.session_scope() as session:
        return (session.scalar(select(func.count()).select_from(CaseEvent)),
                session.scalar(select(func.count()).select_from(OutboxMessage)),
                sorted(session.execute(select(Case.number, Case.status)).all()))


def resident_texts(case_public_id):
    with db.session_scope() as session:
        case_id = session.scalar(select(Case.id).where(Case.public_id == case_public_id))
        return [row.payload["text"] for row in session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == case_id, OutboxMessage.kind == "resident_text"))]


def test_staff_merge_a_duplicate_into_another_case(people):
    main = submit(people["first"], "东关街的下水道堵了，污水外溢")
    duplicate = submit(people["second"], "东关街排水不畅，下水道冒水")
    county = people["county"]
    assert "merge" in county.get(f"/api/cases/{duplicate['id']}").json()["actions"]

    # By case number (the id works too); the reason is required.
    merged = county.post(f"/api/cases/{duplicate['id']}/merge",
                         {"into": main["number"], "reason": "同一处下水道"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["case"]["status"] == "merged" and body["case"]["actions"] == []
    assert body["event"]["action"] == "merge" and body["event"]["detail"]["reason"] == "同一处下水道"
    assert body["event"]["detail"]["into"] == main["number"]
    main_timeline = county.get(f"/api/cases/{main['id']}").json()["timeline"]
    assert main_timeline[-1]["action"] == "merged_in"
    assert main_timeline[-1]["detail"] == {"merged_case": duplicate["number"], "reason": "同一处下水道"}

    # The merged case's resident is told, in plain words, and now follows the main case.
    (told,) = resident_texts(duplicate["id"])
    assert f"与诉求 {main['number']}" in told and "合并办理" in told and "办理进展" in told
    assert people["second"].get(f"/api/cases/{main['id']}").status_code == 200
    with db.session_scope() as session:
        main_id = session.scalar(select(Case.id).where(Case.public_id == main["id"]))
        assert session.scalar(select(func.count()).select_from(CaseFollower).where(
            CaseFollower.case_id == main_id)) == 1

    # A merged case cannot be merged again.
    again = county.post(f"/api/cases/{duplicate['id']}/merge", {"into": main["id"], "reason": "再并"})
    assert again.status_code == 409


def test_merge_refusals_change_nothing(people):
    main = submit(people["first"], "东关街的下水道堵了，污水外溢")
    duplicate = submit(people["second"], "东关街排水不畅，下水道冒水")
    qingshan = submit(people["second"], "青山村村口的路灯坏了", grid_code="G003")
    county, station = people["county"], people["station"]
    before = counts()
    url = f"/api/cases/{duplicate['id']}/merge"
    # Not staff → 403; the body is not even looked at.
    assert people["deputy"].post(url, {"into": main["number"], "reason": "同一处"}).status_code == 403
    assert people["second"].post(url, {"into": main["number"], "reason": "同一处"}).status_code == 403
    # Missing or blank reason → 422.
    for body in ({"into": main["number"]}, {"into": main["number"], "reason": ""},
                 {"into": main["number"], "reason": "   "}):
        response = county.post(url, body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == "reason"
    # An unknown target, or one outside the caller's jurisdiction → 404.
    assert county.post(url, {"into": "2099-999999", "reason": "同一处"}).status_code == 404
    response = station.post(f"/api/cases/{qingshan['id']}/merge", {"into": main["number"], "reason": "同一处"})
    assert response.status_code == 404 and response.json()["error"]["field"] == "into"
    # The case itself outside the jurisdiction → 404.
    assert station.post(url, {"into": qingshan["number"], "reason": "同一处"}).status_code == 404
    # Into itself → 409; into a case that is no longer open → 409.
    assert county.post(url, {"into": duplicate["number"], "reason": "同一处"}).status_code == 409
    assert counts() == before
    assert county.post(f"/api/cases/{qingshan['id']}/reject", {"reason": "不属于受理范围"}).status_code == 200
    before = counts()
    assert county.post(url, {"into": qingshan["id"], "reason": "同一处"}).status_code == 409
    assert counts() == before


def test_staff_reject_with_a_reason_the_resident_is_told(people):
    case = submit(people["first"], "幸福里小区3号楼门口的路灯坏了")
    county = people["county"]
    url = f"/api/cases/{case['id']}/reject"
    before = counts()
    assert people["deputy"].post(url, {"reason": "不属于受理范围"}).status_code == 403
    assert people["first"].post(url, {"reason": "不属于受理范围"}).status_code == 403
    assert county.post(url, {}).status_code == 422
    assert county.post(url, {"reason": "  "}).status_code == 422
    assert county.post("/api/cases/AAAAAAAAAAAAAAAA/reject", {"reason": "不属于受理范围"}).status_code == 404
    assert people["station"].post(url, {"reason": "不属于受理范围"}).status_code == 404  # another station's
    assert counts() == before

    rejected = county.post(url, {"reason": "属于司法程序，请向县人民法院反映"})
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["case"]["status"] == "rejected" and body["event"]["action"] == "reject"
    assert body["event"]["detail"]["reason"] == "属于司法程序，请向县人民法院反映"
    (told,) = resident_texts(case["id"])
    assert "不予受理" in told and "县人民法院" in told
    mine = people["first"].get(f"/api/cases/{case['id']}").json()
    assert mine["status_label"] == "不予受理" and mine["timeline"][-1]["action"] == "reject"
    # Rejected is final: neither again nor a merge.
    assert county.post(url, {"reason": "再次"}).status_code == 409


def test_reject_is_refused_once_the_case_is_being_handled_further(people):
    case = submit(people["first"], "幸福里小区3号楼门口的路灯坏了")
    assert people["deputy"].post(f"/api/cases/{case['id']}/accept").status_code == 200
    assert people["deputy"].post(f"/api/cases/{case['id']}/reply", {"text": "明天修"}).status_code == 200
    county = people["county"]
    assert "reject" not in county.get(f"/api/cases/{case['id']}").json()["actions"]
    assert county.post(f"/api/cases/{case['id']}/reject", {"reason": "不属于受理范围"}).status_code == 409
