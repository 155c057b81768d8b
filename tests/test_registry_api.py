"""The registry import/export through the staff API (the services: tests/domain/test_registry.py)."""
from __future__ import annotations

import base64

from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account
from tests.domain.test_registry import GOOD, workbook


def test_import_through_the_staff_api(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_reg_staff")
    station_staff = make_account(staff, fake_wechat, "o_reg_station", role="staff", name="站", station_code="S002")

    def upload(user, content, filename="registry.xlsx"):
        return user.post("/api/registry/import", {"filename": filename,
                                                  "content_base64": base64.b64encode(content).decode()})

    bad = {"代表": [GOOD["代表"][0], ["D010", "赵红梅", "县", "", "G404", "主", "", "", ""]]}
    response = upload(staff, workbook(bad))
    assert response.status_code == 200 and response.json()["imported"] is False
    assert response.json()["errors"] == [{"sheet": "代表", "row": 2, "field": "网格", "message": "网格不存在：G404"}]
    assert upload(station_staff, workbook(GOOD)).status_code == 403
    ok = upload(staff, workbook(GOOD)).json()
    assert ok["imported"] is True and ok["created"]["deputies"] == 2
    assert any(d["code"] == "D010" for d in staff.get("/api/deputies").json())
    exported = staff.get("/api/registry/export", format="csv", sheet="grids").json()
    assert "G010" in base64.b64decode(exported["content_base64"]).decode("utf-8-sig")
    # The create endpoints now go through the registry services too.
    assert staff.post("/api/stations", {"code": "S010", "name": "x"}).status_code == 409
    response = staff.post("/api/grids", {"code": "G099", "name": "x", "station_code": "S404"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "station_code"
