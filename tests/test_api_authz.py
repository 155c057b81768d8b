"""Authorization sweep: EVERY /api endpoint (taken from the app's url_map) with every role, without a
token, with foreign ids (another grid's, resident's, department's or station's case) and unknown ids.

Roles not allowed → 403; allowed roles with a foreign or unknown id → 404 (existence is not leaked) and
nothing changes; allowed roles on their own objects → success. A new endpoint without an entry in
SWEEP fails `test_every_endpoint_is_swept`.
"""
from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from liaison.case.models import CaseEvent, ExtensionRequest
from liaison.core import db
from liaison.messaging.models import OutboxMessage
from liaison.points import service as points
from miniprogram_api.openapi import openapi_path
from tests import suggestion_fixtures
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident

RESIDENT, DEPUTY, DEPARTMENT = "resident", "deputy", "department"
STATION_STAFF, COUNTY_STAFF = "staff_station", "staff_county"
EVERYONE = frozenset({RESIDENT, DEPUTY, DEPARTMENT, STATION_STAFF, COUNTY_STAFF})
STAFF = frozenset({STATION_STAFF, COUNTY_STAFF})
HANDLERS = frozenset({DEPUTY, DEPARTMENT})
UNKNOWN_ID = "AAAAAAAAAAAAAAAA"
# A real 1×1 PNG: an upload that would be stored if the case were the caller's.
PNG_BASE64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
_n = itertools.count(1)


def _code(prefix):
    return f"{prefix}{next(_n):04d}"


# (method, path) → (allowed roles, kind of the id in the path or None, body factory or None).
# "public" endpoints need no token.
SWEEP = {
    ("POST", "/api/login"): ("public", None, None),
    ("GET", "/api/openapi.json"): ("public", None, None),
    ("POST", "/api/bind"): ({RESIDENT}, None, lambda: {"binding_code": "NOSUCHCODE"}),
    ("GET", "/api/me"): (EVERYONE, None, None),
    ("GET", "/api/consents"): (EVERYONE, None, None),
    ("POST", "/api/consents"): (EVERYONE, None, lambda: {"results": {"tmpl-1": "accept"}}),
    ("GET", "/api/cases"): (EVERYONE, None, None),
    ("POST", "/api/cases"): ({RESIDENT}, None, lambda: {"text": "青山村的路灯坏了"}),
    ("POST", "/api/snapshots"): ({DEPUTY}, None, lambda: {"text": "青山村的井盖丢了"}),
    # Issue 18: Open311 partner keys (county staff only); the Open311 routes have their own sweep
    # (tests/test_open311.py).
    ("GET", "/api/open311/partners"): ({COUNTY_STAFF}, None, None),
    ("POST", "/api/open311/partners"): ({COUNTY_STAFF}, None, lambda: {"name": "县12345热线"}),
    ("POST", "/api/open311/partners/{public_id}/revoke"): ({COUNTY_STAFF}, "partner", None),
    ("GET", "/api/cases/{public_id}"): (EVERYONE, "case", None),
    ("POST", "/api/cases/{public_id}/information"): ({RESIDENT}, "case", lambda: {"text": "补充一下"}),
    ("POST", "/api/cases/{public_id}/rating"): ({RESIDENT}, "case", lambda: {"value": "satisfied"}),
    ("POST", "/api/cases/{public_id}/withdraw"): ({RESIDENT}, "case", None),
    ("POST", "/api/cases/{public_id}/accept"): (HANDLERS, "case", None),
    ("POST", "/api/cases/{public_id}/reply"): (HANDLERS, "case", lambda: {"text": "正在处理"}),
    ("POST", "/api/cases/{public_id}/information-requests"): (HANDLERS, "case",
                                                              lambda: {"question": "具体在几号楼？"}),
    ("POST", "/api/cases/{public_id}/dispatch"): ({DEPUTY} | STAFF, "case",
                                                  lambda: {"department_code": "jiaotong"}),
    ("POST", "/api/cases/{public_id}/urge"): ({DEPUTY} | STAFF, "case", lambda: {"note": "请加快"}),
    # 三级联动 (tests/test_city_referrals.py): county staff hand a case up to their city.
    ("POST", "/api/cases/{public_id}/hand-up"): (STAFF, "case", lambda: {"reason": "需市级协调"}),
    ("POST", "/api/cases/{public_id}/close"): (HANDLERS, "case", lambda: {"summary": "已处理"}),
    ("POST", "/api/cases/{public_id}/category"): ({DEPUTY} | STAFF, "case",
                                                  lambda: {"category": "交通运输"}),
    ("POST", "/api/cases/{public_id}/return"): ({DEPARTMENT}, "case", lambda: {"reason": "职能不符"}),
    ("POST", "/api/cases/{public_id}/extension-requests"): ({DEPARTMENT}, "case",
                                                            lambda: {"working_days": 3, "reason": "需采购"}),
    ("POST", "/api/cases/{public_id}/reassign"): (STAFF, "case",
                                                  lambda: {"department_code": "jiaotong", "reason": "改派"}),
    ("POST", "/api/cases/{public_id}/merge"): (STAFF, "case",
                                               lambda: {"into": "2026-000001", "reason": "同一处路灯"}),
    ("POST", "/api/cases/{public_id}/reject"): (STAFF, "case", lambda: {"reason": "不属于受理范围"}),
    ("GET", "/api/extension-requests"): ({DEPARTMENT} | STAFF, None, None),
    ("POST", "/api/extension-requests/{public_id}/approve"): (STAFF, "extension", lambda: {}),
    ("POST", "/api/extension-requests/{public_id}/reject"): (STAFF, "extension", lambda: {"note": "否"}),
    ("GET", "/api/notices"): (HANDLERS | STAFF, None, None),
    ("GET", "/api/keyword-rules"): (STAFF, None, None),
    ("POST", "/api/keyword-rules"): ({COUNTY_STAFF}, None,
                                     lambda: {"keyword": "路灯", "category": "城乡建设", "weight": 1.0}),
    ("POST", "/api/keyword-rules/{public_id}/remove"): ({COUNTY_STAFF}, "keyword_rule", None),
    ("GET", "/api/classifier-corrections"): (STAFF, None, None),
    ("GET", "/api/departments"): ({DEPUTY, DEPARTMENT} | STAFF, None, None),
    ("POST", "/api/departments"): ({COUNTY_STAFF}, None, lambda: {"code": _code("dep"), "name": "县水利局"}),
    ("GET", "/api/stations"): (STAFF, None, None),
    ("POST", "/api/stations"): ({COUNTY_STAFF}, None, lambda: {"code": _code("S"), "name": "新联络站"}),
    ("GET", "/api/grids"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/grids"): ({COUNTY_STAFF}, None, lambda: {"code": _code("G"), "name": "新网格"}),
    ("GET", "/api/deputies"): (STAFF, None, None),
    ("POST", "/api/deputies"): ({COUNTY_STAFF}, None,
                                lambda: {"code": _code("D"), "name": "赵代表", "level": "county"}),
    ("GET", "/api/accounts"): (STAFF, None, None),
    ("POST", "/api/accounts"): ({COUNTY_STAFF}, None,
                                lambda: {"role": "department", "name": "交通局 王", "department_code": "jiaotong"}),
    ("POST", "/api/accounts/{public_id}/binding-code"): ({COUNTY_STAFF}, "account", None),
    # Hardening: staff disable (and enable again) the accounts they manage; disabling ends sessions.
    ("POST", "/api/accounts/{public_id}/disable"): (STAFF, "account", None),
    ("POST", "/api/accounts/{public_id}/enable"): (STAFF, "account", None),
    # Issue 6: registry import/export, find-your-deputy codes, broadcasts, surveys, livelihood votes.
    ("POST", "/api/registry/import"): ({COUNTY_STAFF}, None, lambda: _registry_csv()),
    ("GET", "/api/registry/export"): (STAFF, None, None),
    ("GET", "/api/grids/{public_id}/qrcode"): ({DEPUTY} | STAFF, "grid", None),
    ("GET", "/api/deputies/{public_id}/qrcode"): ({DEPUTY} | STAFF, "deputy", None),
    ("GET", "/api/stations/{public_id}/qrcode"): (STAFF, "station", None),
    ("GET", "/api/qrcodes/usage"): (STAFF, None, None),
    ("GET", "/api/deputies/{public_id}/notice-board"): ({DEPUTY} | STAFF, "deputy", None),
    ("POST", "/api/broadcasts"): ({DEPUTY} | STAFF, None, lambda: {"title": "停水通知", "text": "明日停水"}),
    ("GET", "/api/broadcasts"): ({DEPUTY} | STAFF, None, None),
    ("GET", "/api/broadcasts/{public_id}"): ({DEPUTY} | STAFF, "broadcast", None),
    ("GET", "/api/broadcasts/{public_id}/recipients"): ({DEPUTY} | STAFF, "broadcast", None),
    ("POST", "/api/broadcasts/{public_id}/approve"): (STAFF, "broadcast", None),
    ("POST", "/api/broadcasts/{public_id}/cancel"): ({DEPUTY} | STAFF, "broadcast", None),
    ("POST", "/api/broadcasts/{public_id}/resume"): (STAFF, "broadcast", None),
    ("GET", "/api/broadcast-inbox"): ({RESIDENT}, None, None),
    ("POST", "/api/surveys"): ({DEPUTY, COUNTY_STAFF}, None, lambda: {"kind": "report", "deputy_code": "D001"}),
    ("GET", "/api/surveys/{public_id}"): (EVERYONE, "survey", None),
    ("POST", "/api/surveys/{public_id}/votes"): ({RESIDENT}, "survey", lambda: {"value": "satisfied"}),
    ("GET", "/api/surveys/{public_id}/qrcode"): ({DEPUTY} | STAFF, "survey", None),
    ("GET", "/api/survey-results"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/project-votes"): ({COUNTY_STAFF}, None, lambda: {
        "title": "2027年民生实事", "level": "county",
        "candidates": [{"code": "P1", "title": "老旧小区改造"}, {"code": "P2", "title": "农村公路提升"}]}),
    ("GET", "/api/project-votes"): ({DEPUTY} | STAFF, None, None),
    ("GET", "/api/project-votes/{public_id}"): ({DEPUTY} | STAFF, "project_vote", None),
    ("POST", "/api/project-votes/{public_id}/ballots"): ({DEPUTY}, "project_vote", lambda: {"candidates": ["P1"]}),
    ("POST", "/api/project-votes/{public_id}/close"): (STAFF, "project_vote", None),
    # Issue 19: 代表建议 (suggestions), 问题清单 entries, the suggestion 台账.
    ("GET", "/api/suggestion-concentrations"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/problem-entries"): ({DEPUTY} | STAFF, None, lambda: {"title": "路灯集中损坏"}),
    ("GET", "/api/problem-entries"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/problem-entries/{public_id}/cases"): ({DEPUTY} | STAFF, "problem_entry",
                                                        lambda: {"cases": ["2026-000001"]}),
    ("POST", "/api/suggestions"): ({DEPUTY}, None,
                                   lambda: {"title": "关于路灯的建议", "problems": "路灯坏", "proposals": "更换"}),
    ("GET", "/api/suggestions"): (HANDLERS | STAFF, None, None),
    ("GET", "/api/suggestions/{public_id}"): (HANDLERS | STAFF, "suggestion", None),
    ("POST", "/api/suggestions/{public_id}/submit"): ({DEPUTY}, "suggestion", None),
    ("POST", "/api/suggestions/{public_id}/review"): (STAFF, "suggestion", lambda: {"decision": "pass"}),
    ("POST", "/api/suggestions/{public_id}/assign"): (STAFF, "suggestion",
                                                      lambda: {"lead_department": "zhujian"}),
    ("POST", "/api/suggestions/{public_id}/supervision"): (STAFF, "suggestion",
                                                           lambda: {"kind": "letter", "note": "请加快"}),
    ("POST", "/api/suggestions/{public_id}/extension"): (STAFF, "suggestion",
                                                         lambda: {"months": 1, "reason": "需协调"}),
    ("POST", "/api/suggestions/{public_id}/answer"): ({DEPARTMENT}, "suggestion",
                                                      lambda: {"category": "A", "text": "已解决"}),
    ("POST", "/api/suggestions/{public_id}/rating"): ({DEPUTY} | STAFF, "suggestion",
                                                      lambda: {"value": "satisfied"}),
    ("POST", "/api/suggestions/{public_id}/plan-completed"): ({DEPARTMENT} | STAFF, "suggestion",
                                                              lambda: {"note": "已落实"}),
    ("GET", "/api/suggestion-ledger"): (STAFF, None, None),
    ("GET", "/api/suggestion-ledger/export"): (STAFF, None, None),
    # Issue 19: 民生实事 after the vote: 征集, projects, milestones, 三色, 测评, the project 台账.
    ("POST", "/api/project-proposals"): ({RESIDENT, DEPUTY}, None, lambda: {"title": "建设社区食堂"}),
    ("GET", "/api/project-proposals"): ({RESIDENT, DEPUTY} | STAFF, None, None),
    ("POST", "/api/project-proposals/{public_id}/screen"): (STAFF, "project_proposal",
                                                            lambda: {"accept": True}),
    ("POST", "/api/project-votes/{public_id}/projects"): (STAFF, "project_vote",
                                                         lambda: {"candidate": "P1", "lead_department": "zhujian"}),
    ("GET", "/api/projects"): (EVERYONE, None, None),
    ("GET", "/api/projects/{public_id}"): (EVERYONE, "project", None),
    ("POST", "/api/projects/{public_id}/milestones"): ({DEPARTMENT} | STAFF, "project",
                                                       lambda: {"title": "完成招标", "due_date": "2027-03-01"}),
    ("POST", "/api/projects/{public_id}/start"): ({DEPARTMENT} | STAFF, "project", None),
    ("POST", "/api/projects/{public_id}/progress"): ({DEPARTMENT}, "project", lambda: {"milestone": UNKNOWN_ID}),
    ("POST", "/api/projects/{public_id}/complete"): ({DEPARTMENT} | STAFF, "project", lambda: {"note": "完成"}),
    ("POST", "/api/projects/{public_id}/rating"): ({RESIDENT, DEPUTY}, "project", lambda: {"value": "satisfied"}),
    ("GET", "/api/project-ledger"): (STAFF, None, None),
    ("GET", "/api/project-ledger/export"): (STAFF, None, None),

    # Issue 17: duty rota, swaps, check-ins, grid visits.
    ("GET", "/api/shifts"): (EVERYONE, None, None),
    ("POST", "/api/shifts"): (STAFF, None, lambda: {
        "station_code": "S002", "day": (date.today() + timedelta(days=7)).isoformat(), "kind": "director",
        "deputy_codes": ["D003"]}),
    ("GET", "/api/shifts/{public_id}"): ({DEPUTY, DEPARTMENT} | STAFF, "shift", None),
    ("POST", "/api/shifts/{public_id}/cancel"): (STAFF, "shift", lambda: {"reason": "联络站停电"}),
    ("POST", "/api/shifts/{public_id}/check-in"): ({DEPUTY, DEPARTMENT}, "shift", lambda: {"station_code": "S001"}),
    ("POST", "/api/shifts/{public_id}/swaps"): ({DEPUTY}, "shift", lambda: {"substitute_code": "D002",
                                                                           "reason": "外出开会"}),
    ("GET", "/api/shift-swaps"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/shift-swaps/{public_id}/approve"): (STAFF, "swap", lambda: {}),
    ("POST", "/api/shift-swaps/{public_id}/reject"): (STAFF, "swap", lambda: {"note": "人手不足"}),
    ("GET", "/api/duty-rules"): (STAFF, None, None),
    ("POST", "/api/duty-rules"): (STAFF, None, lambda: {"station_code": "S002", "weekday": 2, "slots": 1,
                                                        "deputy_codes": ["D003"]}),
    ("POST", "/api/grid-visits"): ({DEPUTY}, None, lambda: {"grid_code": "G001", "note": "走访幸福里"}),
    ("GET", "/api/grid-visits"): ({DEPUTY} | STAFF, None, None),
    ("GET", "/api/grid-visits/shortfall"): (STAFF, None, None),
    # Issue 17: 履职积分.
    ("GET", "/api/points/standards"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/points/standards"): ({COUNTY_STAFF}, None, lambda: {
        "year": date.today().year, "title": "履职积分标准",
        "items": [{"code": "duty", "category": "联系群众", "name": "进站接待", "source": "shift_kept", "points": 2,
                   "cap": 24}]}),
    ("POST", "/api/activities"): ({DEPUTY}, None, lambda: {
        "item_code": "meeting", "title": "常委会会议", "happened_on": date.today().isoformat(), "evidence": "列席"}),
    ("GET", "/api/activities"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/activities/{public_id}/review"): (STAFF, "activity", lambda: {"decision": "approve"}),
    ("POST", "/api/points/adjustments"): ({COUNTY_STAFF}, None, lambda: {
        "deputy_code": "D001", "year": date.today().year, "points": 1, "reason": "补录"}),
    ("GET", "/api/points/ledger"): ({DEPUTY}, None, None),
    ("GET", "/api/deputies/{public_id}/points"): (STAFF, "deputy", None),
    ("GET", "/api/points/publication"): ({DEPUTY} | STAFF, None, None),
    ("GET", "/api/points/export"): (STAFF, None, None),
    # Issue 17: quarterly 述职测评 (a new year each call: one 测评 per deputy and quarter).
    ("POST", "/api/appraisals"): (STAFF, None, lambda: {"deputy_code": "D003", "year": 2000 + next(_n) % 100,
                                                        "quarter": 1}),
    ("GET", "/api/appraisals"): ({DEPUTY} | STAFF, None, None),
    ("POST", "/api/appraisals/{public_id}/close"): (STAFF, "appraisal", None),
    ("POST", "/api/rectifications/{public_id}/complete"): ({DEPUTY} | STAFF, "rectification",
                                                           lambda: {"report": "已整改"}),

    # Issue 15: walk-in matters, the 交办单, 回访 and the staff ruling.
    ("POST", "/api/walk-ins"): ({DEPUTY} | STAFF, None, lambda: {
        "text": "青山村村口的路灯坏了", "resident_name": "刘大妈", "contact_consent": True,
        "place_kind": "reception"}),
    ("GET", "/api/cases/{public_id}/sheet"): ({DEPUTY, DEPARTMENT} | STAFF, "case", None),
    ("GET", "/api/return-visits"): (STAFF, None, None),
    ("POST", "/api/cases/{public_id}/return-visits"): (STAFF, "case", lambda: {
        "method": "phone", "visitor": "陈主任", "visited_at": "2026-12-01T10:00:00+08:00",
        "outcome": "已解决", "rating": "satisfied"}),
    ("POST", "/api/cases/{public_id}/conclude"): (STAFF, "case", lambda: {"reason": "作终结处理"}),
    # Issue 15: chat photos and voice kept (signed URLs; tests/test_media.py checks who sees which file).
    ("GET", "/api/cases/{public_id}/media"): (EVERYONE, "case", None),
    # Handlers' photos of their work (tests/test_handler_media.py), enterprise codes (企业码).
    ("POST", "/api/cases/{public_id}/attachments"): (HANDLERS, "case", lambda: {"data": PNG_BASE64}),
    ("GET", "/api/enterprises"): ({DEPUTY} | STAFF, None, None),
    ("GET", "/api/enterprises/{public_id}/qrcode"): ({DEPUTY} | STAFF, "enterprise", None),

    # City staff only (tests/test_city.py): no county user may call them.
    ("GET", "/api/city/figures"): (frozenset(), None, None),
    ("GET", "/api/city/cases/{public_id}"): (frozenset(), "case", None),
    ("GET", "/api/city/cases"): (frozenset(), None, None),
    ("GET", "/api/city/ledger"): (frozenset(), None, None),
    ("POST", "/api/city/cases/{public_id}/answer"): (frozenset(), "case", lambda: {"text": "请两县会商"}),
    ("POST", "/api/city/cases/{public_id}/hand-down"): (frozenset(), "case", lambda: {"note": "已协调"}),
}
def _registry_csv():
    """A one-sheet CSV upload (departments) for the registry import endpoint."""
    import base64

    content = f"部门编码,部门名称\n{_code('imp')},县水利局\n".encode("utf-8")
    return {"filename": "departments.csv", "content_base64": base64.b64encode(content).decode("ascii")}


# Staff registry writes are county-level: a station's staff get 403 even though the role is "staff".
ROLE_OF = {RESIDENT: "resident", DEPUTY: "deputy", DEPARTMENT: "department",
           STATION_STAFF: "staff", COUNTY_STAFF: "staff"}


def api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((method, openapi_path(rule.rule)))
    return routes


def test_every_endpoint_is_swept(app):
    assert api_routes(app) == set(SWEEP), "add the new endpoint to SWEEP (and check its roles)"


def test_every_replayable_endpoint_rechecks_access(app):
    """A POST with an id in its path stores its answer under the Idempotency-Key: the endpoint must say
    how to re-check that the caller may still see that object before the answer is replayed."""
    from miniprogram_api.framework import ENDPOINTS

    missing = [spec.full_path for spec in ENDPOINTS
               if spec.idempotent and spec.path_params and spec.visible is None]
    assert not missing, missing


@pytest.fixture
def world(app, fake_wechat):
    """Two residents with a case each in different stations' grids, and every kind of account."""
    http = FlaskHttp(app.test_client())
    county = bootstrap_staff(http, "", fake_wechat, "o_sweep_county")
    users = {
        COUNTY_STAFF: county,
        STATION_STAFF: make_account(county, fake_wechat, "o_sweep_station", role="staff", name="青山站",
                                    station_code="S002"),
        DEPUTY: make_account(county, fake_wechat, "o_sweep_deputy", role="deputy", name="张建华",
                             deputy_code="D001"),
        DEPARTMENT: make_account(county, fake_wechat, "o_sweep_dept", role="department", name="住建",
                                 department_code="zhujian"),
        RESIDENT: resident(http, "", fake_wechat, "o_sweep_resident_a"),
    }
    other = resident(http, "", fake_wechat, "o_sweep_resident_b")
    mine = users[RESIDENT].post("/api/cases", {"text": "幸福里小区3号楼门口的路灯坏了"}).json()
    theirs = other.post("/api/cases", {"text": "青山村村口的路灯坏了", "grid_code": "G003"}).json()
    # A case of G001 with the department, and an extension request on it.
    with_department = users[RESIDENT].post("/api/cases", {"text": "幸福里小区楼道的路灯坏了"}).json()
    assert users[DEPUTY].post(f"/api/cases/{with_department['id']}/dispatch",
                              {"department_code": "zhujian"}).status_code == 200
    extension = users[DEPARTMENT].post(f"/api/cases/{with_department['id']}/extension-requests",
                                       {"working_days": 3, "reason": "需采购灯具"}).json()
    standard = county.post("/api/points/standards", {"year": date.today().year, "title": "履职积分标准",
                                                      "items": points.DEFAULT_ITEMS})
    assert standard.status_code == 201, standard.text
    accounts = county.get("/api/accounts").json()["items"]
    return {"http": http, "users": users, "mine": mine, "theirs": theirs, "g001": with_department,
            "extension": extension, "account": accounts[-1]["id"], **suggestion_fixtures.foreign_objects()}


def _foreign(world, kind: str, role: str) -> str:
    """An existing id the role must not see (or, when the role sees everything, none)."""
    if role == COUNTY_STAFF:
        return UNKNOWN_ID  # the whole county is theirs
    if kind == "case":
        return world["mine"]["id"] if role == STATION_STAFF else world["theirs"]["id"]
    if kind == "extension":
        return world["extension"]["id"] if role == STATION_STAFF else UNKNOWN_ID
    if kind == "account":  # the department handler's account: the county's, not a station's
        return world["account"] if role == STATION_STAFF else UNKNOWN_ID
    if kind == "suggestion":  # D003's is the deputy's colleague's; D001's is station S001's, not assigned
        return world["suggestion_d003"] if role == DEPUTY else world["suggestion_d001"]
    if kind == "problem_entry":  # made by county staff: theirs alone
        return world["entry_county"]
    if kind == "enterprise":  # E001 is in G004: not deputy D001's grid, not station S002's
        return "E001" if role in (DEPUTY, STATION_STAFF) else UNKNOWN_ID
    if kind == "project":  # led by 交通, still planned: not the 住建 handler's, not yet the residents'
        return world["project_jiaotong"] if role in (DEPARTMENT, RESIDENT) else UNKNOWN_ID
    return UNKNOWN_ID


def _call(user_or_http, method, path, body):
    if hasattr(user_or_http, "token"):
        return user_or_http.get(path) if method == "GET" else user_or_http.post(path, body)
    return (user_or_http.get(path) if method == "GET"
            else user_or_http.post(path, json=body or {}))


def _snapshot():
    with db.session_scope() as session:
        return (session.scalar(select(func.count()).select_from(CaseEvent)),
                session.scalar(select(func.count()).select_from(OutboxMessage)),
                sorted(session.scalars(select(ExtensionRequest.status))))


def test_sweep_roles_tokens_and_foreign_ids(world):
    http, users = world["http"], world["users"]
    failures = []
    before = _snapshot()
    for (method, path), (roles, kind, body_factory) in sorted(SWEEP.items()):
        if roles == "public":
            continue
        # No token, a forged token → 401.
        for headers in ({}, {"Authorization": "Bearer forged.token.value"}):
            target = path.replace("{public_id}", UNKNOWN_ID)
            response = (http.get(target, headers=headers) if method == "GET"
                        else http.post(target, json=body_factory() if body_factory else {}, headers=headers))
            if response.status_code != 401:
                failures.append((method, path, "no/forged token", response.status_code))
        for role, user in users.items():
            ids = [UNKNOWN_ID, _foreign(world, kind, role)] if kind else [None]
            for public_id in dict.fromkeys(ids):
                target = path.replace("{public_id}", public_id) if public_id else path
                body = body_factory() if body_factory else None
                response = _call(user, method, target, body)
                if role not in roles:
                    expected = {403}
                elif kind:
                    expected = {404}
                else:
                    expected = None  # allowed, no id: must succeed
                ok = (response.status_code in expected if expected
                      else response.status_code < 300 or (path == "/api/bind" and response.status_code == 422))
                if not ok:
                    failures.append((method, path, role, public_id, response.status_code, response.text[:200]))
                if response.status_code >= 400:
                    error = response.json().get("error", {})
                    if not (error.get("code") and error.get("message")):
                        failures.append((method, path, role, "error body", response.text[:200]))
    assert not failures, "\n".join(map(str, failures))
    # Foreign and unknown ids changed nothing (the only writes above were allowed id-less POSTs that
    # create registry rows, consents or new cases; new cases add timeline entries, counted here).
    after = _snapshot()
    assert after[2] == before[2], "an extension request was decided through a foreign id"


def test_visibility_of_lists_and_details(world):
    users = world["users"]
    mine, theirs, g001 = world["mine"]["id"], world["theirs"]["id"], world["g001"]["id"]

    def ids(role):
        return {c["id"] for c in users[role].get("/api/cases", page_size=100).json()["items"]}

    assert ids(RESIDENT) == {mine, g001}
    assert ids(DEPUTY) == {mine, g001}  # G001 and G002 are the deputy's grids; G003 is not
    assert ids(DEPARTMENT) == {g001}
    assert ids(STATION_STAFF) == {theirs}  # station S002 covers G003 only
    assert ids(COUNTY_STAFF) == {mine, theirs, g001}
    assert users[DEPUTY].get(f"/api/cases/{theirs}").status_code == 404
    assert users[RESIDENT].get(f"/api/cases/{theirs}").status_code == 404
    # Integer ids are not ids in URLs; the case number residents are told is (within the scope).
    number = world["mine"]["number"]
    assert users[COUNTY_STAFF].get(f"/api/cases/{number}").json()["id"] == mine
    assert users[STATION_STAFF].get(f"/api/cases/{number}").status_code == 404
    assert users[COUNTY_STAFF].get("/api/cases/1").status_code == 404


def test_visible_but_not_yours_is_403(world):
    users = world["users"]
    g001 = world["g001"]["id"]
    # The deputy sees the G001 case now with the department, but cannot handle it (only urge).
    assert users[DEPUTY].post(f"/api/cases/{g001}/accept").status_code == 403
    assert users[DEPUTY].post(f"/api/cases/{g001}/urge", {"note": "请加快"}).status_code == 200
    # The department cannot dispatch or act on a case that is not with it.
    mine = world["mine"]["id"]
    assert users[DEPARTMENT].get(f"/api/cases/{mine}").status_code == 404
