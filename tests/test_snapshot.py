"""随手拍 (代表直通车): a deputy's report through the mini-program API becomes a case with the county's
shorter deadline, its photos and location, and its own source in the 台账 and the statistics."""
from __future__ import annotations

from sqlalchemy import select

from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent
from liaison.core import db
from liaison.tenancy.models import County
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident
from tests.console_fixtures import make_account as console_account
from tests.console_fixtures import sign_in

TEXT = "幸福里小区门口的井盖丢了，晚上很危险"


def test_a_deputys_snapshot_is_a_case_with_the_shorter_deadline_and_its_own_source(app, fake_wechat):
    with db.session_scope() as session:
        session.get(County, 1).settings = {"snapshot_reply_days": 2}
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat)
    deputy = make_account(staff, fake_wechat, "o_snap_deputy", role="deputy", name="代表", deputy_code="D001")
    someone = resident(http, "", fake_wechat, "o_snap_resident")
    assert someone.post("/api/snapshots", {"text": TEXT}).status_code == 403
    assert deputy.post("/api/snapshots", {"text": "  "}).status_code in (400, 422)
    made = deputy.post("/api/snapshots", {"text": TEXT, "photos": ["media-1", "media-2"],
                                          "location": {"latitude": 30.1, "longitude": 120.2}})
    assert made.status_code == 201, made.text
    plain = someone.post("/api/cases", {"text": TEXT})
    assert plain.status_code == 201
    with db.session_scope() as session:
        snap = session.scalar(select(Case).where(Case.number == made.json()["number"]))
        other = session.scalar(select(Case).where(Case.number == plain.json()["number"]))
        assert snap.routing["label"] == "代表直通车" and snap.location["latitude"] == 30.1
        assert snap.deadline < other.deadline  # 2 working days, not the category's 7
        entry = session.scalar(select(CaseEvent).where(CaseEvent.case_id == snap.id,
                                                       CaseEvent.action == "snapshot"))
        assert entry.detail["photos"] == ["media-1", "media-2"] and entry.detail["working_days"] == 2
        assert cases.deadline_days(snap.category, "reply") > 2

    console_account("staff", "工委 李", login="snapstaff")
    client = app.test_client()
    sign_in(client, "snapstaff")
    ledger = client.get("/console/cases?source=deputy_snapshot")
    assert ledger.status_code == 200
    assert made.json()["number"] in ledger.text and plain.json()["number"] not in ledger.text
    assert "代表直通车（随手拍）" in ledger.text
    assert client.get("/console/cases?source=nosuch").status_code == 400
    stats = client.get("/console/stats?by=source")
    assert stats.status_code == 200 and "代表直通车（随手拍）" in stats.text and "小程序" in stats.text
