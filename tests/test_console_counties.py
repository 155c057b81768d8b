"""Adding a county from the console (city staff's 县（区） page), with no restart.

City staff of 某市 sign in to the console and see only the 县（区） page of their city: its counties, and
a form adding one (code, name, its own official account or none, whether the city may see personal
data). Bad input is a 4xx that adds nothing; a county added there is in the city at once and its
webhook `/wechat/<code>` answers the next message. County staff get 403 on the page.
"""
from __future__ import annotations

import base64
import os

import pytest
import requests
from sqlalchemy import func, select

from liaison.console import auth
from liaison.core import db, tenant
from liaison.messaging.models import InboundMessage
from liaison.people import service as people
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import County
from tests.console_fixtures import PASSWORD, csrf_token, make_account, sign_in


def _aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()[:-1]


@pytest.fixture
def city_console(app):
    """甲县 in 某市, a city staff member with a console password, signed in; a county-A staff client."""
    with tenant.use(tenant.all_counties("add a county and a city")), db.session_scope() as session:
        jia = tenancy.add_county(session, "jiaxian", "甲县").id
        city = tenancy.add_city(session, "shi", "某市", ["jiaxian"]).id
    with tenant.use(tenant.county(jia)), db.session_scope() as session:
        account, _code = people.create_city_staff(session, "市人大 联络处", city)
        _credential, token = auth.issue_password_link(session, account, login="shi_staff")
        auth.redeem_password_link(session, token, PASSWORD)
    client = app.test_client()
    assert sign_in(client, "shi_staff").status_code == 303
    make_account("staff", "甲县（默认县）工委", login="a_county")
    county_client = app.test_client()
    assert sign_in(county_client, "a_county").status_code == 303
    return {"client": client, "county_client": county_client, "city": city}


def _post(client, **fields):
    token = csrf_token(client.get("/console/counties").get_data(as_text=True))
    return client.post("/console/counties", data={"csrf_token": token,
                                                  **{f"county-{k}": v for k, v in fields.items()}})


def _county_count() -> int:
    with tenant.use(tenant.all_counties("count counties")), db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(County))


def test_city_staff_see_their_counties_and_nothing_of_a_countys_console(city_console):
    client = city_console["client"]
    page = client.get("/console/counties")
    assert page.status_code == 200 and "甲县" in page.get_data(as_text=True)
    assert "/wechat/jiaxian" in page.get_data(as_text=True)
    for path in ("/console/cases", "/console/stats", "/console/accounts", "/console/bulletins"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/console/counties"), path
    token = csrf_token(page.get_data(as_text=True))
    assert client.post("/console/bulletins", data={"csrf_token": token}).status_code == 403
    # County staff have no 县（区） page.
    county = city_console["county_client"]
    assert county.get("/console/counties").status_code == 403
    token = csrf_token(county.get("/console/cases").get_data(as_text=True))
    assert county.post("/console/counties", data={"csrf_token": token, "county-code": "x1",
                                                  "county-name": "越权县"}).status_code == 403


def test_bad_input_is_refused_and_adds_nothing(city_console):
    client, before = city_console["client"], _county_count()
    key = _aes_key()
    cases = [
        ({"name": "丙县"}, 422),
        ({"code": "bingxian"}, 422),
        ({"code": "丙 县", "name": "丙县"}, 422),
        ({"code": "b" * 33, "name": "丙县"}, 422),
        ({"code": "bingxian", "name": "丙县", "wechat_app_id": "wx_bing"}, 422),  # not all four
        ({"code": "bingxian", "name": "丙县", "wechat_app_id": "wx_bing", "wechat_app_secret": "s",
          "wechat_token": "t", "wechat_encoding_aes_key": "short"}, 422),
        ({"code": "bingxian", "name": "丙县", "wechat_app_id": "wx_bing", "wechat_app_secret": "s",
          "wechat_token": "t", "wechat_encoding_aes_key": "!" * 43}, 422),
        ({"code": "jiaxian", "name": "又一个甲县"}, 409),
    ]
    for fields, status in cases:
        response = _post(client, **fields)
        assert response.status_code == status, (fields, response.status_code)
        assert "添加县（区）" in response.get_data(as_text=True)  # the form again, with the message
    assert client.post("/console/counties", data={"county-code": "x2", "county-name": "无令牌县"}).status_code == 400
    assert _county_count() == before
    assert key  # (a valid key is used in the next test)


def test_a_county_added_on_the_page_is_in_the_city_and_answers_at_once(city_console, live_server):
    from wechat_fake.simulator import WeChatSimulator

    client, key = city_console["client"], _aes_key()
    url = f"{live_server.url}/wechat/bingxian"
    assert requests.get(url, timeout=10).status_code == 404  # not there yet
    added = _post(client, code="bingxian", name="丙县", wechat_app_id="wx_bing_console",
                  wechat_app_secret="bing-secret", wechat_token="bing-token", wechat_encoding_aes_key=key,
                  personal_data="y")
    assert added.status_code == 303, added.get_data(as_text=True)
    page = client.get("/console/counties").get_data(as_text=True)
    assert "丙县" in page and "/wechat/bingxian" in page
    with tenant.use(tenant.all_counties("check the county")), db.session_scope() as session:
        county = tenancy.by_code(session, "bingxian")
        assert county.city_id == city_console["city"] and tenancy.grants_city_personal_data(county)
        county_id = county.id
    sim = WeChatSimulator(url=url, token="bing-token", appid="wx_bing_console", encoding_aes_key=key, mode="safe")
    reply = sim.send_text("o_bing_console", "幸福里小区路灯坏了")
    assert reply.ok, reply
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    with tenant.use(tenant.county(tenant.DEFAULT_COUNTY_ID)), db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0
    # Without an official account of its own it uses the city's (shared) one: no webhook of its own.
    assert _post(client, code="dingxian", name="丁县").status_code == 303
    assert requests.get(f"{live_server.url}/wechat/dingxian", timeout=10).status_code == 404
