"""一键找代表 codes: created once at WeChat and reused, refused near the cap, rendered locally; scanning a
code made by the service binds the resident to the grid and answers with the deputy's card; notice
boards as PDF and PNG."""
from __future__ import annotations

import base64
import io

import pytest
from sqlalchemy import select

from liaison import runtime
from liaison.core import db
from liaison.engagement import noticeboard, qrcodes
from liaison.engagement.models import QrCode
from liaison.people.models import Deputy, Resident
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account


def test_code_is_created_once_and_reused(app, fake_wechat):
    client = runtime.current().wechat
    with db.session_scope() as session:
        first = qrcodes.get_or_create(session, client, "grid", "G001")
    with db.session_scope() as session:
        again = qrcodes.get_or_create(session, client, "grid", "G001")
        assert (again.ticket, again.url) == (first.ticket, first.url)
        with pytest.raises(qrcodes.QrCodeError):
            qrcodes.get_or_create(session, client, "grid", "G404")
    creates = fake_wechat.calls("/cgi-bin/qrcode/create")
    assert len(creates) == 1
    assert creates[0]["json"]["action_name"] == "QR_LIMIT_STR_SCENE"
    assert creates[0]["json"]["action_info"]["scene"]["scene_str"] == "grid:G001"


def test_creation_is_refused_near_the_cap(app, fake_wechat, monkeypatch):
    monkeypatch.setattr(qrcodes, "PERMANENT_CAP", 3)
    monkeypatch.setenv("QR_PERMANENT_RESERVE", "1")
    client = runtime.current().wechat
    with db.session_scope() as session:
        qrcodes.get_or_create(session, client, "grid", "G001")
        qrcodes.get_or_create(session, client, "grid", "G002")
        with pytest.raises(qrcodes.QrCodeError) as refused:
            qrcodes.get_or_create(session, client, "grid", "G003")
        assert refused.value.code == "cap_reached" and "上限" in str(refused.value)
        assert qrcodes.get_or_create(session, client, "grid", "G001") is not None  # reuse still works
    assert len(fake_wechat.calls("/cgi-bin/qrcode/create")) == 2


def test_scanning_a_service_made_code_binds_the_grid(app, fake_wechat, simulator):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_qr_staff")
    answer = staff.get("/api/grids/G002/qrcode").json()
    assert answer["scene"] == "grid:G002" and base64.b64decode(answer["image_png_base64"]).startswith(b"\x89PNG")
    # What the resident's phone would read from the printed code is the ticket's URL; WeChat then pushes
    # the scene stored at creation.
    created = [c for c in fake_wechat.qrcodes().values() if c["url"] == answer["url"]]
    assert len(created) == 1
    reply = simulator.send_event("o_qr_resident", "subscribe", event_key="qrscene_" + created[0]["scene"])
    assert "李秀英" in reply.content and "东关社区第二网格" in reply.content
    with db.session_scope() as session:
        resident = session.scalar(select(Resident).where(Resident.oa_openid == "o_qr_resident"))
        assert resident.grid.code == "G002"
    # Already a follower: a SCAN of a deputy code moves them to that deputy's lead grid.
    deputy_code = staff.get("/api/deputies/D003/qrcode").json()
    reply = simulator.send_event("o_qr_resident", "SCAN", event_key=deputy_code["scene"])
    assert "王德明" in reply.content
    with db.session_scope() as session:
        assert session.scalar(select(Resident).where(Resident.oa_openid == "o_qr_resident")).grid.code == "G003"


def test_api_scopes_and_notice_boards(app, fake_wechat):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_qr_staff2")
    deputy = make_account(staff, fake_wechat, "o_qr_deputy", role="deputy", name="张建华", deputy_code="D001")
    assert deputy.get("/api/grids/G001/qrcode").status_code == 200
    assert deputy.get("/api/grids/G003/qrcode").status_code == 404  # not their grid
    assert deputy.get("/api/deputies/D002/notice-board").status_code == 404
    pdf = deputy.get("/api/deputies/D001/notice-board").json()
    assert pdf["content_type"] == "application/pdf"
    assert base64.b64decode(pdf["content_base64"]).startswith(b"%PDF")
    if noticeboard.font_path() is None:
        pytest.skip("no CJK font installed for PNG boards")
    png = staff.get("/api/deputies/D001/notice-board", format="png").json()
    data = base64.b64decode(png["content_base64"])
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.size == (1240, 1754)
    usage = staff.get("/api/qrcodes/usage").json()
    assert usage["used"] == 2 and usage["cap"] == 100000  # grid G001 + deputy D001, each created once
    with db.session_scope() as session:
        assert {q.scene for q in session.scalars(select(QrCode))} == {"grid:G001", "deputy:D001"}
        card = noticeboard.card_for(session, runtime.current().wechat,
                                    session.scalar(select(Deputy).where(Deputy.code == "D002")))
        assert card.grids == ["东关社区第二网格（主）", "幸福里社区第一网格（协）"]


def test_the_notice_board_shows_the_stations_coming_duty_shifts(app, fake_wechat):
    """The printed board lists the deputy's station's next planned shifts (day, hours, who); a
    cancelled one and another station's are not on it."""
    from datetime import timedelta

    from pypdf import PdfReader

    from liaison.core.clock import utcnow
    from liaison.core.workcalendar import CHINA_TZ

    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_qr_staff3")
    make_account(staff, fake_wechat, "o_qr_nb_d1", role="deputy", name="张建华", deputy_code="D001")
    make_account(staff, fake_wechat, "o_qr_nb_d2", role="deputy", name="李秀英", deputy_code="D002")
    day = utcnow().astimezone(CHINA_TZ).date() + timedelta(days=2)
    kept = staff.post("/api/shifts", {"station_code": "S001", "day": day.isoformat(), "kind": "reception",
                                      "title": "代表周三见", "deputy_codes": ["D001", "D002"],
                                      "start_minute": 540, "end_minute": 690})
    assert kept.status_code == 201, kept.text
    gone = staff.post("/api/shifts", {"station_code": "S001", "day": (day + timedelta(days=1)).isoformat(),
                                      "kind": "director", "title": "局长进站", "deputy_codes": ["D002"]})
    assert staff.post(f"/api/shifts/{gone.json()['id']}/cancel", {"reason": "停电"}).status_code == 200
    with db.session_scope() as session:
        deputy = session.scalar(select(Deputy).where(Deputy.code == "D001"))
        card = noticeboard.card_for(session, runtime.current().wechat, deputy)
    expected = f"{day.month}月{day.day}日（周{'一二三四五六日'[day.weekday()]}）09:00-11:30 代表周三见：张建华、李秀英"
    assert card.duty == (expected,)
    text = PdfReader(io.BytesIO(noticeboard.render_pdf(card))).pages[0].extract_text()
    assert "近期值班" in text and "张建华、李秀英" in text and "局长进站" not in text
    if noticeboard.font_path() is not None:
        assert noticeboard.render_png(card).startswith(b"\x89PNG")
