"""The console's 对接 page: Open311 partner keys and hand-off targets, for county staff only."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from liaison.core import db, tenant
from liaison.interop import access
from liaison.interop.models import HandoffTarget, Partner
from tests.console_fixtures import csrf_token, make_account, sign_in

PAGE = "/console/interop"
TARGET = {"target-name": "市12345", "target-category": "城乡建设", "target-endpoint": "https://12345.example/open311/v2",
          "target-api_key": "their-key-for-us", "target-service_code": "", "target-jurisdiction_id": ""}


@pytest.fixture
def clients(app):
    made = {"county": make_account("staff", "县人大工委 王主任", login="county"),
            "station": make_account("staff", "城关镇联络站 小李", station="S001", login="station1"),
            "deputy": make_account("deputy", "张建华", deputy="D001", login="deputy1")}
    signed = {}
    for who, login in (("county", "county"), ("station", "station1"), ("deputy", "deputy1")):
        client = app.test_client()
        assert sign_in(client, login).status_code == 303
        signed[who] = client
    assert all(made.values())
    return signed


def _token(client) -> str:
    return csrf_token(client.get("/console/cases").get_data(as_text=True))


def _post(client, path, data=None):
    return client.post(path, data={"csrf_token": _token(client), **(data or {})})


def _state():
    with db.session_scope() as session:
        return ([(p.name, p.key_hash, p.revoked_at) for p in session.scalars(select(Partner).order_by(Partner.id))],
                [(t.name, t.category, t.endpoint, t.api_key, t.callback_secret, t.removed_at)
                 for t in session.scalars(select(HandoffTarget).order_by(HandoffTarget.id))])


def _shown(html: str) -> str:
    return re.search(r'id="shown-secret">.*?<code>([^<]+)</code>', html, re.S).group(1)


def test_county_staff_issue_a_key_shown_once_and_revoke_it(clients):
    county = clients["county"]
    page = county.get(PAGE)
    assert page.status_code == 200 and "暂无对接方" in page.text
    issued = _post(county, f"{PAGE}/partners", {"partner-name": "县12345热线"})
    assert issued.status_code == 201
    key = _shown(issued.text)
    assert key.startswith(access.KEY_PREFIX)
    # As the Open311 views do: authenticate inside a unit of work's own scope (it narrows the scope).
    with tenant.use(tenant.all_counties("authenticate in a test")), db.session_scope() as session:
        partner = access.authenticate(session, key)
        public_id, name = partner.public_id, partner.name
    assert name == "县12345热线"
    listed = county.get(PAGE).text
    assert "县12345热线" in listed and key not in listed and key[:12] in listed
    assert _post(county, f"{PAGE}/partners", {"partner-name": ""}).status_code == 422
    assert _post(county, f"{PAGE}/partners/{public_id}/revoke").status_code == 303
    assert "已停用" in county.get(PAGE).text
    with tenant.use(tenant.all_counties("authenticate in a test")), db.session_scope() as session, \
            pytest.raises(access.BadKey):
        access.authenticate(session, key)
    assert _post(county, f"{PAGE}/partners/AAAAAAAAAAAAAAAA/revoke").status_code == 404
    assert len(_state()[0]) == 1


def test_county_staff_set_a_target_and_its_callback_secret_is_shown_once(clients):
    county = clients["county"]
    made = _post(county, f"{PAGE}/targets", TARGET)
    assert made.status_code == 201
    secret = _shown(made.text)
    (target,) = _state()[1]
    assert target[:5] == ("市12345", "城乡建设", TARGET["target-endpoint"], "their-key-for-us", secret)
    listed = county.get(PAGE).text
    assert "市12345" in listed and secret not in listed and "their-key-for-us" not in listed
    # Set again (a new key from them): replaced, the secret kept and not shown.
    again = _post(county, f"{PAGE}/targets", {**TARGET, "target-api_key": "a-new-key"})
    assert again.status_code == 303
    (target,) = _state()[1]
    assert target[3] == "a-new-key" and target[4] == secret
    with db.session_scope() as session:
        target_id = session.scalar(select(HandoffTarget.id))
    rotated = _post(county, f"{PAGE}/targets/{target_id}/rotate")
    assert rotated.status_code == 200 and _shown(rotated.text) == _state()[1][0][4] != secret
    assert _post(county, f"{PAGE}/targets/{target_id}/remove").status_code == 303
    assert _state()[1][0][5] is not None and "已停止" in county.get(PAGE).text
    assert _post(county, f"{PAGE}/targets/999999/rotate").status_code == 404


def test_bad_target_input_is_refused_and_changes_nothing(clients):
    county = clients["county"]
    before = _state()
    for bad in ({"target-endpoint": "ftp://x"}, {"target-category": "没有这个类别"}, {"target-name": ""},
                {"target-api_key": ""}, {"target-endpoint": "https://" + "x" * 400}):
        answer = _post(county, f"{PAGE}/targets", {**TARGET, **bad})
        assert answer.status_code == 422, bad
    assert _state() == before


def test_station_staff_and_deputies_are_refused_and_change_nothing(clients):
    county = clients["county"]
    key = _shown(_post(county, f"{PAGE}/partners", {"partner-name": "县12345热线"}).text)
    _post(county, f"{PAGE}/targets", TARGET)
    with db.session_scope() as session:
        partner_id = session.scalar(select(Partner.public_id))
        target_id = session.scalar(select(HandoffTarget.id))
    before = _state()
    for who in ("station", "deputy"):
        client = clients[who]
        page = client.get(PAGE)
        assert page.status_code == 403 and "县12345热线" not in page.text
        assert 'href="/console/interop"' not in client.get("/console/cases").text
        for path, data in ((f"{PAGE}/partners", {"partner-name": "某平台"}), (f"{PAGE}/partners/{partner_id}/revoke", {}),
                           (f"{PAGE}/targets", TARGET), (f"{PAGE}/targets/{target_id}/rotate", {}),
                           (f"{PAGE}/targets/{target_id}/remove", {})):
            answer = _post(client, path, data)
            assert answer.status_code == 403, (who, path)
            assert key not in answer.text and before[1][0][4] not in answer.text
    assert _state() == before
    assert 'href="/console/interop"' in county.get("/console/cases").text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(clients):
    county = clients["county"]
    _post(county, f"{PAGE}/targets", TARGET)
    with db.session_scope() as session:
        target_id = session.scalar(select(HandoffTarget.id))
    before = _state()
    for path, data in ((f"{PAGE}/partners", {"partner-name": "某平台"}), (f"{PAGE}/targets", TARGET),
                       (f"{PAGE}/targets/{target_id}/rotate", {}), (f"{PAGE}/targets/{target_id}/remove", {})):
        answer = county.post(path, data=data)
        assert answer.status_code == 400 and "请求已失效" in answer.text
    assert _state() == before
