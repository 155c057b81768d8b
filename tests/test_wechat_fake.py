"""The fake WeChat API server: protocol behaviour, failure injection and the control API."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from wechat_fake.server import FakeWeChatControl, FakeWeChatServer, png_comment

ROOT = Path(__file__).resolve().parents[1]
APPID, SECRET, MP_APPID, MP_SECRET = "wx_test_app", "s3cret", "wx_mini", "mini_s3cret"


@pytest.fixture
def fake():
    with FakeWeChatServer(appid=APPID, secret=SECRET, mp_appid=MP_APPID, mp_secret=MP_SECRET) as server:
        yield server


def stable(fake, appid=APPID, secret=SECRET, force=False):
    return requests.post(fake.base_url + "/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force},
        timeout=5).json()


def post(fake, path, body, token):
    return requests.post(fake.base_url + path, params={"access_token": token}, json=body, timeout=5)


def text_msg(openid="o_1", content="你好"):
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


# ---------------------------------------------------------------- tokens
def test_stable_token_is_stable_until_force_refresh(fake):
    first = stable(fake)
    assert first["expires_in"] == 7200 and first["access_token"]
    assert stable(fake)["access_token"] == first["access_token"]
    forced = stable(fake, force=True)["access_token"]
    assert forced != first["access_token"]
    # force_refresh invalidates the previous token
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), first["access_token"]).json()["errcode"] == 40001
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), forced).json()["errcode"] == 0


def test_stable_token_validates_credentials(fake):
    assert stable(fake, appid="wx_other")["errcode"] == 40013
    assert stable(fake, secret="wrong")["errcode"] == 40125
    bad = requests.post(fake.base_url + "/cgi-bin/stable_token", json={"appid": APPID, "secret": SECRET}, timeout=5)
    assert bad.json()["errcode"] == 40002


def test_cgi_bin_token_issues_new_token_and_old_one_expires_after_grace(fake):
    q = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    t1 = requests.get(fake.base_url + "/cgi-bin/token", params=q, timeout=5).json()["access_token"]
    t2 = requests.get(fake.base_url + "/cgi-bin/token", params=q, timeout=5).json()["access_token"]
    assert t1 != t2
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), t1).json()["errcode"] == 0
    fake.advance(301)
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), t1).json()["errcode"] == 42001
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), t2).json()["errcode"] == 0


def test_access_token_required_invalid_and_expired(fake):
    token = stable(fake)["access_token"]
    r = requests.post(fake.base_url + "/cgi-bin/message/custom/send", json=text_msg(), timeout=5)
    assert r.json()["errcode"] == 41001
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), "made_up").json()["errcode"] == 40001
    fake.expire_tokens()
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), token).json()["errcode"] == 42001
    fresh = stable(fake)["access_token"]
    assert fresh != token
    fake.advance(7201)
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), fresh).json()["errcode"] == 42001


def test_invalidate_tokens_keeps_stable_token_until_forced(fake):
    token = stable(fake)["access_token"]
    fake.invalidate_tokens()
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), token).json()["errcode"] == 40001
    assert stable(fake)["access_token"] == token
    assert stable(fake, force=True)["access_token"] != token


def test_tokens_are_per_app(fake):
    oa = stable(fake)["access_token"]
    mini = stable(fake, MP_APPID, MP_SECRET)["access_token"]
    data = {"thing1": {"value": "已受理"}}
    body = {"touser": "o_mp", "template_id": "T", "data": data}
    assert post(fake, "/cgi-bin/message/subscribe/send", body, oa).json()["errcode"] == 48001
    assert post(fake, "/cgi-bin/message/subscribe/send", body, mini).json()["errcode"] == 0
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), mini).json()["errcode"] == 48001
    assert fake.calls("/cgi-bin/message/subscribe/send")[1]["appid"] == MP_APPID


# ---------------------------------------------------------------- messages
def test_custom_send_validation_and_recording(fake):
    token = stable(fake)["access_token"]
    assert post(fake, "/cgi-bin/message/custom/send", {"msgtype": "text", "text": {"content": "x"}},
                token).json()["errcode"] == 40003
    assert post(fake, "/cgi-bin/message/custom/send", {"touser": "o", "msgtype": "fax", "fax": {}},
                token).json()["errcode"] == 47001
    assert post(fake, "/cgi-bin/message/custom/send", {"touser": "o", "msgtype": "text", "text": {}},
                token).json()["errcode"] == 47001
    r = requests.post(fake.base_url + "/cgi-bin/message/custom/send", params={"access_token": token},
                      data=b"{not json", timeout=5)
    assert r.json()["errcode"] == 47001
    assert post(fake, "/cgi-bin/message/custom/send", text_msg("o_r", "路灯已修"), token).json()["errcode"] == 0
    sent = fake.sent_messages()
    assert len(sent) == 1
    assert sent[0]["kind"] == "custom" and sent[0]["touser"] == "o_r"
    assert sent[0]["body"]["text"]["content"] == "路灯已修"
    calls = fake.calls("/cgi-bin/message/custom/send")
    assert len(calls) == 5 and calls[-1]["method"] == "POST" and calls[-1]["query"]["access_token"] == token
    assert calls[-1]["json"] == text_msg("o_r", "路灯已修") and calls[-1]["time"] > 0


def test_bizsend_checks_thing_fields(fake):
    token = stable(fake)["access_token"]
    body = {"touser": "o", "template_id": "T1", "data": {"thing1": {"value": "这" * 21}}}
    assert post(fake, "/cgi-bin/message/subscribe/bizsend", body, token).json()["errcode"] == 47003
    body["data"]["thing1"]["value"] = "第一行\n第二行"
    assert post(fake, "/cgi-bin/message/subscribe/bizsend", body, token).json()["errcode"] == 47003
    body["data"]["thing1"]["value"] = "您的来信已受理"
    r = post(fake, "/cgi-bin/message/subscribe/bizsend", body, token).json()
    assert r["errcode"] == 0 and r["msgid"]
    assert [m["kind"] for m in fake.sent_messages()] == ["bizsend"]


def test_template_send_client_msg_id_is_idempotent(fake):
    token = stable(fake)["access_token"]
    body = {"touser": "o", "template_id": "T", "data": {"thing1": {"value": "x"}}, "client_msg_id": "reply-42"}
    first = post(fake, "/cgi-bin/message/template/send", body, token).json()
    second = post(fake, "/cgi-bin/message/template/send", body, token).json()
    assert first["errcode"] == second["errcode"] == 0 and first["msgid"] == second["msgid"]
    assert len(fake.sent_messages("template")) == 1
    fake.advance(601)
    third = post(fake, "/cgi-bin/message/template/send", body, token).json()
    assert third["msgid"] != first["msgid"]
    assert len(fake.sent_messages("template")) == 2


def test_mass_sends(fake):
    token = stable(fake)["access_token"]
    tag_id = post(fake, "/cgi-bin/tags/create", {"tag": {"name": "网格G001"}}, token).json()["tag"]["id"]
    body = {"filter": {"is_to_all": False, "tag_id": tag_id}, "msgtype": "text", "text": {"content": "通知"},
            "clientmsgid": "m1"}
    r = post(fake, "/cgi-bin/message/mass/sendall", body, token).json()
    assert r["errcode"] == 0 and r["msg_id"]
    assert post(fake, "/cgi-bin/message/mass/sendall", body, token).json()["errcode"] == 45065
    one = {"touser": ["o1"], "msgtype": "text", "text": {"content": "x"}, "clientmsgid": "m2"}
    assert post(fake, "/cgi-bin/message/mass/send", one, token).json()["errcode"] == 40130
    one["touser"] = ["o1", "o2"]
    assert post(fake, "/cgi-bin/message/mass/send", one, token).json()["errcode"] == 0
    assert [m["kind"] for m in fake.sent_messages()] == ["mass_tag", "mass_openids"]
    assert fake.sent_messages("mass_openids")[0]["touser"] == ["o1", "o2"]


def test_enforce_windows():
    with FakeWeChatServer(enforce_windows=True) as fake:
        token = stable(fake)["access_token"]
        assert post(fake, "/cgi-bin/message/custom/send", text_msg("o1"), token).json()["errcode"] == 45015
        fake.open_window("o1", kind="event")  # 3 messages within a minute
        codes = [post(fake, "/cgi-bin/message/custom/send", text_msg("o1"), token).json()["errcode"]
                 for _ in range(4)]
        assert codes == [0, 0, 0, 45047]
        fake.open_window("o2", kind="message")
        fake.advance(48 * 3600 + 1)
        token = stable(fake)["access_token"]  # the old one expired meanwhile
        assert post(fake, "/cgi-bin/message/custom/send", text_msg("o2"), token).json()["errcode"] == 45015


# ---------------------------------------------------------------- other endpoints
def test_tags(fake):
    token = stable(fake)["access_token"]
    tag = post(fake, "/cgi-bin/tags/create", {"tag": {"name": "代表A"}}, token).json()["tag"]
    assert post(fake, "/cgi-bin/tags/create", {"tag": {"name": "代表A"}}, token).json()["errcode"] == 45157
    too_many = {"openid_list": [f"o{i}" for i in range(51)], "tagid": tag["id"]}
    assert post(fake, "/cgi-bin/tags/members/batchtagging", too_many, token).json()["errcode"] == 40032
    assert post(fake, "/cgi-bin/tags/members/batchtagging", {"openid_list": ["o1"], "tagid": 999},
                token).json()["errcode"] == 45159
    ok = {"openid_list": ["o1", "o2"], "tagid": tag["id"]}
    assert post(fake, "/cgi-bin/tags/members/batchtagging", ok, token).json()["errcode"] == 0
    tags = requests.get(fake.base_url + "/cgi-bin/tags/get", params={"access_token": token}, timeout=5).json()
    assert tags["tags"] == [{"id": tag["id"], "name": "代表A", "count": 2}]
    post(fake, "/cgi-bin/tags/members/batchuntagging", {"openid_list": ["o1"], "tagid": tag["id"]}, token)
    assert fake.user_tags("o1") == set() and fake.user_tags("o2") == {tag["id"]}


def test_qrcode(fake):
    token = stable(fake)["access_token"]
    temp = post(fake, "/cgi-bin/qrcode/create", {"action_name": "QR_STR_SCENE", "expire_seconds": 600,
                                                 "action_info": {"scene": {"scene_str": "grid:G001"}}}, token).json()
    assert temp["ticket"] and temp["url"] and temp["expire_seconds"] == 600
    perm = post(fake, "/cgi-bin/qrcode/create", {"action_name": "QR_LIMIT_STR_SCENE",
                                                 "action_info": {"scene": {"scene_str": "grid:G002"}}}, token).json()
    assert "expire_seconds" not in perm
    assert fake.qrcodes()[perm["ticket"]]["scene"] == "grid:G002"
    bad = post(fake, "/cgi-bin/qrcode/create", {"action_name": "QR_LIMIT_STR_SCENE",
                                                "action_info": {"scene": {"scene_str": "x" * 65}}}, token).json()
    assert bad["errcode"] == 40097


def test_jscode2session_single_use_codes(fake):
    fake.register_code("code1", "o_mp_1", "sk==", unionid="u_1")
    q = {"appid": MP_APPID, "secret": MP_SECRET, "js_code": "code1", "grant_type": "authorization_code"}
    url = fake.base_url + "/sns/jscode2session"
    assert requests.get(url, params=q, timeout=5).json() == {"openid": "o_mp_1", "session_key": "sk==",
                                                             "unionid": "u_1"}
    assert requests.get(url, params=q, timeout=5).json()["errcode"] == 40163
    assert requests.get(url, params={**q, "js_code": "nope"}, timeout=5).json()["errcode"] == 40029
    assert requests.get(url, params={**q, "secret": "x"}, timeout=5).json()["errcode"] == 40125
    fake.set_response("/sns/jscode2session", {"openid": "fixed", "session_key": "k"})
    assert requests.get(url, params={**q, "js_code": "any"}, timeout=5).json()["openid"] == "fixed"


def test_wxacode_returns_png_or_json_error(fake):
    token = stable(fake, MP_APPID, MP_SECRET)["access_token"]
    r = post(fake, "/wxa/getwxacodeunlimit", {"scene": "g=G001", "page": "pages/letter/new"}, token)
    assert r.headers["Content-Type"] == "image/png" and r.content.startswith(b"\x89PNG")
    assert '"g=G001"' in png_comment(r.content)
    r = post(fake, "/wxa/getwxacodeunlimit", {"scene": "网格"}, token)
    assert r.json()["errcode"] == 40169


def test_msg_sec_check_v2(fake):
    token = stable(fake, MP_APPID, MP_SECRET)["access_token"]
    body = {"version": 2, "openid": "o_mp", "scene": 2, "content": "小区路灯坏了"}
    assert post(fake, "/wxa/msg_sec_check", body, token).json()["result"]["suggest"] == "pass"
    body["content"] = "有人在楼下赌博"
    r = post(fake, "/wxa/msg_sec_check", body, token).json()
    assert r["errcode"] == 0 and r["result"]["suggest"] == "risky"
    body["content"] = "代开发票"
    assert post(fake, "/wxa/msg_sec_check", body, token).json()["result"]["suggest"] == "review"


# ---------------------------------------------------------------- failure injection
def test_fail_next_and_http_failures(fake):
    token = stable(fake)["access_token"]
    path = "/cgi-bin/message/custom/send"
    fake.fail_next(path, 45015, "out of window", times=2)
    fake.fail_next_http(path, 502)
    got = [post(fake, path, text_msg(), token) for _ in range(4)]
    assert [g.json()["errcode"] for g in got[:2]] == [45015, 45015]
    assert got[2].status_code == 502
    assert got[3].json()["errcode"] == 0
    assert len(fake.sent_messages()) == 1 and len(fake.calls(path)) == 4


def test_delay_next(fake):
    token = stable(fake)["access_token"]
    fake.delay_next("/cgi-bin/message/custom/send", 2)
    with pytest.raises(requests.Timeout):
        requests.post(fake.base_url + "/cgi-bin/message/custom/send", params={"access_token": token},
                      json=text_msg(), timeout=0.3)
    # the delay was single-use
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), token).json()["errcode"] == 0


def test_control_api_over_http_and_reset(fake):
    ctl = FakeWeChatControl(fake.base_url)
    ctl.fail_next("/cgi-bin/stable_token", -1, "busy")
    assert stable(fake)["errcode"] == -1
    ctl.fail_next_http("/cgi-bin/stable_token", 503)
    assert requests.post(fake.base_url + "/cgi-bin/stable_token", json={}, timeout=5).status_code == 503
    token = stable(fake)["access_token"]
    post(fake, "/cgi-bin/message/custom/send", text_msg(), token)
    assert len(ctl.calls("/cgi-bin/stable_token")) == 3
    assert all(not c["path"].startswith("/__fake__") for c in ctl.calls())
    assert ctl.sent_messages()[0]["touser"] == "o_1"
    ctl.register_code("c9", "o_mp_9")
    q = {"appid": MP_APPID, "secret": MP_SECRET, "js_code": "c9", "grant_type": "authorization_code"}
    assert requests.get(fake.base_url + "/sns/jscode2session", params=q, timeout=5).json()["openid"] == "o_mp_9"
    ctl.expire_tokens()
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), token).json()["errcode"] == 42001
    ctl.reset()
    assert ctl.calls() == [] and fake.sent_messages() == []
    assert post(fake, "/cgi-bin/message/custom/send", text_msg(), token).json()["errcode"] == 40001


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_in_another_process():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "wechat_fake", "serve", "--port", str(port),
                             "--appid", "wx_cli", "--secret", "cli_secret"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(base + "/__fake__/health", timeout=0.5)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        ctl = FakeWeChatControl(base)
        r = requests.post(base + "/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": "wx_cli", "secret": "cli_secret"}, timeout=5).json()
        assert r["access_token"]
        ctl.fail_next("/cgi-bin/message/custom/send", 45047)
        r2 = requests.post(base + "/cgi-bin/message/custom/send", params={"access_token": r["access_token"]},
                           json=text_msg(), timeout=5).json()
        assert r2["errcode"] == 45047
        assert [c["path"] for c in ctl.calls()] == ["/cgi-bin/stable_token", "/cgi-bin/message/custom/send"]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
