"""The case number residents are told (2026-000001) works wherever the API takes a case id, within the
caller's scope: someone else's number is a 404 like someone else's id."""
from __future__ import annotations

import pytest

from tests.api_fixtures import FlaskHttp, bootstrap_staff, resident

LAMP = "幸福里小区3号楼门口的路灯坏了"


@pytest.fixture
def http(app):
    return FlaskHttp(app.test_client())


def test_case_number_or_id_in_paths(http, fake_wechat):
    owner = resident(http, "", fake_wechat, "o_num_owner")
    created = owner.post("/api/cases", {"text": LAMP}).json()
    number, public_id = created["number"], created["id"]
    assert number != public_id and len(number) == 11 and number[4] == "-"
    by_id = owner.get(f"/api/cases/{public_id}")
    by_number = owner.get(f"/api/cases/{number}")
    assert by_id.status_code == by_number.status_code == 200
    assert by_number.json()["id"] == public_id and by_number.json() == by_id.json()
    # Actions take the number too.
    response = owner.post(f"/api/cases/{number}/information", {"text": "在3号楼门口"})
    assert response.status_code == 200 and response.json()["case"]["id"] == public_id
    # A handler in scope sees it by number; someone else's number is a 404, like an unknown one.
    staff = bootstrap_staff(http, "", fake_wechat, "o_num_staff")
    assert staff.get(f"/api/cases/{number}").status_code == 200
    stranger = resident(http, "", fake_wechat, "o_num_stranger")
    for ref in (number, public_id, "2099-999999"):
        response = stranger.get(f"/api/cases/{ref}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert stranger.post(f"/api/cases/{number}/withdraw").status_code == 404
    assert owner.post(f"/api/cases/{number}/withdraw").status_code == 200
