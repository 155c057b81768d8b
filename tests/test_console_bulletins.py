"""通报 and 整改 pages over HTTP: generate, see, download (XLSX, PDF), publish, answer and verify a
整改 item; and the authorization sweep over every new page and export (another station's staff, a
deputy, a CSRF-less POST)."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from liaison.bulletin.models import Bulletin, Rectification
from liaison.case.models import Notice
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from tests.console_fixtures import csrf_token, make_account, make_case, sign_in
from tests.test_tenancy import county_b  # noqa: F401  (fixture: a second county)


@pytest.fixture
def people_(app):
    return {
        "county": make_account("staff", "县人大工委 王主任", login="county"),
        "station1": make_account("staff", "城关镇联络站 小李", station="S001", login="station1"),
        "station2": make_account("staff", "青山乡 小赵", station="S002", login="station2"),
        "deputy1": make_account("deputy", "张建华", deputy="D001", login="deputy1"),
        "deputy3": make_account("deputy", "王德明", deputy="D003", login="deputy3"),
    }


def _client(app, login):
    client = app.test_client()
    assert sign_in(client, login).status_code == 303
    return client


def _this_month() -> str:
    return utcnow().astimezone(CHINA_TZ).strftime("%Y-%m")


def _generate(client, station: str = "") -> str:
    page = client.get("/console/bulletins")
    answer = client.post("/console/bulletins", data={"csrf_token": csrf_token(page.text),
                                                     "bulletin-period": _this_month(), "bulletin-station": station})
    assert answer.status_code == 303, answer.text[:300]
    return answer.headers["Location"].rsplit("/", 1)[1]


def _publish(client, public_id: str, days: str = "10"):
    page = client.get(f"/console/bulletins/{public_id}")
    return client.post(f"/console/bulletins/{public_id}/publish",
                       data={"csrf_token": csrf_token(page.text), "publish-working_days": days})


def _count(model, *where) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _items() -> dict[tuple[str, str], str]:
    with db.session_scope() as session:
        return {(r.unit_label, r.figure): r.public_id for r in session.scalars(select(Rectification))}


@pytest.fixture
def cases_(app):
    make_case("G001", "幸福里小区3号楼门口的路灯坏了", "o_b1")
    make_case("G001", "幸福里小区垃圾清运不及时", "o_b2")
    make_case("G003", "青山村的路灯坏了", "o_b3")


def test_a_bulletin_is_generated_downloaded_and_published(app, people_, cases_):
    county = _client(app, "county")
    public_id = _generate(county)
    page = county.get(f"/console/bulletins/{public_id}")
    assert page.status_code == 200 and "群众诉求办理情况通报" in page.text and "草稿" in page.text
    assert "城关镇人大代表联络站" in page.text and "低于 90% 的单位" in page.text
    xlsx = county.get(f"/console/bulletins/{public_id}/download.xlsx")
    assert xlsx.status_code == 200 and "filename*=UTF-8''" in xlsx.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(xlsx.data))
    assert book["总体"]["A4"].value == "3"  # 受理量 of the three cases
    stations = [row for row in book["按联络站"].iter_rows(values_only=True)][2:]
    assert {r[0]: r[1] for r in stations} == {"城关镇人大代表联络站": "2", "青山乡人大代表之家": "1"}
    pdf = county.get(f"/console/bulletins/{public_id}/download.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    assert _count(Rectification) == 0  # a draft opens nothing
    published = _publish(county, public_id)
    assert published.status_code == 303
    # Nothing is closed yet: every station and deputy with cases is under 90 % on 办结率.
    items = _items()
    assert ("城关镇人大代表联络站", "closed_rate") in items and ("张建华", "closed_rate") in items
    assert _count(Notice, Notice.kind == "bulletin") == 3  # the three staff accounts of the county
    assert _count(Notice, Notice.kind == "rectification") >= 2
    assert "已发布" in county.get(f"/console/bulletins/{public_id}").text
    assert _publish(county, public_id).status_code in (404, 409)  # once only; the form is gone


def test_a_unit_answers_and_the_office_verifies(app, people_, cases_):
    county = _client(app, "county")
    _publish(county, _generate(county))
    item = _items()[("城关镇人大代表联络站", "closed_rate")]
    station1 = _client(app, "station1")
    listed = station1.get("/console/rectifications")
    assert listed.status_code == 200 and item in listed.text
    page = station1.get(f"/console/rectifications/{item}")
    assert 'id="form-respond"' in page.text and 'id="form-verify"' not in page.text
    empty = station1.post(f"/console/rectifications/{item}/respond",
                          data={"csrf_token": csrf_token(page.text), "respond-response": ""})
    assert empty.status_code == 422
    done = station1.post(f"/console/rectifications/{item}/respond",
                         data={"csrf_token": csrf_token(page.text), "respond-response": "已逐件督办"})
    assert done.status_code == 303
    refused = station1.post(f"/console/rectifications/{item}/verify",
                            data={"csrf_token": csrf_token(page.text), "verify-note": "自己核实"})
    assert refused.status_code == 403
    page = county.get(f"/console/rectifications/{item}")
    assert "已逐件督办" in page.text and 'id="form-verify"' in page.text
    assert county.post(f"/console/rectifications/{item}/verify",
                       data={"csrf_token": csrf_token(page.text), "verify-note": "属实"}).status_code == 303
    with db.session_scope() as session:
        assert session.scalar(select(Rectification.status).where(Rectification.public_id == item)) == "closed"
    again = county.post(f"/console/rectifications/{item}/verify", data={"csrf_token": csrf_token(page.text)})
    assert again.status_code == 409
    assert county.get("/console/rectifications?overdue=yes").status_code == 200
    assert county.get("/console/rectifications?status=nonsense").status_code == 422


def test_the_authorization_sweep_over_bulletin_pages(app, people_, cases_):
    county, station1 = _client(app, "county"), _client(app, "station1")
    station2, deputy1, deputy3 = _client(app, "station2"), _client(app, "deputy1"), _client(app, "deputy3")
    own_station = _generate(station1)  # 城关镇's own, a draft
    county_draft = _generate(county)
    pages = ["", "/download.xlsx", "/download.pdf"]
    for suffix in pages:
        assert station1.get(f"/console/bulletins/{own_station}{suffix}").status_code == 200
        assert county.get(f"/console/bulletins/{own_station}{suffix}").status_code == 200
        for outsider in (station2, deputy1):
            assert outsider.get(f"/console/bulletins/{own_station}{suffix}").status_code == 404
            assert outsider.get(f"/console/bulletins/{county_draft}{suffix}").status_code == 404
    assert deputy1.get("/console/bulletins").status_code == 403
    token = csrf_token(station2.get("/console/rectifications").text)
    assert station2.post("/console/bulletins", data={"csrf_token": token, "bulletin-period": _this_month(),
                                                     "bulletin-station": "S001"}).status_code == 422
    assert deputy1.post("/console/bulletins", data={"csrf_token": csrf_token(deputy1.get("/console/rectifications").text),
                                                    "bulletin-period": _this_month()}).status_code == 403
    assert station2.post(f"/console/bulletins/{own_station}/publish",
                         data={"csrf_token": token, "publish-working_days": "10"}).status_code == 404
    # CSRF-less POSTs change nothing.
    before = _count(Bulletin)
    assert county.post("/console/bulletins", data={"bulletin-period": _this_month()}).status_code == 400
    assert county.post(f"/console/bulletins/{county_draft}/publish",
                       data={"publish-working_days": "10"}).status_code == 400
    assert _count(Bulletin) == before and _count(Rectification) == 0
    assert _publish(county, county_draft).status_code == 303
    # Published, the county's bulletin reaches every station's staff; 整改 items stay the unit's.
    assert station2.get(f"/console/bulletins/{county_draft}").status_code == 200
    assert station2.post(f"/console/bulletins/{county_draft}/publish",
                         data={"csrf_token": token, "publish-working_days": "10"}).status_code == 403
    items = _items()
    theirs, deputy_item = items[("城关镇人大代表联络站", "closed_rate")], items[("张建华", "closed_rate")]
    for outsider in (station2, deputy3):
        assert outsider.get(f"/console/rectifications/{theirs}").status_code == 404
        assert outsider.get(f"/console/rectifications/{deputy_item}").status_code == 404
        assert theirs not in outsider.get("/console/rectifications").text
        page_token = csrf_token(outsider.get("/console/rectifications").text)
        assert outsider.post(f"/console/rectifications/{theirs}/respond",
                             data={"csrf_token": page_token, "respond-response": "越权"}).status_code == 404
    deputy_page = deputy1.get(f"/console/rectifications/{deputy_item}")
    assert deputy_page.status_code == 200 and deputy1.get(f"/console/rectifications/{theirs}").status_code == 404
    assert deputy1.post(f"/console/rectifications/{deputy_item}/respond",
                        data={"respond-response": "无令牌"}).status_code == 400
    assert deputy1.post(f"/console/rectifications/{deputy_item}/respond",
                        data={"csrf_token": csrf_token(deputy_page.text),
                              "respond-response": "已逐件回访群众"}).status_code == 303
    assert deputy1.post(f"/console/rectifications/{deputy_item}/verify",
                        data={"csrf_token": csrf_token(deputy_page.text)}).status_code == 403
    with db.session_scope() as session:
        states = dict(session.execute(select(Rectification.public_id, Rectification.status)).all())
    assert states[deputy_item] == "responded" and states[theirs] == "open"


def test_another_countys_staff_find_nothing_of_this_county(app, people_, cases_, county_b):  # noqa: F811
    from liaison.console import auth
    from liaison.core import tenant
    from liaison.people import service as people
    from tests.console_fixtures import PASSWORD

    county = _client(app, "county")
    bulletin = _generate(county)
    _publish(county, bulletin)
    item = next(iter(_items().values()))
    case_id, number = make_case("G001", "幸福里小区的井盖丢了", "o_b_a")
    with tenant.use(tenant.county(county_b)), db.session_scope() as session:
        account, _ = people.create_account(session, "staff", "乙县工委")
        _credential, token = auth.issue_password_link(session, account, login="yixian")
        auth.redeem_password_link(session, token, PASSWORD)
    other = _client(app, "yixian")  # signs in from the same console, lands in county B
    listed = other.get("/console/cases")
    assert listed.status_code == 200 and number not in listed.text
    assert other.get("/console/cases/count").get_json()["total"] == 0
    assert other.get(f"/console/cases/{case_id}").status_code == 404
    for path in (f"/console/bulletins/{bulletin}", f"/console/bulletins/{bulletin}/download.xlsx",
                 f"/console/bulletins/{bulletin}/download.pdf", f"/console/rectifications/{item}"):
        assert other.get(path).status_code == 404, path
    assert bulletin not in other.get("/console/bulletins").text
    assert item not in other.get("/console/rectifications").text
    token = csrf_token(other.get("/console/rectifications").text)
    assert other.post(f"/console/bulletins/{bulletin}/publish",
                      data={"csrf_token": token, "publish-working_days": "10"}).status_code == 404
    for action, field in (("respond", "respond-response"), ("verify", "verify-note")):
        assert other.post(f"/console/rectifications/{item}/{action}",
                          data={"csrf_token": token, field: "越界"}).status_code == 404
    own = _generate(other)  # county B's own bulletin counts county B's cases only: none
    with tenant.use(tenant.all_counties("check")), db.session_scope() as session:
        row = session.scalar(select(Bulletin).where(Bulletin.public_id == own))
        assert row.county_id == county_b and row.content["total"]["received"] == 0
        statuses = set(session.scalars(select(Rectification.status)))
    assert statuses == {"open"}
