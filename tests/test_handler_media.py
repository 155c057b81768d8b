"""Handlers' photos of their work attached to 答复 and 办结, and enterprise codes (issue 15, items 5–6).

Over real HTTP (the live server), PostgreSQL, Redis, an RQ worker process (which fetches the chat photo
and delivers the resident's messages through the fake WeChat API), with the media in S3 (moto's server
mode, spoken to over HTTP) or in a local folder: a deputy and a department handler upload photos
(JPEG/PNG/WebP told by their bytes; other types 415, oversized 413, bad base64 422, nothing stored),
attach their own unattached uploads of the case to a reply or a close, the resident is told photos are
attached, the resident and a 并单 follower read the handler's photos through signed URLs while the
follower never sees the first resident's own photo; a foreign case's attachment id, another handler's,
and another county's are refused. The console's case page shows the case's media. An enterprise's
code decodes to the enterprise scene that puts the resident in the enterprise grid.
"""
from __future__ import annotations

import base64
import io
import re
import uuid

import pytest
import requests
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from liaison.case import service as cases
from liaison.case.models import CaseFollower
from liaison.core import db, tenant
from liaison.media import storage as media_storage
from liaison.media.models import STORED, MediaFile
from liaison.people import service as accounts
from liaison.people.models import Resident
from tests.api_fixtures import ApiUser, FlaskHttp, bootstrap_staff, live_http, make_account, resident
from tests.conftest import settings_env, wait_for
from tests.test_media import BUCKET, PHOTO, media_env, media_worker, moto_s3  # noqa: F401  (fixtures)
from tests.test_tenancy import county_b  # noqa: F401  (fixture)

CUSTOM_SEND = "/cgi-bin/message/custom/send"
NUMBER = re.compile(r"\d{4}-\d{6}")
MAX_BYTES = 20_000


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat, media_env):  # noqa: F811
    """The test settings with this run's media storage and a small upload limit."""
    from config.settings import load_settings

    return load_settings(settings_env(fake_wechat.base_url, MEDIA_UPLOAD_MAX_BYTES=str(MAX_BYTES), **media_env))


def _image(fmt: str, colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stored_objects(media_env) -> set[str]:  # noqa: F811
    """Every object in the media storage of this run."""
    if media_env["MEDIA_STORAGE"] == "local":
        from pathlib import Path

        root = Path(media_env["MEDIA_LOCAL_DIR"])
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    import boto3

    client = boto3.client("s3", endpoint_url=media_env["MEDIA_S3_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def _handler_rows() -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(MediaFile).where(MediaFile.account_id.is_not(None)))


def _as_chat_resident(app, http, base, openid: str) -> ApiUser:
    """A mini-program session of the resident who wrote in the chat (the same person signing in)."""
    with db.session_scope() as session:
        row = session.scalar(select(Resident).where(Resident.oa_openid == openid))
        token = accounts.issue_token(app.config["SETTINGS"].secret_key, accounts.Principal("resident", resident=row))
    return ApiUser(base, token, "resident", http)


def _custom_texts(fake, openid):
    return [c["json"]["text"]["content"] for c in fake.calls(CUSTOM_SEND)
            if c["json"] and c["json"].get("touser") == openid and "text" in c["json"]]


def _fetch(base: str, url: str) -> requests.Response:
    return requests.get(url if url.startswith("http") else base + url, timeout=10)


def test_handlers_attach_their_photos_to_reply_and_close(app, live_server, simulator, fake_wechat,
                                                         media_worker, media_env):  # noqa: F811
    base, http = live_server.url, live_http()
    staff = bootstrap_staff(http, base, fake_wechat, "o_hm_staff")
    deputy = make_account(staff, fake_wechat, "o_hm_deputy", role="deputy", name="张建华", deputy_code="D001")
    department = make_account(staff, fake_wechat, "o_hm_dept", role="department", name="住建 王",
                              department_code="zhujian")

    # The resident's case, with a photo sent in the chat (stored by the worker).
    openid = "o_hm_resident"
    reply = simulator.send_text(openid, "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑")
    number = NUMBER.search(reply.content).group(0)
    chat_media = "m_" + uuid.uuid4().hex
    fake_wechat.add_media(chat_media, PHOTO, "image/jpeg")
    assert simulator.send_image(openid, media_id=chat_media).ok
    wait_for(lambda: _stored_objects(media_env), message="the worker to store the chat photo")
    case_id = deputy.get(f"/api/cases/{number}").json()["id"]
    other = simulator.send_text("o_hm_other", "幸福里小区楼道的路灯也坏了")
    other_id = deputy.get(f"/api/cases/{NUMBER.search(other.content).group(0)}").json()["id"]
    assert deputy.post(f"/api/cases/{case_id}/accept").status_code == 200

    # Bad uploads: clear 4xx, no row and no object stored.
    objects, rows = _stored_objects(media_env), _handler_rows()
    gif = b"GIF89a" + b"\x00" * 64
    for data, status, code in [(_b64(gif), 415, "unsupported_media_type"),
                               (_b64(b"%PDF-1.4 not a photo"), 415, "unsupported_media_type"),
                               (_b64(b"\xff\xd8\xff\xe0" + b"x" * MAX_BYTES), 413, "upload_too_large"),
                               ("这不是base64!!", 422, "invalid_base64"),
                               ("aGVsbG8", 422, "invalid_base64")]:
        answer = deputy.post(f"/api/cases/{case_id}/attachments", {"data": data})
        assert answer.status_code == status and answer.json()["error"]["code"] == code, answer.text
    assert department.post(f"/api/cases/{case_id}/attachments", {"data": _b64(_image("PNG", "red"))}
                           ).status_code == 404  # not with any department: the department does not see it
    assert staff.post(f"/api/cases/{case_id}/attachments", {"data": _b64(_image("PNG", "red"))}
                      ).status_code == 403  # staff do not reply in the mini-program
    assert _stored_objects(media_env) == objects and _handler_rows() == rows

    # Good uploads: JPEG, PNG and WebP, each stored with the type its bytes say.
    photos = {fmt: _image(fmt, colour) for fmt, colour in (("JPEG", "blue"), ("PNG", "green"), ("WEBP", "white"))}
    ids = {}
    for fmt, data in photos.items():
        answer = deputy.post(f"/api/cases/{case_id}/attachments", {"data": _b64(data)})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["content_type"] == f"image/{fmt.lower()}" and body["size"] == len(data)
        assert _fetch(base, body["url"]).content == data  # the uploader reads it back
        ids[fmt] = body["id"]
    assert len(_stored_objects(media_env)) == len(objects) + 3

    # Another case's reply cannot take this case's photo; the reply on this case can, once.
    assert deputy.post(f"/api/cases/{other_id}/accept").status_code == 200
    answer = deputy.post(f"/api/cases/{other_id}/reply", {"text": "已联系", "attachments": [ids["JPEG"]]})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "attachments"
    assert deputy.get(f"/api/cases/{other_id}").json()["status"] == "accepted"
    answer = deputy.post(f"/api/cases/{case_id}/reply", {"text": "路灯已报修，明天更换灯泡",
                                                         "attachments": [ids["JPEG"]]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"]["detail"]["attachments"] == [ids["JPEG"]]
    again = deputy.post(f"/api/cases/{case_id}/reply", {"text": "再补充", "attachments": [ids["JPEG"]]})
    assert again.status_code == 422  # already attached
    assert deputy.post(f"/api/cases/{case_id}/reply", {"text": "x", "attachments": ["AAAAAAAAAAAAAAAA"]}
                       ).status_code == 422

    # The resident is told photos are attached (plain Chinese, through the worker and WeChat).
    told = wait_for(lambda: [t for t in _custom_texts(fake_wechat, openid) if "路灯已报修" in t],
                    message="the reply delivered to the resident")
    assert "附上了1张现场照片" in told[0] and "小程序" in told[0]

    # 办结 with the PNG; the rating prompt says a photo is attached.
    answer = deputy.post(f"/api/cases/{case_id}/close", {"summary": "已更换灯泡，恢复照明",
                                                         "attachments": [ids["PNG"]]})
    assert answer.status_code == 200, answer.text
    prompt = wait_for(lambda: [t for t in _custom_texts(fake_wechat, openid) if "已办结" in t],
                      message="the rating prompt delivered")
    assert "附上了1张现场照片" in prompt[0]

    # The department handles the other case: it cannot use the deputy's WebP upload, only its own.
    assert deputy.post(f"/api/cases/{other_id}/dispatch", {"department_code": "zhujian"}).status_code == 200
    assert department.post(f"/api/cases/{other_id}/accept").status_code == 200
    own = department.post(f"/api/cases/{other_id}/attachments", {"data": _b64(photos["PNG"])}).json()["id"]
    answer = department.post(f"/api/cases/{other_id}/reply", {"text": "已安排维修", "attachments": [ids["WEBP"]]})
    assert answer.status_code == 422
    answer = department.post(f"/api/cases/{other_id}/reply", {"text": "已安排维修", "attachments": [own]})
    assert answer.status_code == 200, answer.text

    # The case's resident sees their own chat photo and the handler's attached photos, not the
    # deputy's unattached WebP; a 并单 follower sees the handler's photos only.
    mine = _as_chat_resident(app, http, base, openid)
    items = mine.get(f"/api/cases/{case_id}/media").json()["items"]
    assert [(i["source"], i["attached"]) for i in items] == [("resident", False), ("handler", True),
                                                             ("handler", True)]
    assert [i["id"] for i in items[1:]] == [ids["JPEG"], ids["PNG"]]
    assert _fetch(base, items[0]["url"]).content == PHOTO
    follower = resident(http, base, fake_wechat, "o_hm_follower")
    with db.session_scope() as session:
        follower_id = session.scalar(select(Resident.id).where(Resident.mp_openid == "o_hm_follower"))
        session.add(CaseFollower(case_id=cases.case_by_number(session, number).id, resident_id=follower_id))
    seen = follower.get(f"/api/cases/{case_id}/media").json()["items"]
    assert [i["id"] for i in seen] == [ids["JPEG"], ids["PNG"]]
    assert [_fetch(base, i["url"]).content for i in seen] == [photos["JPEG"], photos["PNG"]]
    assert follower.get(f"/api/cases/{other_id}/media").status_code == 404
    if media_env["MEDIA_STORAGE"] == "local":  # a URL of the first resident's photo, forged for the follower
        secret = app.config["SETTINGS"].secret_key
        forged = media_storage.sign(secret, items[0]["id"], f"resident:{follower_id}", 2**31)
        assert _fetch(base, media_storage.LOCAL_URL_PREFIX + forged).status_code == 404
    # Station S002's staff (grid G003 only) see neither the case nor its photos.
    station = make_account(staff, fake_wechat, "o_hm_station", role="staff", name="青山站", station_code="S002")
    assert station.get(f"/api/cases/{case_id}/media").status_code == 404
    assert station.post(f"/api/cases/{case_id}/attachments", {"data": _b64(photos["PNG"])}).status_code in (403, 404)

    # The console's case page shows the media card; each file is served under the case's rule.
    from tests.console_fixtures import make_account as console_account
    from tests.console_fixtures import sign_in

    console_account("staff", "工委 李", login="hm_county")
    console_account("staff", "青山站 赵", station="S002", login="hm_station")
    client, outsider = app.test_client(), app.test_client()
    assert sign_in(client, "hm_county").status_code == 303 and sign_in(outsider, "hm_station").status_code == 303
    page = client.get(f"/console/cases/{case_id}").get_data(as_text=True)
    assert 'id="media"' in page and "办理照片" in page and "群众图片" in page
    assert ids["JPEG"] in page and ids["PNG"] in page and ids["WEBP"] not in page
    served = client.get(f"/console/cases/{case_id}/media/{ids['PNG']}")
    assert served.status_code == 200 and served.data == photos["PNG"] and served.mimetype == "image/png"
    assert client.get(f"/console/cases/{case_id}/media/{ids['WEBP']}").status_code == 404  # unattached
    assert client.get(f"/console/cases/{other_id}/media/{ids['PNG']}").status_code == 404  # another case's
    assert client.get(f"/console/cases/{case_id}/media/AAAAAAAAAAAAAAAA").status_code == 404
    assert outsider.get(f"/console/cases/{case_id}/media/{ids['PNG']}").status_code == 404


def test_another_countys_handler_is_refused(app, fake_wechat, media_env, county_b):  # noqa: F811
    from tests.test_tenancy import _login, _staff_of

    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_hm_a_staff")
    a_deputy = make_account(staff, fake_wechat, "o_hm_a_deputy", role="deputy", name="张建华", deputy_code="D001")
    a_resident = resident(http, "", fake_wechat, "o_hm_a_resident")
    a_case = a_resident.post("/api/cases", {"text": "幸福里小区3号楼门口的路灯坏了"}).json()["id"]
    assert a_deputy.post(f"/api/cases/{a_case}/accept").status_code == 200
    a_photo = a_deputy.post(f"/api/cases/{a_case}/attachments", {"data": _b64(_image("PNG", "red"))}).json()["id"]

    b_staff = _staff_of(county_b, http, fake_wechat, "o_hm_b_staff")
    b_deputy = make_account(b_staff, fake_wechat, "o_hm_b_deputy", role="deputy", name="乙代表", deputy_code="D001")
    b_resident = _login(http, fake_wechat, "o_hm_b_resident", county="yixian")
    b_case = b_resident.post("/api/cases", {"text": "幸福里小区楼道的路灯坏了"}).json()["id"]
    assert b_deputy.post(f"/api/cases/{b_case}/accept").status_code == 200

    objects = _stored_objects(media_env)
    # County B's deputy (same deputy code D001) neither uploads to A's case nor sees its photos …
    assert b_deputy.post(f"/api/cases/{a_case}/attachments", {"data": _b64(_image("PNG", "red"))}
                         ).status_code == 404
    assert b_deputy.get(f"/api/cases/{a_case}/media").status_code == 404
    # … nor attaches A's photo to B's own case.
    answer = b_deputy.post(f"/api/cases/{b_case}/reply", {"text": "已处理", "attachments": [a_photo]})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "unknown_attachment"
    assert _stored_objects(media_env) == objects
    with tenant.use(tenant.all_counties("check the row")), db.session_scope() as session:
        row = session.scalar(select(MediaFile).where(MediaFile.public_id == a_photo))
        assert row.event_id is None and row.state == STORED and row.county_id == tenant.DEFAULT_COUNTY_ID


def test_an_enterprise_code_puts_the_resident_in_the_enterprise_grid(app, fake_wechat, simulator):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_ent_staff")
    d001 = make_account(staff, fake_wechat, "o_ent_d001", role="deputy", name="张建华", deputy_code="D001")
    d004 = make_account(staff, fake_wechat, "o_ent_d004", role="deputy", name="陈志强", deputy_code="D004")
    station = make_account(staff, fake_wechat, "o_ent_station", role="staff", name="青山站", station_code="S002")

    listed = staff.get("/api/enterprises").json()
    assert [(e["code"], e["grid"]["code"], e["contact_name"]) for e in listed] == [("E001", "G004", "周经理")]
    assert [e["code"] for e in d004.get("/api/enterprises").json()] == ["E001"]
    assert d001.get("/api/enterprises").json() == [] and station.get("/api/enterprises").json() == []
    assert d001.get("/api/enterprises/E001/qrcode").status_code == 404  # not their grid's enterprise
    assert station.get("/api/enterprises/E001/qrcode").status_code == 404  # another station's
    assert staff.get("/api/enterprises/E404/qrcode").status_code == 404

    answer = d004.get("/api/enterprises/E001/qrcode").json()
    assert answer["scene"] == "enterprise:E001"
    image = Image.open(io.BytesIO(base64.b64decode(answer["image_png_base64"])))
    [found] = zxingcpp.read_barcodes(image)
    assert found.text == answer["url"]
    # What the phone reads is the ticket's URL; WeChat then pushes the scene stored at creation.
    [created] = [c for c in fake_wechat.qrcodes().values() if c["url"] == found.text]
    assert created["scene"] == "enterprise:E001"
    assert staff.get("/api/enterprises/E001/qrcode").json()["url"] == answer["url"]  # created once
    assert len(fake_wechat.calls("/cgi-bin/qrcode/create")) == 1

    reply = simulator.send_event("o_ent_worker", "subscribe", event_key="qrscene_" + created["scene"])
    assert "陈志强" in reply.content
    with db.session_scope() as session:
        assert session.scalar(select(Resident).where(Resident.oa_openid == "o_ent_worker")).grid.code == "G004"
    reply = simulator.send_text("o_ent_worker", "厂区门口道路破损，货车进出困难")
    number = NUMBER.search(reply.content).group(0)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.grid.code == "G004" and case.deputy.code == "D004"
