"""三级联动: a county's staff hand a case up to their city, city staff answer it and hand it back down.

One deployment: 某市 with 甲县 (grants the city personal data) and 乙县 (does not), 丁市 with 丁县, and
the default county in no city. 甲县's resident writes through the API; the grid deputy keeps working
the case while it is with the city. Who sees what is checked twice: with the domain's criteria (as the
owner, whom row-level security does not bind) and with row-level security alone (the domain's
criteria switched off, the app connected as a role bound by the policies).
"""
from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from liaison import demo
from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent, CaseReferral, Notice
from liaison.core import db, tenant
from liaison.messaging.models import InboundMessage, OutboxMessage
from liaison.people import service as accounts
from liaison.people.models import Account, Resident
from liaison.tenancy import service as tenancy
from tests.api_fixtures import ApiUser, FlaskHttp, bind_with_code, make_account
from tests.conftest import TEST_DATABASE_URL, rls_bound_engine

PHONE = "13800001234"
MIGRATION = Path(__file__).resolve().parent.parent / "migrations" / "versions" / "0019_case_referrals.py"


def _county(code: str, name: str, settings: dict | None = None) -> int:
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        county_id = tenancy.add_county(session, code, name, settings=settings).id
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        assert demo.seed_demo(session)
    return county_id


def _staff(county_id: int, http, fake_wechat, openid: str) -> ApiUser:
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        _account, code = accounts.create_first_staff(session, "工委 主任")
    return bind_with_code(http, "", fake_wechat, openid, code)


def _city_staff(home: int, city_id: int, http, fake_wechat, openid: str) -> ApiUser:
    with tenant.use(tenant.county(home)), db.session_scope() as session:
        _account, code = accounts.create_city_staff(session, "市人大 联络处", city_id)
    user = bind_with_code(http, "", fake_wechat, openid, code)
    assert user.role == "city"
    return user


def _resident(http, fake_wechat, openid: str, county: str) -> ApiUser:
    code = f"code-{uuid.uuid4().hex}"
    fake_wechat.register_code(code, openid, session_key="sk-" + uuid.uuid4().hex)
    response = http.post("/api/login", json={"code": code, "county": county})
    assert response.status_code == 200, response.text
    data = response.json()
    return ApiUser("", data["token"], data["me"]["role"], http)


def _domain_case(county_id: int, openid: str, words: str) -> str:
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        person = Resident(oa_openid=openid)
        session.add(person)
        session.flush()
        return cases.open_case(session, person, words).public_id


@pytest.fixture
def world(app, fake_wechat):
    jia = _county("jiaxian", "甲县", {tenancy.CITY_PERSONAL_DATA: True})
    yi = _county("yixian", "乙县")
    ding = _county("dingxian", "丁县")
    with tenant.use(tenant.all_counties("add cities")), db.session_scope() as session:
        shi = tenancy.add_city(session, "shi", "某市", ["jiaxian", "yixian"]).id
        ding_city = tenancy.add_city(session, "dingshi", "丁市", ["dingxian"]).id
    http = FlaskHttp(app.test_client())
    jia_staff = _staff(jia, http, fake_wechat, "o_jia_staff")
    world = {
        "http": http, "jia": jia, "yi": yi, "ding": ding, "shi": shi,
        "jia_staff": jia_staff,
        "jia_deputy": make_account(jia_staff, fake_wechat, "o_jia_deputy", role="deputy", name="甲代表",
                                   deputy_code="D001"),
        "yi_staff": _staff(yi, http, fake_wechat, "o_yi_staff"),
        "a_staff": _staff(tenant.DEFAULT_COUNTY_ID, http, fake_wechat, "o_a_staff"),
        "city": _city_staff(jia, shi, http, fake_wechat, "o_shi_staff"),
        "other_city": _city_staff(ding, ding_city, http, fake_wechat, "o_dingshi_staff"),
        "resident": _resident(http, fake_wechat, "o_jia_resident", "jiaxian"),
    }
    created = world["resident"].post("/api/cases", {"text": f"幸福里小区3号楼门口的路灯坏了，电话{PHONE}"})
    assert created.status_code == 201, created.text
    world["case"] = created.json()["id"]
    world["yi_case"] = _domain_case(yi, "o_yi_resident", f"幸福里小区5号楼楼道灯不亮，电话{PHONE}")
    world["yi_other"] = _domain_case(yi, "o_yi_other", "幸福里小区的井盖丢了")
    world["a_case"] = _domain_case(tenant.DEFAULT_COUNTY_ID, "o_a_resident", "幸福里小区路灯坏了")
    return world


def _actions(user: ApiUser, case_id: str) -> list[str]:
    return [e["action"] for e in user.get(f"/api/cases/{case_id}").json()["timeline"]]


def test_hand_up_answer_and_hand_back_down(world):
    staff, city, deputy, case = world["jia_staff"], world["city"], world["jia_deputy"], world["case"]
    before = world["resident"].get(f"/api/cases/{case}").json()["status"]
    handed = staff.post(f"/api/cases/{case}/hand-up", {"reason": "涉及两县交界道路，需市级协调"})
    assert handed.status_code == 200, handed.text
    assert handed.json()["event"]["action"] == "hand_up" and handed.json()["case"]["status"] == before
    # The grid deputy keeps working the case while it is with the city; the resident sees the step.
    assert deputy.post(f"/api/cases/{case}/accept").status_code == 200
    assert "hand_up" in _actions(world["resident"], case)
    listed = city.get("/api/city/cases").json()["items"]
    assert [(c["id"], c["county"]["code"], c["referral"]["status"]) for c in listed] == [
        (case, "jiaxian", "at_city")]
    detail = city.get(f"/api/city/cases/{case}").json()
    assert PHONE in detail["text"] and detail["referral"]["reason"] == "涉及两县交界道路，需市级协调"
    answered = city.post(f"/api/city/cases/{case}/answer", {"text": "请甲县牵头，会同乙县三日内修复"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["referral"]["status"] == "answered"
    down = city.post(f"/api/city/cases/{case}/hand-down", {"note": "已与乙县协调"})
    assert down.status_code == 200, down.text
    assert down.json()["referral"]["status"] == "returned"
    # Both hand-overs (and the answer) are on the case's timeline, for the county as for the city.
    steps = [a for a in _actions(staff, case) if a in ("hand_up", "city_answer", "hand_down")]
    assert steps == ["hand_up", "city_answer", "hand_down"]
    assert [e["action"] for e in down.json()["timeline"]
            if e["action"] in ("hand_up", "city_answer", "hand_down")] == steps
    # Handed back: the city can no longer act, and still reads what it did (the history).
    assert city.post(f"/api/city/cases/{case}/answer", {"text": "再批示"}).status_code == 409
    assert city.post(f"/api/city/cases/{case}/hand-down", {}).status_code == 409
    assert city.get(f"/api/city/cases/{case}").status_code == 200
    # Side effects went through the outbox in the case's county: the resident told of both
    # hand-overs, the staff who handed it up told of the answer and the hand-down.
    with tenant.use(tenant.county(world["jia"])), db.session_scope() as session:
        case_id = session.scalar(select(Case.id).where(Case.public_id == case))
        told = session.scalars(select(OutboxMessage.payload).where(
            OutboxMessage.case_id == case_id, OutboxMessage.kind == "resident_text")).all()
        assert sum("市人大" in p["text"] for p in told) == 2
        staff_notices = session.scalars(select(Notice.kind).where(Notice.case_id == case_id,
                                                                  Notice.kind == "city_referral")).all()
        assert len(staff_notices) == 2
        pushes = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.case_id == case_id, OutboxMessage.kind == "account_push",
            OutboxMessage.dedup_key.like("hand_down:%")))
        assert pushes == 1
        assert {c for c in session.scalars(select(CaseReferral.county_id))} == {world["jia"]}
    # It can be handed up again (a new hand-up, with the city again).
    again = staff.post(f"/api/cases/{case}/hand-up", {"reason": "仍未修复"})
    assert again.status_code == 200, again.text
    assert city.get("/api/city/cases").json()["items"][0]["referral"]["status"] == "at_city"
    assert len(city.get(f"/api/city/cases/{case}").json()["referrals"]) == 2


def test_hand_up_refusals_change_nothing(world):
    staff, case = world["jia_staff"], world["case"]
    assert staff.post(f"/api/cases/{case}/hand-up", {"reason": ""}).status_code == 422
    assert staff.post(f"/api/cases/{case}/hand-up", {}).status_code == 422
    assert world["jia_deputy"].post(f"/api/cases/{case}/hand-up", {"reason": "x"}).status_code == 403
    assert world["resident"].post(f"/api/cases/{case}/hand-up", {"reason": "x"}).status_code == 403
    assert staff.post(f"/api/cases/{case}/hand-up", {"reason": "需协调"}).status_code == 200
    second = staff.post(f"/api/cases/{case}/hand-up", {"reason": "再报"})
    assert second.status_code == 409 and "待市级答复" in second.json()["error"]["message"]
    no_city = world["a_staff"].post(f"/api/cases/{world['a_case']}/hand-up", {"reason": "需协调"})
    assert no_city.status_code == 409 and no_city.json()["error"]["code"] == "no_city"
    city = world["city"]
    assert city.post(f"/api/city/cases/{case}/answer", {"text": ""}).status_code == 422
    assert city.post(f"/api/city/cases/{case}/answer", {"text": "x" * 2001}).status_code == 422
    assert city.post(f"/api/city/cases/{case}/answer", {"words": "x"}).status_code == 422
    assert _actions(staff, case).count("hand_up") == 1 and "city_answer" not in _actions(staff, case)


def _handed_up_everywhere(world) -> None:
    assert world["jia_staff"].post(f"/api/cases/{world['case']}/hand-up", {"reason": "需协调"}).status_code == 200
    assert world["yi_staff"].post(f"/api/cases/{world['yi_case']}/hand-up", {"reason": "需协调"}).status_code == 200


def _isolation_checks(world) -> None:
    """What each side may see of the others' handed-up cases (the same with either line alone)."""
    city, other, case, yi_case = world["city"], world["other_city"], world["case"], world["yi_case"]
    # City staff of another city: nothing of 某市's cases.
    assert other.get("/api/city/cases").json()["items"] == []
    for path in (f"/api/city/cases/{case}", f"/api/city/cases/{yi_case}"):
        assert other.get(path).status_code == 404, path
        assert other.post(f"{path}/answer", {"text": "越权批示"}).status_code == 404
        assert other.post(f"{path}/hand-down", {}).status_code == 404
    # 某市's staff: exactly the two handed-up cases; 乙县's other case and the default county's stay out.
    assert {c["id"] for c in city.get("/api/city/cases").json()["items"]} == {case, yi_case}
    for hidden in (world["yi_other"], world["a_case"]):
        assert city.get(f"/api/city/cases/{hidden}").status_code == 404
        assert city.post(f"/api/city/cases/{hidden}/answer", {"text": "x"}).status_code == 404
    # Personal data only where the county grants it: 甲县 does, 乙县 does not.
    assert PHONE in city.get(f"/api/city/cases/{case}").text
    masked = city.get(f"/api/city/cases/{yi_case}")
    assert masked.status_code == 200 and PHONE not in masked.text and "5号楼" not in masked.text
    # A county's staff see nothing of another county's handed-up case.
    assert world["yi_staff"].get(f"/api/cases/{case}").status_code == 404
    assert world["yi_staff"].post(f"/api/cases/{case}/hand-up", {"reason": "x"}).status_code == 404
    assert world["jia_staff"].get(f"/api/cases/{yi_case}").status_code == 404
    assert case not in world["yi_staff"].get("/api/cases").text


def _city_rows(city_id: int, county_ids: list[int]) -> dict[str, int]:
    """What a unit of work in a city's scope reads of each table (both lines, or whichever is on)."""
    with tenant.use(tenant.city(city_id, county_ids)), db.session_scope() as session:
        return {name: session.scalar(select(func.count()).select_from(model)) for name, model in (
            ("cases", Case), ("case_events", CaseEvent), ("residents", Resident), ("referrals", CaseReferral),
            ("inbound", InboundMessage), ("accounts", Account))}


def _expected_city_rows(world) -> dict[str, int]:
    with tenant.use(tenant.all_counties("count what was handed up")), db.session_scope() as session:
        handed = select(CaseReferral.case_id).where(CaseReferral.city_id == world["shi"])
        return {"cases": 2, "case_events": session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id.in_(handed))), "residents": 2, "referrals": 2, "inbound": 0,
            "accounts": session.scalar(select(func.count()).select_from(Account).where(
                Account.city_id == world["shi"]))}


def test_the_domain_shows_each_side_only_its_own(world):
    _handed_up_everywhere(world)
    _isolation_checks(world)
    assert _city_rows(world["shi"], [world["jia"], world["yi"]]) == _expected_city_rows(world)
    assert _city_rows(world["shi"] + 1, [world["ding"]])["cases"] == 0


@pytest.fixture
def app_role_engine(world):
    """The domain engine connected as a role bound by row-level security (not owner, not superuser)."""
    with rls_bound_engine() as engine:
        yield engine


def test_row_level_security_alone_shows_each_side_only_its_own(world, app_role_engine):
    with tenant.without_domain_criteria():
        _handed_up_everywhere(world)
        _isolation_checks(world)
        assert _city_rows(world["shi"], [world["jia"], world["yi"]]) == _expected_city_rows(world)
        # Naming another city's counties in the scope does not help: the policies ask the counties table.
        assert _city_rows(world["shi"] + 1, [world["jia"], world["yi"]])["cases"] == 0
        city = world["city"]
        assert city.post(f"/api/city/cases/{world['case']}/answer", {"text": "请尽快修复"}).status_code == 200
        assert city.post(f"/api/city/cases/{world['yi_case']}/hand-down", {"note": "已协调"}).status_code == 200


def test_the_sweeps_notice_a_leak(world):
    """As the owner with the domain's criteria off nothing narrows the city: the checks must fail."""
    _handed_up_everywhere(world)
    with tenant.without_domain_criteria():
        assert _city_rows(world["shi"], [world["jia"], world["yi"]]) != _expected_city_rows(world)


def test_domain_rules_and_policies_name_the_same_tables(world):
    spec = importlib.util.spec_from_file_location("migration_0019", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    ruled = {cls.__tablename__ for cls in tenant.CITY_RULES}
    assert ruled == set(migration.CITY_ACCESS)
    engine = create_engine(TEST_DATABASE_URL)
    with engine.connect() as conn:
        policed = set(conn.execute(text("SELECT tablename FROM pg_policies WHERE policyname = 'city_access'"))
                      .scalars())
    engine.dispose()
    assert policed == ruled


def test_county_staff_hand_up_from_the_console(world):
    from tests.console_fixtures import csrf_token, sign_in
    from tests.console_fixtures import make_account as console_account

    with tenant.use(tenant.county(world["jia"])):
        console_account("staff", "甲县工委", login="jia_console")
    client = world["http"].client.application.test_client()
    assert sign_in(client, "jia_console").status_code == 303
    page = client.get(f"/console/cases/{world['case']}").get_data(as_text=True)
    assert 'id="form-hand_up"' in page
    token = csrf_token(page)
    path = f"/console/cases/{world['case']}/hand_up"
    assert client.post(path, data={"csrf_token": token, "hand_up-reason": ""}).status_code == 422
    done = client.post(path, data={"csrf_token": token, "hand_up-reason": "涉及两县，需市级协调"})
    assert done.status_code == 303
    assert [c["id"] for c in world["city"].get("/api/city/cases").json()["items"]] == [world["case"]]
    page = client.get(f"/console/cases/{world['case']}").get_data(as_text=True)
    assert 'id="form-hand_up"' not in page and "上报市级协调" in page  # on the timeline, not offered again
    assert client.post(path, data={"csrf_token": token, "hand_up-reason": "再报"}).status_code == 409
    # The default county is in no city: the console does not offer it there.
    with tenant.use(tenant.county(tenant.DEFAULT_COUNTY_ID)):
        console_account("staff", "默认县工委", login="a_console")
    other = world["http"].client.application.test_client()
    assert sign_in(other, "a_console").status_code == 303
    assert 'id="form-hand_up"' not in other.get(f"/console/cases/{world['a_case']}").get_data(as_text=True)
