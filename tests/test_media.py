"""Chat photos and voice kept past WeChat's 3-day media expiry (issue 15, item 5).

On the real stack: the simulator → webhook → PostgreSQL; a real worker process fetches the media from
the fake WeChat's `media/get` and stores it, in S3 (moto's server mode, spoken to over HTTP) or in a
local folder; the handler reads it through the signed URL after the fake has expired the media id. A
media id already expired is recorded as lost on the row and on the case timeline. Who may read it
follows the case (a 并单 follower never sees another resident's photo; other counties: tests/test_tenancy.py
sweeps the list endpoint, which is in tests/test_api_authz.py's SWEEP).
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests
from sqlalchemy import select

from liaison.case.models import CaseEvent, CaseFollower
from liaison.core import db
from liaison.media import storage as media_storage
from liaison.media.models import LOST, STORED, MediaFile
from liaison.people.models import Resident
from liaison.wechat.errors import WeChatAPIError
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident
from tests.conftest import ROOT, WorkerProcess, settings_env, wait_for

PHOTO = b"\xff\xd8\xff\xe0" + b"JFIF-photo-of-the-broken-street-light" * 40 + b"\xff\xd9"
BUCKET = "liaison-media-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 in server mode: a real HTTP S3 API on a free port, for the whole session."""
    port = _free_port()
    log = tempfile.TemporaryFile()  # a pipe nobody reads would fill up and block the server
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(url + "/moto-api/data.json", timeout=2).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None  # died: fail below instead of waiting

    try:
        wait_for(up, timeout=60, message="moto's S3 server to answer")
        assert proc.poll() is None, "moto's S3 server exited"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _s3_env(url: str) -> dict[str, str]:
    return {"MEDIA_STORAGE": "s3", "MEDIA_S3_BUCKET": BUCKET, "MEDIA_S3_ENDPOINT_URL": url,
            "MEDIA_S3_ACCESS_KEY": "testing", "MEDIA_S3_SECRET_KEY": "testing", "MEDIA_URL_TTL_SECONDS": "120"}


@pytest.fixture(params=["s3", "local"])
def media_env(request, tmp_path):
    if request.param == "local":
        return {"MEDIA_STORAGE": "local", "MEDIA_LOCAL_DIR": str(tmp_path / "media"),
                "MEDIA_URL_TTL_SECONDS": "120"}
    url = request.getfixturevalue("moto_s3")
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return _s3_env(url)


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat, media_env):
    """The test settings with the media storage of this run (overrides conftest's)."""
    from config.settings import load_settings

    return load_settings(settings_env(fake_wechat.base_url, **media_env))


@pytest.fixture
def media_worker(settings, fake_wechat, media_env):
    worker = WorkerProcess(settings_env(fake_wechat.base_url, **media_env)).start()
    yield worker
    worker.stop()


def _media(case_number: str) -> list[MediaFile]:
    from liaison.case import service as cases

    with db.session_scope() as session:
        case = cases.case_by_number(session, case_number)
        rows = list(session.scalars(select(MediaFile).where(MediaFile.case_id == case.id).order_by(MediaFile.id)))
        session.expunge_all()
        return rows


def _open_case(simulator, openid: str) -> str:
    reply = simulator.send_text(openid, "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑")
    return re.search(r"\d{4}-\d{6}", reply.content).group(0)


def _read(app, url: str) -> requests.Response | object:
    if url.startswith("http"):
        return requests.get(url, timeout=10)
    return app.test_client().get(url)


def _body(response) -> bytes:
    return response.content if isinstance(response, requests.Response) else response.get_data()


def test_a_chat_photo_is_readable_by_the_handler_after_wechat_expired_it(app, simulator, fake_wechat,
                                                                       media_worker, media_env):
    openid = "o_media_resident"
    number = _open_case(simulator, openid)
    media_id = "m_" + uuid.uuid4().hex
    fake_wechat.add_media(media_id, PHOTO, "image/jpeg")
    reply = simulator.send_image(openid, media_id=media_id)
    assert reply.ok and number in reply.content

    wait_for(lambda: [m for m in _media(number) if m.state == STORED], message="the worker to store the photo")
    fake_wechat.expire_media(media_id)  # WeChat's 3 days are over
    with pytest.raises(WeChatAPIError) as gone:
        from liaison import runtime

        runtime.current().wechat.get_media(media_id)
    assert gone.value.errcode == 40007

    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_media_staff")
    deputy = make_account(staff, fake_wechat, "o_media_deputy", role="deputy", name="张建华", deputy_code="D001")
    case_id = deputy.get(f"/api/cases/{number}").json()["id"]
    listed = deputy.get(f"/api/cases/{case_id}/media")
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["state"] == "stored" and item["kind"] == "image" and item["content_type"] == "image/jpeg"
    assert item["size"] == len(PHOTO) and item["url_expires_in"] == 120
    if media_env["MEDIA_STORAGE"] == "s3":
        assert item["url"].startswith(media_env["MEDIA_S3_ENDPOINT_URL"]) and "X-Amz-Signature" in item["url"]
    else:
        assert item["url"].startswith(media_storage.LOCAL_URL_PREFIX)
    fetched = _read(app, item["url"])
    assert fetched.status_code == 200 and _body(fetched) == PHOTO

    # Station S002's staff (grid G003 only) do not see the case, nor its media.
    station = make_account(staff, fake_wechat, "o_media_station", role="staff", name="青山站", station_code="S002")
    assert station.get(f"/api/cases/{case_id}/media").status_code == 404

    # A 并单 follower sees the case but never the photo another resident sent.
    follower = resident(http, "", fake_wechat, "o_media_follower")
    with db.session_scope() as session:
        resident_id = session.scalar(select(Resident.id).where(Resident.mp_openid == "o_media_follower"))
        case = session.scalar(select(MediaFile).where(MediaFile.wechat_media_id == media_id))
        session.add(CaseFollower(case_id=case.case_id, resident_id=resident_id))
    seen = follower.get(f"/api/cases/{case_id}/media")
    assert seen.status_code == 200 and seen.json()["items"] == []
    assert follower.get(f"/api/cases/{case_id}").status_code == 200  # the case itself they see

    if media_env["MEDIA_STORAGE"] == "local":
        # The signed URL is bound to the deputy: another principal's signature, a forged one, an
        # expired one and a URL of an account that was disabled since all answer 404.
        token = item["url"][len(media_storage.LOCAL_URL_PREFIX):]
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert app.test_client().get(media_storage.LOCAL_URL_PREFIX + forged).status_code == 404
        public_id, viewer = media_storage.verify(app.config["SETTINGS"].secret_key, token)
        stale = media_storage.sign(app.config["SETTINGS"].secret_key, public_id, viewer, int(time.time()) - 1)
        assert app.test_client().get(media_storage.LOCAL_URL_PREFIX + stale).status_code == 404
        with db.session_scope() as session:
            follower_ref = f"resident:{resident_id}"
        as_follower = media_storage.sign(app.config["SETTINGS"].secret_key, public_id, follower_ref,
                                         int(time.time()) + 60)
        assert app.test_client().get(media_storage.LOCAL_URL_PREFIX + as_follower).status_code == 404


def test_a_media_id_wechat_already_expired_is_recorded_as_lost(app, simulator, fake_wechat, media_worker):
    openid = "o_media_late"
    number = _open_case(simulator, openid)
    media_id = "m_" + uuid.uuid4().hex
    fake_wechat.expire_media(media_id)
    assert simulator.send_image(openid, media_id=media_id).ok

    [row] = wait_for(lambda: [m for m in _media(number) if m.state == LOST], message="the photo recorded as lost")
    assert row.storage_key is None and "40007" in row.last_error
    with db.session_scope() as session:
        events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == row.case_id,
                                                              CaseEvent.action == "media_lost")))
        assert len(events) == 1 and "过期" in events[0].detail["reason"]
        assert events[0].detail["media"] == row.public_id

    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_media_staff2")
    listed = staff.get(f"/api/cases/{number}/media").json()["items"]
    assert [(i["state"], i["url"]) for i in listed] == [("lost", None)] and "过期" in listed[0]["lost_reason"]
    timeline = staff.get(f"/api/cases/{number}").json()
    assert "图片或语音已过期" in str(timeline)


def test_a_voice_message_is_kept_too(app, simulator, fake_wechat, media_worker):
    openid = "o_media_voice"
    number = _open_case(simulator, openid)
    media_id = "m_" + uuid.uuid4().hex
    voice = b"#!AMR\n" + bytes(range(256)) * 3
    fake_wechat.add_media(media_id, voice, "audio/amr")
    assert simulator.send_voice(openid, recognition="路灯到现在还没修好", media_id=media_id).ok
    [row] = wait_for(lambda: [m for m in _media(number) if m.state == STORED], message="the voice stored")
    assert row.kind == "voice" and row.content_type == "audio/amr" and row.size == len(voice)


def test_a_transient_wechat_failure_leaves_the_photo_pending_for_the_sweep(app, simulator, fake_wechat,
                                                                          media_worker):
    from datetime import timedelta

    from jobs.media_tasks import media_sweep
    from liaison.core import clock

    openid = "o_media_busy"
    number = _open_case(simulator, openid)
    media_id = "m_" + uuid.uuid4().hex
    fake_wechat.add_media(media_id, PHOTO)
    fake_wechat.fail_next("/cgi-bin/media/get", -1, "system busy")
    assert simulator.send_image(openid, media_id=media_id).ok
    [row] = wait_for(lambda: [m for m in _media(number) if m.attempts == 1], message="the first attempt")
    assert row.state == "pending" and "-1" in row.last_error

    later = clock.utcnow() + timedelta(minutes=1)
    clock.set_clock(lambda: later)
    try:
        assert media_sweep() == 1
    finally:
        clock.set_clock(None)
    [row] = wait_for(lambda: [m for m in _media(number) if m.state == STORED], message="the retry to store it")
    assert row.attempts == 2 and row.size == len(PHOTO)


def test_the_fake_expires_media_after_three_days(fake_wechat):
    from liaison.wechat.client import WeChatClient
    from tests.conftest import APP_ID, APP_SECRET

    client = WeChatClient(APP_ID, APP_SECRET, base_url=fake_wechat.base_url)
    fake_wechat.add_media("m_three_days", PHOTO)
    assert client.get_media("m_three_days") == (PHOTO, "image/jpeg")
    fake_wechat.advance(3 * 24 * 3600 + 1)
    with pytest.raises(WeChatAPIError) as gone:
        client.get_media("m_three_days")
    assert gone.value.errcode == 40007
