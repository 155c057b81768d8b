"""The Open311 GeoReport v2 interface at /open311/v2, over real HTTP (the live server).

The spec's examples round-trip (their fields and shapes are ours, JSON and XML agree); a request is
posted and read back with plain `requests` (the PyPI clients do not work: see the README); no response
carries personal data; every refusal is the spec's error list with a 4xx and changes nothing; a county's
key sees nothing of another county; calls are rate-limited per key and logged.
"""
from __future__ import annotations

import re

import pytest
import requests
import xmltodict
from sqlalchemy import func, select

from liaison import demo
from liaison.case import service as cases
from liaison.case.models import Case
from liaison.core import db, tenant
from liaison.core.types import Actor
from liaison.interop import service as interop
from liaison.interop.models import PartnerCall
from liaison.people.models import Deputy, Resident
from liaison.tenancy import service as tenancy

A = tenant.DEFAULT_COUNTY_ID

# --- The spec's examples (GeoReport v2), as published.
SPEC_SERVICES = [{"service_code": "001", "service_name": "Cans left out 24x7",
                  "description": "Garbage or recycling cans that have been left out for more than 24 hours "
                                 "after collection. Violators will be cited.",
                  "metadata": True, "type": "realtime", "keywords": "lorem, ipsum, dolor", "group": "sanitation"}]
SPEC_DEFINITION = {"service_code": "DMV66", "attributes": [{
    "variable": True, "code": "WHISHETN", "datatype": "singlevaluelist", "required": True,
    "datatype_description": None, "order": 1, "description": "What is the ticket/tag/DL number?",
    "values": [{"key": 123, "name": "Ford"}, {"key": 124, "name": "Chrysler"}]}]}
SPEC_REQUESTS = [{"service_request_id": 638344, "status": "closed", "status_notes": "Duplicate request.",
                  "service_name": "Sidewalk and Curb Issues", "service_code": "006", "description": None,
                  "agency_responsible": None, "service_notice": None,
                  "requested_datetime": "2010-04-14T06:37:38-08:00",
                  "updated_datetime": "2010-04-14T06:37:38-08:00",
                  "expected_datetime": "2010-04-15T06:37:38-08:00", "address": "8TH AVE and JUDAH ST",
                  "address_id": 545483, "zipcode": 94122, "lat": 37.762221815, "long": -122.4651145,
                  "media_url": "http://city.gov.s3.amazonaws.com/requests/media/638344.jpg"}]
SPEC_POST_ANSWER = [{"service_request_id": 293944,
                     "service_notice": "The City will inspect and require the responsible party to correct "
                                       "within 24 hours.", "account_id": None}]
SPEC_TOKEN = [{"service_request_id": 638344, "token": 12345}]
SPEC_ERRORS = [{"code": 403, "description": "Invalid api_key"}]
SPEC_REQUESTS_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests><request><service_request_id>638344</service_request_id><status>closed</status>
<status_notes>Duplicate request.</status_notes><service_name>Sidewalk and Curb Issues</service_name>
<service_code>006</service_code><description></description><agency_responsible></agency_responsible>
<service_notice></service_notice><requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
<updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
<expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime><address>8TH AVE and JUDAH ST</address>
<address_id>545483</address_id><zipcode>94122</zipcode><lat>37.762221815</lat><long>-122.4651145</long>
<media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg</media_url></request>
</service_requests>"""
SPEC_POST_FORM = {"service_code": "001", "lat": "37.76524078", "long": "-122.4212043",
                  "address_string": "1234 5th street", "email": "smit333@sfgov.edu",
                  "device_id": "tt222111", "account_id": "123456", "first_name": "john",
                  "last_name": "smith", "phone": "111111111", "description": "A large sinkhole is destroying the street",
                  "media_url": "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg",
                  "attribute[WHISHETN]": "123"}


@pytest.fixture
def world(live_server):
    """County A (the demo) with a partner key and cases of residents; county B with its own key."""
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        b = tenancy.add_county(session, "yixian", "乙县").id
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        demo.seed_demo(session)
        _b_partner, b_key = interop.issue_key(session, "乙县12345")
        b_resident = Resident(oa_openid="o_b_secret_resident")
        session.add(b_resident)
        session.flush()
        b_case = cases.open_case(session, b_resident, "乙县幸福里小区路灯坏了").number
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        partner, key = interop.issue_key(session, "县12345热线")
        revoked, revoked_key = interop.issue_key(session, "已停用的合作方")
        interop.revoke_key(session, revoked.public_id)
        resident = Resident(oa_openid="o_secret_openid_1")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "幸福里小区3号楼的路灯坏了，电话13812345678")
        case.location = {"latitude": 30.123456, "longitude": 120.654321, "label": "幸福里小区3号楼2单元"}
        deputy_names = list(session.scalars(select(Deputy.name)))
        number = case.number
        other = cases.open_case(session, resident, "公司拖欠工资三个月，老板王某某不给钱").number
    return {"base": live_server.url + "/open311/v2", "key": key, "revoked_key": revoked_key, "b_key": b_key,
            "b": b, "number": number, "other": other, "b_case": b_case, "deputy_names": deputy_names,
            "partner": partner.public_id}


def _get(world, path, key="key", **params):
    if key:
        params["api_key"] = world[key]
    return requests.get(world["base"] + path, params=params, timeout=30)


def _post(world, path, data, key="key"):
    if key:
        data = {**data, "api_key": world[key]}
    return requests.post(world["base"] + path, data=data, timeout=30)


def _shape(value):
    return "null" if value is None else "number" if isinstance(value, (int, float)) and not isinstance(
        value, bool) else type(value).__name__


def _same_fields(spec: dict, ours: dict):
    """Every field of the spec's example is in ours, with the same JSON type (or null on either side)."""
    for name, value in spec.items():
        assert name in ours, name
        if value is not None and ours[name] is not None:
            kinds = {_shape(value), _shape(ours[name])}
            assert len(kinds) == 1 or kinds <= {"number", "str"} and name.endswith("_id") or \
                name in ("service_code", "key", "token"), (name, value, ours[name])


def test_the_specs_examples_round_trip(world):
    services = _get(world, "/services.json", key=None)
    assert services.status_code == 200
    _same_fields(SPEC_SERVICES[0], services.json()[0])
    code = services.json()[0]["service_code"]
    definition = _get(world, f"/services/{code}.json", key=None).json()
    _same_fields(SPEC_DEFINITION, definition)
    _same_fields(SPEC_DEFINITION["attributes"][0], definition["attributes"][0])

    listed = _get(world, "/requests.json")
    assert listed.status_code == 200
    for ours in listed.json():
        _same_fields(SPEC_REQUESTS[0], ours)
    posted = _post(world, "/requests.json", {**SPEC_POST_FORM, "service_code": code,
                                             "attribute[handoff_token]": "spec-example-1"})
    assert posted.status_code == 201, posted.text
    _same_fields(SPEC_POST_ANSWER[0], posted.json()[0])
    token = _get(world, f"/tokens/{posted.json()[0]['token']}.json")
    _same_fields(SPEC_TOKEN[0], token.json()[0])
    refused = _post(world, "/requests.json", SPEC_POST_FORM, key=None)
    assert refused.status_code == 403
    _same_fields(SPEC_ERRORS[0], refused.json()[0])

    # XML: the spec's document and ours have the same elements; our XML says what our JSON says.
    spec_xml = xmltodict.parse(SPEC_REQUESTS_XML)["service_requests"]["request"]
    ours_xml = xmltodict.parse(_get(world, "/requests.xml").content)["service_requests"]["request"]
    ours_xml = ours_xml if isinstance(ours_xml, list) else [ours_xml]
    assert set(spec_xml) <= set(ours_xml[0])
    by_id = {r["service_request_id"]: r for r in _get(world, "/requests.json").json()}
    for element in ours_xml:
        ours = by_id[element["service_request_id"]]
        for name in SPEC_REQUESTS[0]:
            expected = ours[name]
            assert element[name] == (None if expected is None else str(expected)), name
    for path, root in (("/services.xml", "services"), (f"/services/{code}.xml", "service_definition"),
                       ("/discovery.xml", "discovery")):
        answer = _get(world, path, key=None)
        assert answer.status_code == 200 and root in xmltodict.parse(answer.content)
    error_xml = xmltodict.parse(_get(world, "/requests.xml", key=None).content)
    assert error_xml["errors"]["error"]["code"] == "403"


def test_services_are_the_routing_categories_with_keywords(world):
    services = {s["service_code"]: s for s in _get(world, "/services.json", key=None).json()}
    assert services["renshe"]["service_name"] == "劳动和社会保障" and "欠薪" in services["renshe"]["keywords"]
    assert services["shudi"]["service_name"] == "属地事项" and "路灯" in services["shudi"]["keywords"]
    assert all(s["keywords"] for s in services.values())
    assert _get(world, "/services/nosuch.json", key=None).status_code == 404


def test_post_and_read_back_a_request_with_its_status_and_extensions(world):
    posted = _post(world, "/requests.json", {"service_code": "jiaotong", "description": "青山村公交站牌倒了",
                                             "address_string": "青山村", "first_name": "李", "phone": "13900000000",
                                             "attribute[handoff_token]": "tok-1"})
    assert posted.status_code == 201, posted.text
    number = posted.json()[0]["service_request_id"]
    again = _post(world, "/requests.json", {"service_code": "jiaotong", "description": "青山村公交站牌倒了",
                                            "address_string": "青山村", "attribute[handoff_token]": "tok-1"})
    assert again.json()[0]["service_request_id"] == number  # the same token files once
    read = _get(world, f"/requests/{number}.json").json()[0]
    assert read["status"] == "open" and read["service_request_id"] == number
    assert read["extended_attributes"]["round"] == 1 and read["extended_attributes"]["rating"] is None
    assert read["status_notes"] and read["expected_datetime"]
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert "13900000000" not in case.text and case.resident.oa_openid is None
        if case.status == "assigned":
            cases.accept(session, case, Actor("staff"))
        cases.close(session, case, Actor("staff"), "站牌已重新立好")
    closed = _get(world, f"/requests/{number}.json").json()[0]
    assert closed["status"] == "closed" and "站牌已重新立好" in closed["status_notes"]
    assert [n["note"] for n in closed["extended_attributes"]["timeline"]][-1].startswith("办结")
    rated = _post(world, f"/requests/{number}/rating.json", {"rating": "satisfied"})
    assert rated.status_code == 200 and rated.json()[0]["extended_attributes"]["rating"] == "satisfied"
    assert _post(world, f"/requests/{number}/rating.json", {"rating": "satisfied"}).status_code == 409
    assert _get(world, "/requests.json", status="closed", service_code="jiaotong").json()[0][
        "service_request_id"] == number
    assert number not in {r["service_request_id"] for r in _get(world, "/requests.json", status="open").json()}


def test_no_open311_response_carries_personal_data(world):
    posted = _post(world, "/requests.json", {**SPEC_POST_FORM, "service_code": "shudi",
                                             "description": "幸福里小区5栋门口井盖丢了"})
    token = posted.json()[0]["token"]
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        secrets = {r.oa_openid for r in session.scalars(select(Resident)) if r.oa_openid}
        secrets |= {r.public_id for r in session.scalars(select(Resident))}
    secrets |= set(world["deputy_names"]) | {"13812345678", "3号楼", "5栋", "2单元", "30.123456", "120.654321",
                                             "王某某"}
    secrets |= {SPEC_POST_FORM[k] for k in ("email", "first_name", "last_name", "phone", "device_id")}
    bodies = []
    for fmt in ("json", "xml"):
        bodies += [_get(world, f"/requests.{fmt}"), _get(world, f"/requests/{world['number']}.{fmt}"),
                   _get(world, f"/tokens/{token}.{fmt}"), _get(world, f"/services.{fmt}", key=None),
                   _get(world, f"/discovery.{fmt}", key=None), posted]
    for response in bodies:
        assert response.status_code in (200, 201)
        text = response.content.decode("utf-8")
        leaked = sorted(s for s in secrets if s and s in text)
        assert not leaked, (response.url, leaked)
        assert not re.search(r"1[3-9]\d{9}", text), response.url
    read = _get(world, f"/requests/{world['number']}.json").json()[0]
    assert (read["lat"], read["long"]) == (30.12, 120.65) and read["address"]  # the grid, coarse


def _case_count() -> int:
    with tenant.use(tenant.all_counties("count")), db.session_scope() as session:
        return session.scalar(select(func.count(Case.id)))


@pytest.mark.parametrize("method,path,data,status", [
    ("GET", "/requests.txt", {}, 400),
    ("GET", "/requests.json", {"api_key": None}, 403),
    ("GET", "/requests.json", {"api_key": "o311_nosuchkey"}, 403),
    ("GET", "/requests.json", {"start_date": "yesterday"}, 400),
    ("GET", "/requests.json", {"start_date": "2026-01-01T00:00:00"}, 400),
    ("GET", "/requests.json", {"start_date": "2020-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, 400),
    ("GET", "/requests.json", {"status": "pending"}, 400),
    ("GET", "/requests.json", {"service_code": "nosuch"}, 400),
    ("GET", "/requests.json", {"jurisdiction_id": "yixian"}, 404),
    ("GET", "/requests/2099-999999.json", {}, 404),
    ("GET", "/tokens/nosuchtoken.json", {}, 404),
    ("POST", "/requests.json", {"description": "无类别"}, 400),
    ("POST", "/requests.json", {"service_code": "nosuch", "description": "x", "lat": "1", "long": "1"}, 404),
    ("POST", "/requests.json", {"service_code": "shudi", "lat": "1", "long": "1"}, 400),
    ("POST", "/requests.json", {"service_code": "shudi", "description": "井盖丢了"}, 400),
    ("POST", "/requests.json", {"service_code": "shudi", "description": "x", "lat": "north", "long": "1"}, 400),
    ("POST", "/requests.json", {"service_code": "shudi", "description": "x", "lat": "91", "long": "1"}, 400),
    ("POST", "/requests.json", {"service_code": "shudi", "description": "x" * 5000, "address_string": "x"}, 400),
    ("POST", "/requests.json", {"service_code": "shudi", "description": "x", "address_string": "x",
                                "attribute[handoff_token]": "t" * 65}, 400),
    ("POST", "/requests/{number}/rating.json", {"rating": "great"}, 400),
    ("POST", "/requests/{number}/rating.json", {"rating": "satisfied"}, 404),  # not one this partner filed
])
def test_bad_input_is_the_specs_error_with_a_4xx_and_changes_nothing(world, method, path, data, status):
    data = dict(data)
    key = data.pop("api_key", world["key"])
    if key:
        data["api_key"] = key
    path = path.replace("{number}", world["number"])
    before = _case_count()
    for fmt in ("json", "xml"):
        target = world["base"] + path.replace(".json", f".{fmt}")
        response = (requests.get(target, params=data, timeout=30) if method == "GET"
                    else requests.post(target, data=data, timeout=30))
        assert response.status_code == status, (target, response.text)
        if fmt == "json" or path.endswith(".txt"):
            body = response.json()
            assert isinstance(body, list) and body[0]["code"] == status and body[0]["description"]
        else:
            assert xmltodict.parse(response.content)["errors"]["error"]["code"] == str(status)
    assert _case_count() == before


def test_every_open311_route_is_swept_and_another_countys_key_sees_nothing(app, world):
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/open311")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    sweep = {
        ("GET", "/open311/v2/discovery.<fmt>"): None, ("GET", "/open311/v2/services.<fmt>"): None,
        ("GET", "/open311/v2/services/<code>.<fmt>"): None,
        ("GET", "/open311/v2/requests.<fmt>"): ("GET", "/requests.json", {}),
        ("POST", "/open311/v2/requests.<fmt>"): None,  # writes in the key's own county (checked below)
        ("GET", "/open311/v2/requests/<number>.<fmt>"): ("GET", f"/requests/{world['number']}.json", {}),
        ("POST", "/open311/v2/requests/<number>/rating.<fmt>"): (
            "POST", f"/requests/{world['number']}/rating.json", {"rating": "satisfied"}),
        ("GET", "/open311/v2/tokens/<token>.<fmt>"): ("GET", "/tokens/{token}.json", {}),
        # signed by the hand-off target, not keyed (tests/test_handoff_callback.py); refused below
        ("POST", "/open311/v2/callbacks/<token>"): None,
    }
    assert routes == set(sweep)
    token = _post(world, "/requests.json", {"service_code": "shudi", "description": "甲县井盖丢了",
                                            "address_string": "幸福里"}).json()[0]["token"]
    for entry in sweep.values():
        if entry is None:
            continue
        method, path, data = entry
        path = path.replace("{token}", token)
        for key, expected in (("b_key", {200, 404}), ("revoked_key", {403}), (None, {403})):
            response = (_get(world, path, key=key, **data) if method == "GET" else _post(world, path, data, key=key))
            assert response.status_code in expected, (path, key, response.status_code)
            assert world["number"] not in response.text and "甲县" not in response.text
            if key == "b_key" and path != "/requests.json":
                assert response.status_code == 404
    for key in ("key", "b_key", "revoked_key", None):  # a partner key is no signature
        pushed = _post(world, f"/callbacks/{token}", {"status": "closed"}, key=key)
        assert pushed.status_code == 403 and world["number"] not in pushed.text
    listed = _get(world, "/requests.json", key="b_key").json()
    assert [r["service_request_id"] for r in listed] == [world["b_case"]]
    # Writing with B's key files in B.
    filed = _post(world, "/requests.json", {"service_code": "shudi", "description": "乙县井盖丢了",
                                            "address_string": "幸福里"}, key="b_key").json()[0]
    with tenant.use(tenant.county(world["b"])), db.session_scope() as session:
        assert cases.case_by_number(session, filed["service_request_id"]).county_id == world["b"]


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat):
    from config.settings import load_settings
    from tests.conftest import settings_env

    return load_settings(settings_env(fake_wechat.base_url, OPEN311_RATE_LIMIT_PER_PARTNER="30 per minute"))


def test_each_partners_calls_are_rate_limited_and_logged(world):
    answers = [_get(world, "/requests.json").status_code for _ in range(32)]
    assert answers[:30] == [200] * 30 and answers[30:] == [429, 429]
    assert _get(world, "/requests.json", key="b_key").status_code == 200  # another key has its own count
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        logged = [c.status for c in session.scalars(select(PartnerCall).order_by(PartnerCall.id))]
    assert logged == answers


def test_county_staff_issue_and_revoke_a_partner_key_stored_hashed(app, world, fake_wechat):
    from liaison.interop.models import Partner
    from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account

    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_o311_staff")
    station = make_account(staff, fake_wechat, "o_o311_station", role="staff", name="站", station_code="S002")
    assert station.post("/api/open311/partners", {"name": "某平台"}).status_code == 403
    issued = staff.post("/api/open311/partners", {"name": "市12345平台"})
    assert issued.status_code == 201, issued.text
    key, partner_id = issued.json()["api_key"], issued.json()["id"]
    assert requests.get(world["base"] + "/requests.json", params={"api_key": key}, timeout=30).status_code == 200
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        row = session.scalar(select(Partner).where(Partner.public_id == partner_id))
        stored = [str(getattr(row, c.key)) for c in Partner.__table__.columns]
        assert key not in " ".join(stored) and row.key_hash != key
    listed = staff.get("/api/open311/partners").json()
    assert {p["id"]: p["active"] for p in listed}[partner_id] is True and "api_key" not in listed[0]
    assert staff.post(f"/api/open311/partners/{partner_id}/revoke").json()["active"] is False
    refused = requests.get(world["base"] + "/requests.json", params={"api_key": key}, timeout=30)
    assert refused.status_code == 403 and refused.json()[0]["code"] == 403
    assert staff.post("/api/open311/partners/AAAAAAAAAAAAAAAA/revoke").status_code == 404
