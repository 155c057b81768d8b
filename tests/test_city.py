"""City staff: each county's and the whole city's figures, and cases' personal data only where granted.

One deployment, three counties: the default one (not in the city), 甲县 (grants the city its residents'
personal data) and 乙县 (does not). A city staff member of 市 sees both counties' 受理量, 办结率 and
满意率 and the city's total, with no personal data; opens only the cases a county handed up to the
city (others 404), with personal data masked where the county does not grant it; and no county
endpoint is theirs. The hand-up and hand-down themselves are in tests/test_city_referrals.py.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from liaison import demo
from liaison.case import service as cases
from liaison.case import stats
from liaison.core import db, tenant
from liaison.core.types import Actor
from liaison.people import service as accounts
from liaison.people.models import Account, Resident
from liaison.tenancy import service as tenancy
from tests.api_fixtures import FlaskHttp, bind_with_code

PHONE = "13800001234"


def _county(code: str, name: str, settings: dict | None = None) -> int:
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        county_id = tenancy.add_county(session, code, name, settings=settings).id
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        assert demo.seed_demo(session)
    return county_id


def _cases(county_id: int, outcomes: list[str]) -> list[str]:
    """One case per outcome: "open", "rejected", "satisfied", "unsatisfied_then_open", "closed"."""
    numbers = []
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        for i, outcome in enumerate(outcomes):
            person = Resident(oa_openid=f"o_city_{county_id}_{i}")
            session.add(person)
            session.flush()
            case = cases.open_case(session, person, f"幸福里小区{i}号楼路灯坏了，我的电话13800001234")
            numbers.append(case.number)
            if outcome == "rejected":
                cases.reject(session, case, Actor("staff"), "不属于受理范围")
                continue
            if outcome == "open":
                continue
            cases.accept(session, case, Actor("staff"))
            cases.reply(session, case, Actor("staff"), "已修复")
            cases.close(session, case, Actor("staff"), "路灯已修复")
            if outcome in ("satisfied", "unsatisfied"):
                cases.rate(session, case, person, outcome, channel="wechat")
    return numbers


@pytest.fixture
def city_world(app, fake_wechat):
    jia = _county("jiaxian", "甲县", {tenancy.CITY_PERSONAL_DATA: True})
    yi = _county("yixian", "乙县")
    with tenant.use(tenant.all_counties("add a city")), db.session_scope() as session:
        city_id = tenancy.add_city(session, "shi", "某市", ["jiaxian", "yixian"]).id
    numbers = {
        "default": _cases(tenant.DEFAULT_COUNTY_ID, ["satisfied", "open"]),
        # 甲县: 4 received (one rejected is not), 2 concluded, 1 of 2 rated satisfied.
        "jiaxian": _cases(jia, ["satisfied", "unsatisfied", "closed", "open", "rejected"]),
        # 乙县: 2 received, 1 concluded and rated satisfied.
        "yixian": _cases(yi, ["satisfied", "open"]),
    }
    with tenant.use(tenant.county(jia)), db.session_scope() as session:
        _account, code = accounts.create_city_staff(session, "市人大 李主任", city_id)
    http = FlaskHttp(app.test_client())
    user = bind_with_code(http, "", fake_wechat, "o_mp_city_staff", code)
    assert user.role == "city"
    return {"user": user, "numbers": numbers, "jia": jia, "yi": yi, "http": http}


def test_city_staff_see_both_counties_figures_and_the_citys(city_world):
    response = city_world["user"].get("/api/city/figures")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["city"] == {"code": "shi", "name": "某市"}
    by_code = {c["code"]: c for c in data["counties"]}
    assert set(by_code) == {"jiaxian", "yixian"}  # the default county is not in the city
    jia, yi = by_code["jiaxian"], by_code["yixian"]
    # 甲县's unsatisfied case went back for a second round: not concluded, but its rating counts.
    assert (jia["received"], jia["concluded"], jia["rated"]) == (4, 2, 2)
    assert jia["conclusion_rate"] == pytest.approx(2 / 4) and jia["satisfaction_rate"] == pytest.approx(1 / 2)
    assert (yi["received"], yi["concluded"], yi["rated"]) == (2, 1, 1)
    assert yi["conclusion_rate"] == pytest.approx(1 / 2) and yi["satisfaction_rate"] == pytest.approx(1.0)
    assert jia["personal_data"] is True and yi["personal_data"] is False
    total = data["total"]
    assert (total["received"], total["concluded"], total["rated"]) == (6, 3, 3)
    assert total["conclusion_rate"] == pytest.approx(3 / 6)
    assert total["satisfaction_rate"] == pytest.approx(stats.satisfaction_rate(2, 0, 1))  # not a mean of rates
    # Figures only: no case numbers, texts, phones or openids.
    text = json.dumps(data, ensure_ascii=False)
    assert "13800001234" not in text and "o_city_" not in text and "路灯" not in text
    assert not any(n in text for ns in city_world["numbers"].values() for n in ns)


def hand_up(county_id: int, number: str, reason: str = "跨县道路，需市级协调") -> None:
    """County staff of `county_id` hand case `number` up to their city (the domain call)."""
    from liaison.case import referrals

    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        staff = session.scalar(select(Account).where(Account.role == "staff").order_by(Account.id))
        if staff is None:
            staff, _code = accounts.create_first_staff(session, "县人大工委")
            session.flush()
        referrals.hand_up(session, cases.case_by_number(session, number), staff.id, reason)


def test_city_staff_open_only_handed_up_cases_masked_unless_granted(city_world):
    user, numbers = city_world["user"], city_world["numbers"]
    for number in (numbers["jiaxian"][3], numbers["yixian"][0]):
        assert user.get(f"/api/city/cases/{number}").status_code == 404  # not handed up (yet)
    hand_up(city_world["jia"], numbers["jiaxian"][3])
    hand_up(city_world["yi"], numbers["yixian"][1])
    granted = user.get(f"/api/city/cases/{numbers['jiaxian'][3]}")
    assert granted.status_code == 200, granted.text
    assert "13800001234" in granted.json()["text"] and granted.json()["personal_data"] is True
    masked = user.get(f"/api/city/cases/{numbers['yixian'][1]}")
    assert masked.status_code == 200, masked.text
    assert masked.json()["personal_data"] is False and "13800001234" not in masked.text
    assert "138****1234" in masked.json()["text"] and "路灯坏了" in masked.json()["text"]
    assert [e["action"] for e in masked.json()["timeline"]][-1] == "hand_up"
    # Only what was handed up: the counties' other cases and the default county's stay out.
    for number in (numbers["jiaxian"][1], numbers["yixian"][0], numbers["default"][0], "2026-999999"):
        assert user.get(f"/api/city/cases/{number}").status_code == 404, number
    listed = {c["number"] for c in user.get("/api/city/cases").json()["items"]}
    assert listed == {numbers["jiaxian"][3], numbers["yixian"][1]}
    # County endpoints are not theirs, not even for a case handed up to them.
    assert user.get("/api/me").json()["role"] == "city"
    for path in ("/api/cases", f"/api/cases/{numbers['jiaxian'][3]}", "/api/accounts", "/api/survey-results"):
        assert user.get(path).status_code == 403, path
    assert user.post(f"/api/cases/{numbers['jiaxian'][3]}/urge", {"note": "催办"}).status_code == 403


def test_a_county_joining_the_city_counts_at_once_and_grants_can_be_withdrawn(city_world):
    user, jia = city_world["user"], city_world["jia"]
    bing = _county("bingxian", "丙县")
    _cases(bing, ["closed"])
    with tenant.use(tenant.all_counties("join a city")), db.session_scope() as session:
        tenancy.join_city(session, "bingxian", tenancy.city_by_code(session, "shi"))
        county = tenancy.by_code(session, "jiaxian")
        county.settings = {**county.settings, tenancy.CITY_PERSONAL_DATA: False}
    data = user.get("/api/city/figures").json()
    assert {c["code"] for c in data["counties"]} == {"jiaxian", "yixian", "bingxian"}
    assert data["total"]["received"] == 7
    hand_up(jia, city_world["numbers"]["jiaxian"][3])
    masked = user.get(f"/api/city/cases/{city_world['numbers']['jiaxian'][3]}")
    assert masked.status_code == 200 and "13800001234" not in masked.text  # 甲县 withdrew its grant


def test_a_city_account_lives_in_one_of_its_counties(city_world):
    with tenant.use(tenant.all_counties("find the city")), db.session_scope() as session:
        city_id = tenancy.city_by_code(session, "shi").id
    with pytest.raises(accounts.AccountError):
        with tenant.use(tenant.county(tenant.DEFAULT_COUNTY_ID)), db.session_scope() as session:
            accounts.create_city_staff(session, "外县的人", city_id)


def test_add_a_city_and_its_staff_from_the_command_line(settings, demo_county, fake_wechat):
    from tests.test_manage import manage

    for code, name in (("jiaxian", "甲县"), ("yixian", "乙县")):
        assert manage(fake_wechat, "county", "add", code, name).returncode == 0
    added = manage(fake_wechat, "city", "add", "shi", "某市", "--counties", "jiaxian,yixian")
    assert added.returncode == 0, added.stderr
    staff = manage(fake_wechat, "create-staff", "市人大 王", "--city", "shi")
    assert staff.returncode == 0, staff.stderr
    assert "binding code" in staff.stdout
    listed = manage(fake_wechat, "city", "list")
    assert "shi" in listed.stdout and "jiaxian,yixian" in listed.stdout
    with tenant.use(tenant.all_counties("check")), db.session_scope() as session:
        account = session.scalar(select(Account).where(Account.name == "市人大 王"))
        assert account.role == "city" and account.county_id == tenancy.by_code(session, "jiaxian").id


def test_the_city_ledger_spans_its_counties_masked_unless_granted(city_world):
    user, numbers = city_world["user"], city_world["numbers"]
    everything = user.get("/api/city/ledger")
    assert everything.status_code == 200, everything.text
    data = everything.json()
    assert data["total"] == 7 and {r["number"] for r in data["items"]} == set(numbers["jiaxian"] + numbers["yixian"])
    by_number = {r["number"]: r for r in data["items"]}
    assert all(PHONE in by_number[n]["text"] for n in numbers["jiaxian"])  # 甲县 grants personal data
    assert all(PHONE not in by_number[n]["text"] and "138****1234" in by_number[n]["text"]
               for n in numbers["yixian"])
    assert "o_city_" not in everything.text  # the 诉求人 is masked everywhere
    yi = user.get("/api/city/ledger?county=yixian").json()
    assert yi["total"] == 2 and {r["county"]["code"] for r in yi["items"]} == {"yixian"}
    rejected = user.get("/api/city/ledger?status=rejected").json()
    assert [r["number"] for r in rejected["items"]] == [numbers["jiaxian"][4]]
    assert user.get("/api/city/ledger?county=jiaxian&status=open").json()["total"] == 2
    for bad in ("county=default", "status=bogus", "page=0", "grid=G001", "since=2026-13-01"):
        assert user.get(f"/api/city/ledger?{bad}").status_code == 422, bad
