"""The API contract: the OpenAPI document matches the routes, errors are uniform JSON with the right
statuses, pagination and idempotency keys behave, and property-based tests generated from the document
(schemathesis) find no server error and no response that breaks the document."""
from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from liaison.case.models import Case, ClassifierCorrection, Notice
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.workcalendar import add_working_days
from liaison.messaging.models import OutboxMessage
from liaison.people import service as accounts
from liaison.people.models import Resident
from miniprogram_api.openapi import openapi_path
from tests.api_fixtures import FlaskHttp, bind_with_code, bootstrap_staff, make_account, resident

LAMP = "幸福里小区3号楼门口的路灯坏了"


@pytest.fixture
def http(app):
    return FlaskHttp(app.test_client())


@pytest.fixture
def people(http, fake_wechat):
    staff = bootstrap_staff(http, "", fake_wechat, "o_c_staff")
    return {
        "staff": staff,
        "deputy": make_account(staff, fake_wechat, "o_c_deputy", role="deputy", name="张建华",
                               deputy_code="D001"),
        "department": make_account(staff, fake_wechat, "o_c_dept", role="department", name="住建",
                                   department_code="zhujian"),
        "resident": resident(http, "", fake_wechat, "o_c_resident"),
    }


def new_case(people, text=LAMP):
    response = people["resident"].post("/api/cases", {"text": text})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# ------------------------------------------------------------------------------------------ document
def test_openapi_documents_exactly_the_routes(app, http):
    document = http.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            routed |= {(m, openapi_path(rule.rule)) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)


# ------------------------------------------------------------------------------------------ errors
def test_error_statuses_and_shape(http, people):
    resident_user = people["resident"]
    # 401 without a token
    response = http.get("/api/cases")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    # 400 invalid JSON
    response = http.post("/api/cases", data=b"{not json", headers={
        "Authorization": f"Bearer {resident_user.token}", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    # 422 validation, naming the field
    response = resident_user.post("/api/cases", {"text": ""})
    error = response.json()["error"]
    assert response.status_code == 422 and error["field"] == "text" and error["message"]
    response = resident_user.post("/api/cases", {"text": "x", "colour": "red"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "colour"
    # 403 for a role that may not use the endpoint
    response = resident_user.post("/api/accounts", {"role": "staff", "name": "x"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "role_forbidden"
    # 404 for an unknown route and an unknown case, JSON too
    assert http.get("/api/nothing-here").json()["error"]["code"] == "not_found"
    assert resident_user.get("/api/cases/unknown-id").status_code == 404
    # 409 for an illegal lifecycle transition
    case_id = new_case(people)
    assert people["deputy"].post(f"/api/cases/{case_id}/close", {"summary": "x"}).status_code == 409
    response = resident_user.post(f"/api/cases/{case_id}/rating", {"value": "satisfied"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "illegal_transition"
    # 422 for a bad enum value
    response = resident_user.post(f"/api/cases/{case_id}/rating", {"value": "great"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "value"


def test_expired_and_forged_tokens(app, http, people):
    settings = app.config["SETTINGS"]
    with db.session_scope() as session:
        principal = accounts.login(session, "o_c_resident")
        token = accounts.issue_token(settings.secret_key, principal)
        forged = accounts.issue_token("another-secret", principal)
    assert http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert http.get("/api/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    with db.session_scope() as session:
        assert accounts.principal_from_token(session, settings.secret_key, token, max_age=-1) is None


def test_login_does_not_leak_session_key(http, fake_wechat):
    fake_wechat.register_code("c-leak", "o_leak", session_key="SECRET_SESSION_KEY")
    response = http.post("/api/login", json={"code": "c-leak"})
    assert response.status_code == 200 and "SECRET_SESSION_KEY" not in response.text
    assert "o_leak" not in response.text
    again = http.post("/api/login", json={"code": "c-leak"})  # codes are single-use
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_code"


# ------------------------------------------------------------------------------------------ pagination
def test_pagination(people):
    for i in range(3):
        new_case(people, f"{LAMP}，第{i}次反映")
    first = people["resident"].get("/api/cases", page=1, page_size=2).json()
    second = people["resident"].get("/api/cases", page=2, page_size=2).json()
    assert (first["page"], first["page_size"], first["total"], len(first["items"])) == (1, 2, 3, 2)
    assert len(second["items"]) == 1
    assert not {c["id"] for c in first["items"]} & {c["id"] for c in second["items"]}
    assert people["resident"].get("/api/cases", page_size=500).status_code == 422
    assert people["resident"].get("/api/cases", status="nonsense").status_code == 422
    assert people["deputy"].get("/api/cases", status="assigned,accepted").json()["total"] == 3
    assert people["deputy"].get("/api/cases", overdue="true").json()["total"] == 0


# ------------------------------------------------------------------------------------------ idempotency
def test_idempotency_keys(people):
    case_id = new_case(people)
    deputy = people["deputy"]
    first = deputy.post(f"/api/cases/{case_id}/accept", idempotency_key="k1")
    replay = deputy.post(f"/api/cases/{case_id}/accept", idempotency_key="k1")
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json() and replay.headers.get("Idempotent-Replayed") == "true"
    # Without the key the second accept is a real, illegal, second action.
    assert deputy.post(f"/api/cases/{case_id}/accept").status_code == 409
    # The same key for another request is refused; another user's same key is independent.
    other = deputy.post(f"/api/cases/{case_id}/reply", {"text": "好"}, idempotency_key="k1")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    staff = people["staff"].post(f"/api/cases/{case_id}/urge", {}, idempotency_key="k1")
    assert staff.status_code == 409  # not replayed from the deputy's key: urging needs a department


# ------------------------------------------------------------------------------------------ features
def test_consents_count_credits(people):
    user = people["resident"]
    user.post("/api/consents", {"results": {"tmpl-a": "accept", "tmpl-b": "reject"}})
    items = user.post("/api/consents", {"results": {"tmpl-a": "accept"}}).json()["items"]
    assert items == [{"template_id": "tmpl-a", "last_result": "accept", "credits": 2, "accepted_total": 2}]
    listed = {c["template_id"]: c for c in user.get("/api/consents").json()["items"]}
    assert listed["tmpl-b"]["credits"] == 0 and listed["tmpl-a"]["credits"] == 2
    with db.session_scope() as session:
        rid = session.scalar(select(Resident.id).where(Resident.mp_openid == "o_c_resident"))
        assert accounts.spend_consent(session, template_id="tmpl-a", resident_id=rid)
    assert user.get("/api/consents").json()["items"][0]["credits"] == 1
    user.post("/api/consents", {"results": {"tmpl-a": "ban"}})
    assert user.get("/api/consents").json()["items"][0]["credits"] == 0
    assert user.post("/api/consents", {"results": {"tmpl-a": "maybe"}}).status_code == 422


def test_extension_approval_moves_the_deadline_by_working_days(people):
    case_id = new_case(people)
    deputy, department, staff = people["deputy"], people["department"], people["staff"]
    deputy.post(f"/api/cases/{case_id}/dispatch", {"department_code": "zhujian", "working_days": 5})
    request = department.post(f"/api/cases/{case_id}/extension-requests",
                              {"working_days": 3, "reason": "需要采购灯具"})
    assert request.status_code == 201, request.text
    ext = request.json()
    assert department.post(f"/api/cases/{case_id}/extension-requests",
                           {"working_days": 2, "reason": "再延"}).status_code == 409  # one pending
    assert staff.get("/api/extension-requests", status="pending").json()["total"] == 1
    with db.session_scope() as session:
        before = session.scalar(select(Case.deadline).where(Case.public_id == case_id))
    approved = staff.post(f"/api/extension-requests/{ext['id']}/approve", {"note": "同意"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    with db.session_scope() as session:
        after = session.scalar(select(Case.deadline).where(Case.public_id == case_id))
    assert after == add_working_days(before, 3)
    timeline = staff.get(f"/api/cases/{case_id}").json()["timeline"]
    assert [e["action"] for e in timeline][-2:] == ["extension_requested", "extension_approved"]
    assert staff.post(f"/api/extension-requests/{ext['id']}/reject", {}).status_code == 409
    notices = department.get("/api/notices").json()["items"]
    assert notices[0]["kind"] == "extension_approved" and notices[0]["case_id"] == case_id
    # The resident does not see the internal request.
    resident_view = people["resident"].get(f"/api/cases/{case_id}").json()["timeline"]
    assert "extension_requested" not in [e["action"] for e in resident_view]


def test_urge_ask_information_and_category_correction(people):
    case_id = new_case(people)
    deputy, department = people["deputy"], people["department"]
    asked = deputy.post(f"/api/cases/{case_id}/information-requests", {"question": "是几号楼？"})
    assert asked.status_code == 200 and asked.json()["event"]["action"] == "request_information"
    with db.session_scope() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "resident_text"))
        assert "是几号楼" in row.payload["text"]
    added = people["resident"].post(f"/api/cases/{case_id}/information", {"text": "3号楼东门"})
    assert added.status_code == 200 and added.json()["event"]["action"] == "add_information"

    corrected = deputy.post(f"/api/cases/{case_id}/category", {"category": "交通运输", "reason": "道路照明"})
    assert corrected.status_code == 200 and corrected.json()["case"]["category"] == "交通运输"
    assert deputy.post(f"/api/cases/{case_id}/category", {"category": "不存在"}).status_code == 422
    with db.session_scope() as session:
        correction = session.scalar(select(ClassifierCorrection))
        assert correction.new_category == "交通运输" and LAMP in correction.text

    assert deputy.post(f"/api/cases/{case_id}/urge", {}).status_code == 403  # not with a department
    deputy.post(f"/api/cases/{case_id}/dispatch", {"department_code": "zhujian"})
    urged = deputy.post(f"/api/cases/{case_id}/urge", {"note": "群众反映强烈"})
    assert urged.status_code == 200 and urged.json()["event"]["action"] == "urge"
    with db.session_scope() as session:
        notice = session.scalar(select(Notice).where(Notice.kind == "urge"))
        assert notice is not None and "群众反映强烈" in notice.text
    assert department.get("/api/notices").json()["items"][0]["kind"] == "urge"


def test_resident_withdraws_and_staff_reassigns(people):
    case_id = new_case(people)
    staff = people["staff"]
    moved = staff.post(f"/api/cases/{case_id}/reassign", {"deputy_code": "D002", "reason": "张代表出差"})
    assert moved.status_code == 200 and "李秀英" in moved.json()["case"]["handler"]
    withdrawn = people["resident"].post(f"/api/cases/{case_id}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["case"]["status"] == "withdrawn"
    assert people["resident"].post(f"/api/cases/{case_id}/withdraw").status_code == 409


def test_binding_codes_are_single_use(http, people, fake_wechat):
    created = people["staff"].post("/api/accounts", {"role": "deputy", "name": "王德明",
                                                     "deputy_code": "D003"}).json()
    code = created["binding_code"]
    first = resident(http, "", fake_wechat, "o_c_wang")
    assert first.post("/api/bind", {"binding_code": code}).status_code == 200
    second = resident(http, "", fake_wechat, "o_c_other")
    assert second.post("/api/bind", {"binding_code": code}).status_code == 422
    # Logging in again with the bound WeChat identity gives the deputy role.
    fake_wechat.register_code("c-wang-2", "o_c_wang")
    assert http.post("/api/login", json={"code": "c-wang-2"}).json()["me"]["role"] == "deputy"
    with db.session_scope() as session:
        with pytest.raises(accounts.AccountError):
            accounts.create_first_staff(session, "第二个")


def test_unionid_links_mini_program_resident_to_official_account_resident(http, fake_wechat):
    # First seen in the mini-program without a unionid, with a case ...
    early = resident(http, "", fake_wechat, "o_mp_link")
    case_id = early.post("/api/cases", {"text": LAMP}).json()["id"]
    # ... and separately as an official-account follower whose unionid is known.
    with db.session_scope() as session:
        session.add(Resident(oa_openid="o_oa_link", unionid="u_link", last_message_at=utcnow()))
    later = resident(http, "", fake_wechat, "o_mp_link", unionid="u_link")
    assert later.get(f"/api/cases/{case_id}").status_code == 200
    with db.session_scope() as session:
        rows = session.scalars(select(Resident).where(
            (Resident.unionid == "u_link") | (Resident.mp_openid == "o_mp_link"))).all()
        assert len(rows) == 1 and rows[0].oa_openid == "o_oa_link"
        case = session.scalar(select(Case).where(Case.public_id == case_id))
        assert case.resident_id == rows[0].id
    assert early.get("/api/me").status_code == 401  # the merged-away row's token is gone


# ------------------------------------------------------------------------------------------ property-based
@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture
def fuzz_world(app, people, fake_wechat):
    """Tokens per role and a real case id, so generated requests also reach real objects."""
    case_id = new_case(people)
    tokens = {role: user.token for role, user in people.items()}
    tokens["city"] = _city_staff(people["staff"].http, fake_wechat).token
    return {"tokens": tokens, "case_id": case_id}


def _city_staff(http, fake_wechat):
    """A city staff member of a city holding the default county, which grants them personal data."""
    from liaison.core import tenant
    from liaison.tenancy import service as tenancy

    with tenant.use(tenant.all_counties("a city for the fuzzing")), db.session_scope() as session:
        county = tenancy.by_code(session, "default")
        county.settings = {tenancy.CITY_PERSONAL_DATA: True}
        city_id = tenancy.add_city(session, "fuzz", "市", ["default"]).id
    with db.session_scope() as session:
        _account, code = accounts.create_city_staff(session, "市人大", city_id)
    return bind_with_code(http, "", fake_wechat, "o_c_city", code)


schema = schemathesis.pytest.from_fixture("api_schema")
_turn = itertools.count()


@schema.parametrize()
# 20 generated requests per operation: 115 operations now; the suite must stay near fifteen minutes.
@hypothesis_settings(max_examples=20, deadline=None,
                     suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_server_error(case, fuzz_world):
    roles = case.operation.definition.raw.get("x-roles")
    turn = next(_turn)
    headers = {}
    if roles:
        headers["Authorization"] = "Bearer " + fuzz_world["tokens"][roles[turn % len(roles)]]
    if case.path_parameters and "public_id" in case.path_parameters and turn % 2 == 0:
        case.path_parameters["public_id"] = fuzz_world["case_id"]
    case.call_and_validate(headers=headers, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance])


def test_two_models_with_one_name_are_refused_in_the_document():
    """Models are components by name: a second, different model of the same name would silently be
    described as the first (the points ledger's fields checked against the suggestion ledger's)."""
    from miniprogram_api.openapi import _register

    components = {}
    _register(components, "LedgerOut", {"properties": {"a": {}}})
    _register(components, "LedgerOut", {"properties": {"a": {}}})  # the same model twice is one
    with pytest.raises(ValueError, match="LedgerOut"):
        _register(components, "LedgerOut", {"properties": {"b": {}}})
