"""履职积分 through the mini-program API: county staff publish a standard with a three-step review chain,
a deputy reports two activities, one approved by three different reviewers counts in the ledger and
the 公示, one rejected never does; the XLSX export holds the 公示; station staff cannot publish."""
from __future__ import annotations

import base64
import io
from datetime import date

from openpyxl import load_workbook

from liaison.points import service as points
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account

CHAIN = [{"name": "联络站上报", "by": "station_staff"}, {"name": "代表工委复核", "by": "county_staff"},
         {"name": "主任会议确定", "by": "county_staff"}]


def test_an_activity_counts_after_three_approvals_and_a_rejected_one_never(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    county = bootstrap_staff(http, "", fake_wechat, "o_pts_county")
    second = make_account(county, fake_wechat, "o_pts_county2", role="staff", name="工委 复核员")
    station = make_account(county, fake_wechat, "o_pts_station", role="staff", name="城关站", station_code="S001")
    other_station = make_account(county, fake_wechat, "o_pts_station2", role="staff", name="青山站",
                                 station_code="S002")
    deputy = make_account(county, fake_wechat, "o_pts_d1", role="deputy", name="张建华", deputy_code="D001")
    year = date.today().year
    body = {"year": year, "title": f"{year}年度履职积分", "items": points.DEFAULT_ITEMS, "review_chain": CHAIN}
    assert station.post("/api/points/standards", body).status_code == 403
    bad = county.post("/api/points/standards", dict(body, items=[dict(points.DEFAULT_ITEMS[0], source="typed")]))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_source"
    assert county.post("/api/points/standards", body).status_code == 201

    today = date.today().isoformat()
    meeting = deputy.post("/api/activities", {"item_code": "meeting", "title": "常委会会议", "happened_on": today,
                                              "evidence": "列席并发言"}).json()
    training = deputy.post("/api/activities", {"item_code": "training", "title": "履职培训", "happened_on": today,
                                               "evidence": "参加培训"}).json()
    assert meeting["next_step"] == "联络站上报"
    assert deputy.post("/api/activities", {"item_code": "duty", "title": "值班", "happened_on": today,
                                           "evidence": "自报"}).status_code == 422  # scored by the system
    path = f"/api/activities/{meeting['id']}/review"
    assert other_station.post(path, {"decision": "approve"}).status_code == 404  # not their deputy
    assert station.post(path, {"decision": "approve"}).json()["next_step"] == "代表工委复核"
    assert station.post(path, {"decision": "approve"}).status_code == 403  # the county's step
    assert county.post(path, {"decision": "approve"}).status_code == 200
    assert county.post(path, {"decision": "approve"}).status_code == 409  # one person, one step
    assert deputy.get("/api/points/ledger").json()["total"] == 0  # not yet
    done = second.post(path, {"decision": "approve", "note": "同意"}).json()
    assert done["status"] == "approved" and [r["step_name"] for r in done["reviews"]] == [s["name"] for s in CHAIN]
    reject = f"/api/activities/{training['id']}/review"
    assert station.post(reject, {"decision": "approve"}).status_code == 200
    assert county.post(reject, {"decision": "reject"}).status_code == 422  # a rejection says why
    assert county.post(reject, {"decision": "reject", "note": "佐证不足"}).json()["status"] == "rejected"
    assert second.post(reject, {"decision": "approve"}).status_code == 409

    ledger = deputy.get("/api/points/ledger").json()
    assert ledger["total"] == 3.0 and [e["item_code"] for e in ledger["entries"]] == ["meeting"]
    assert ledger["entries"][0]["source"] == "履职活动申报"
    assert county.get("/api/deputies/D001/points").json()["total"] == 3.0
    assert other_station.get("/api/deputies/D001/points").status_code == 404
    assert county.post("/api/points/adjustments", {"deputy_code": "D001", "year": year, "points": -1,
                                                   "reason": "会议迟到"}).status_code == 201
    standings = county.get("/api/points/publication").json()["items"]
    assert standings[0]["deputy_code"] == "D001" and standings[0]["total"] == 2.0
    assert {s["deputy_code"] for s in other_station.get("/api/points/publication").json()["items"]} == {"D003"}
    exported = county.get("/api/points/export").json()
    book = load_workbook(io.BytesIO(base64.b64decode(exported["content_base64"])))
    assert list(book.worksheets[0].iter_rows(values_only=True))[1][1:3] == ("D001", "张建华")
