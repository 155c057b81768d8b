"""The webhook simulator, checked against wechatpy's own signature check and crypto.

A tiny Flask echo webhook (in this file) verifies requests with ``wechatpy.utils.check_signature`` and
``WeChatCrypto.decrypt_message`` (with ``msg_signature``), parses them with ``wechatpy.parse_message``
and answers with ``create_reply`` / ``encrypt_message``; how it answers is switchable per test.
"""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask, abort, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature
from werkzeug.serving import make_server

from wechat_fake.simulator import SimulatorError, WeChatSimulator, sign

ROOT = Path(__file__).resolve().parents[1]
TOKEN, APPID = "tok", "wx_test_app"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_fake_account"


class EchoWebhook:
    """reply: echo | success | plain (clear reply even in aes mode) | badsig | wrongappid | slow | long"""

    def __init__(self, token=TOKEN, aes_key=AES_KEY, appid=APPID):
        self.token, self.aes_key, self.appid = token, aes_key, appid
        self.reply = "echo"
        self.received = []
        self.lock = threading.Lock()
        app = Flask(__name__)
        app.add_url_rule("/wechat", "wechat", self.view, methods=["GET", "POST"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/wechat"

    def view(self):
        a = request.args
        try:
            check_signature(self.token, a["signature"], a["timestamp"], a["nonce"])
        except (InvalidSignatureException, KeyError):
            abort(403)
        if request.method == "GET":
            return a["echostr"]
        raw = request.get_data()
        aes = a.get("encrypt_type") == "aes"
        crypto = WeChatCrypto(self.token, self.aes_key, self.appid)
        try:
            plain = crypto.decrypt_message(raw, a["msg_signature"], a["timestamp"], a["nonce"]) if aes else raw
            msg = parse_message(plain)
        except InvalidSignatureException:
            abort(403)
        except Exception:
            abort(400)
        with self.lock:
            self.received.append({"query": dict(a), "raw": raw.decode(), "plain": plain, "msg": msg})
        if self.reply == "success":
            return "success"
        if self.reply == "slow":
            time.sleep(1.5)
        kind = msg.event if msg.type == "event" else msg.type
        text = "echo:" + str(getattr(msg, "content", None) or getattr(msg, "recognition", None) or kind)
        if self.reply == "long":
            text = "长" * 800
        xml = create_reply(text, msg, render=True)
        if not aes or self.reply == "plain":
            return xml
        if self.reply == "wrongappid":
            crypto = WeChatCrypto(self.token, self.aes_key, "wx_other")
        out = crypto.encrypt_message(xml, a["nonce"], a["timestamp"])
        if self.reply == "badsig":
            out = re.sub(r"<MsgSignature><!\[CDATA\[(\w+)\]\]>", "<MsgSignature><![CDATA[" + "0" * 40 + "]]>", out)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = EchoWebhook()
    yield h
    h.close()


def make_sim(hook, mode="safe", **kw):
    return WeChatSimulator(url=hook.url, token=TOKEN, appid=APPID,
                           encoding_aes_key=None if mode == "plaintext" else AES_KEY, mode=mode,
                           account=ACCOUNT, **kw)


# ---------------------------------------------------------------- signatures
def test_official_get_verification_vector():
    assert sign("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    check_signature("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492")


def test_verify_url_with_the_official_vector():
    hook = EchoWebhook(token="AAAAA")
    try:
        sim = WeChatSimulator(url=hook.url, token="AAAAA", appid=APPID, mode="plaintext")
        assert sim.verify_url(echostr="7386285815349528290", timestamp="1714036504",
                              nonce="1514711492") == "7386285815349528290"
        # the request carried exactly the official signature
        bad = sim.verify_url(echostr="x", timestamp="1714036504", nonce="1514711492", signature="0" * 40)
        assert bad != "x"
    finally:
        hook.close()


@pytest.mark.parametrize("mode", ["plaintext", "compatible", "safe"])
def test_text_round_trip_in_every_mode(hook, mode):
    sim = make_sim(hook, mode)
    reply = sim.send_text("o_resident_1", "路灯坏了")
    assert reply.status_code == 200 and reply.ok, reply.problems
    assert reply.content == "echo:路灯坏了" and reply.msg_type == "text"
    assert reply.encrypted == (mode != "plaintext")
    assert "<Content><![CDATA[echo:路灯坏了]]></Content>" in reply.xml
    got = hook.received[0]
    q = got["query"]
    assert q["openid"] == "o_resident_1" and {"signature", "timestamp", "nonce"} <= set(q)
    assert got["msg"].type == "text" and got["msg"].source == "o_resident_1" and got["msg"].target == ACCOUNT
    if mode == "plaintext":
        assert "encrypt_type" not in q and "msg_signature" not in q and "<Encrypt>" not in got["raw"]
    else:
        assert q["encrypt_type"] == "aes" and q["msg_signature"]
        enc = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", got["raw"]).group(1)
        assert q["msg_signature"] == sign(TOKEN, q["timestamp"], q["nonce"], enc)
        assert q["msg_signature"] != q["signature"]
    if mode == "safe":
        assert re.findall(r"<(\w+)>", got["raw"]) == ["xml", "ToUserName", "Encrypt"]
        assert "路灯" not in got["raw"]
    if mode == "compatible":
        assert "<Content><![CDATA[路灯坏了]]></Content>" in got["raw"] and "<Encrypt>" in got["raw"]


def test_wrong_token_is_rejected_by_wechatpy(hook):
    sim = WeChatSimulator(url=hook.url, token="wrong", appid=APPID, encoding_aes_key=AES_KEY, mode="safe")
    assert sim.send_text("o_1", "x").status_code == 403
    assert hook.received == []


def test_wrong_aes_key_is_rejected(hook):
    sim = WeChatSimulator(url=hook.url, token=TOKEN, appid=APPID, mode="safe",
                          encoding_aes_key="ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut")
    assert sim.send_text("o_1", "x").status_code == 400


def test_timestamp_override(hook):
    sim = make_sim(hook)
    assert sim.send_text("o_1", "x", timestamp=1700000000).status_code == 200
    assert hook.received[0]["query"]["timestamp"] == "1700000000"


# ---------------------------------------------------------------- replies
def test_reply_with_bad_msg_signature_is_caught(hook):
    hook.reply = "badsig"
    with pytest.raises(SimulatorError):
        make_sim(hook).send_text("o_1", "x")
    reply = make_sim(hook, strict=False).send_text("o_1", "x")
    assert not reply.ok and reply.xml is None and any("rejected" in p for p in reply.problems)


def test_message_carries_the_appid(hook):
    hook.appid = "wx_other"  # wechatpy checks the appid inside the decrypted message
    assert make_sim(hook).send_text("o_1", "x").status_code == 400


def test_reply_encrypted_for_another_appid_is_caught(hook):
    hook.reply = "wrongappid"
    with pytest.raises(SimulatorError):
        make_sim(hook).send_text("o_1", "x")
    reply = make_sim(hook, strict=False).send_text("o_1", "x")
    assert not reply.ok and any("InvalidAppId" in p for p in reply.problems)


def test_plaintext_reply_in_safe_mode_is_a_problem(hook):
    hook.reply = "plain"
    reply = make_sim(hook, "safe").send_text("o_1", "x")
    assert reply.content == "echo:x" and not reply.ok
    assert "plaintext reply in safe mode" in reply.problems
    assert make_sim(hook, "compatible").send_text("o_1", "x").ok


def test_success_ack_and_long_reply(hook):
    hook.reply = "success"
    reply = make_sim(hook).send_text("o_1", "x")
    assert reply.is_ack and reply.ok and reply.content is None and reply.xml is None
    hook.reply = "long"
    reply = make_sim(hook).send_text("o_1", "x")
    assert not reply.ok and any("longer than" in p for p in reply.problems)


def test_five_second_rule_timeout(hook):
    hook.reply = "slow"
    reply = make_sim(hook, timeout=0.3).send_text("o_1", "x")
    assert reply.timed_out and reply.status_code is None and not reply.ok


# ---------------------------------------------------------------- messages and events
def test_voice_and_events_parse_with_wechatpy(hook):
    sim = make_sim(hook)
    assert sim.send_voice("o_1", recognition="路灯坏了").content == "echo:路灯坏了"
    sim.send_event("o_1", "subscribe", event_key="qrscene_grid:G001")
    sim.send_event("o_1", "SCAN", event_key="grid:G001")
    sim.send_event("o_1", "CLICK", event_key="MENU_WRITE")
    sim.send_event("o_1", "LOCATION", latitude=31.2, longitude=121.5)
    sim.send_event("o_1", "unsubscribe")
    sim.send_subscribe_msg_event("o_1", [("TPL_A", "accept"), ("TPL_B", "reject")])
    sim.send_location("o_1", 31.23, 121.47, label="某小区")
    msgs = [r["msg"] for r in hook.received]
    assert msgs[0].type == "voice" and msgs[0].recognition == "路灯坏了"
    sub = msgs[1]
    assert sub.event == "subscribe_scan" and sub.scene_id == "grid:G001" and sub.ticket
    assert msgs[2].event == "scan" and msgs[2].scene_id == "grid:G001"
    assert msgs[3].event == "click" and msgs[3].key == "MENU_WRITE"
    assert msgs[4].event == "location" and msgs[4].latitude == 31.2
    assert msgs[5].event == "unsubscribe"
    assert msgs[6].event == "subscribe_msg_popup_event"
    assert [(s["TemplateId"], s["SubscribeStatusString"]) for s in msgs[6].subscribes] == [
        ("TPL_A", "accept"), ("TPL_B", "reject")]
    assert msgs[7].type == "location" and msgs[7].label == "某小区"


def test_msg_ids_unique_and_deliveries_repeat_the_same_message(hook):
    sim = make_sim(hook)
    sim.send_text("o_1", "a")
    sim.send_text("o_1", "b")
    assert hook.received[0]["msg"].id != hook.received[1]["msg"].id
    plain = sim.build_text("o_1", "重复", msg_id=1234567890123)
    replies = sim.deliveries(plain, n=3)
    assert len(replies) == 3 and all(r.content == "echo:重复" for r in replies)
    delivered = hook.received[2:]
    assert [d["msg"].id for d in delivered] == [1234567890123] * 3
    assert len({d["msg"].create_time for d in delivered}) == 1
    assert len({d["query"]["nonce"] for d in delivered}) == 3


def test_concurrent_sends(hook):
    sim = make_sim(hook)
    replies = sim.concurrently([lambda i=i: sim.send_text(f"o_{i}", f"msg{i}") for i in range(20)])
    assert sorted(r.content for r in replies) == sorted(f"echo:msg{i}" for i in range(20))
    assert all(r.ok for r in replies)
    assert len({r["msg"].id for r in hook.received}) == 20
    replies = sim.deliveries(sim.build_text("o_x", "同时"), n=3, concurrent=True)
    assert [r.content for r in replies] == ["echo:同时"] * 3


def test_send_raw_malformed_and_unsigned(hook):
    sim = make_sim(hook, "plaintext")
    assert sim.send_raw("<xml><MsgType>text", sign=True).status_code == 400
    assert sim.send_raw(sim.build_text("o_1", "x"), sign=False).status_code == 403
    assert sim.send_raw(sim.build_text("o_1", "x"), sign=True).content == "echo:x"
    safe = make_sim(hook, "safe")
    assert safe.send_raw(safe.build_text("o_1", "enc"), encrypt=True).content == "echo:enc"
    assert safe.send_raw("<xml><ToUserName>x</ToUserName><Encrypt>garbage</Encrypt></xml>").status_code == 400
    assert safe.send_raw("<xml/>", query={"signature": "0" * 40}).status_code == 403


def test_constructor_checks():
    with pytest.raises(ValueError):
        WeChatSimulator(url="http://x", token="t", appid="a", mode="safe")
    with pytest.raises(ValueError):
        WeChatSimulator(url="http://x", token="t", appid="a", encoding_aes_key="short", mode="safe")
    with pytest.raises(ValueError):
        WeChatSimulator(url="http://x", token="t", appid="a", mode="weird")


# ---------------------------------------------------------------- CLI
def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "wechat_fake", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_cli_text_and_event(hook):
    out = _cli("simulate", "--url", hook.url, "--token", TOKEN, "--appid", APPID, "--aes-key", AES_KEY,
               "--openid", "o_demo", "text", "小区路灯坏了")
    assert out.returncode == 0, out.stderr
    assert "echo:小区路灯坏了" in out.stdout and "encrypted" in out.stdout
    env = {"WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APPID, "WECHAT_ENCODING_AES_KEY": AES_KEY}
    out = _cli("simulate", "--url", hook.url, "event", "subscribe", "--key", "qrscene_grid:G001", env=env)
    assert out.returncode == 0, out.stderr
    assert "echo:subscribe_scan" in out.stdout
    assert hook.received[-1]["msg"].scene_id == "grid:G001"
    assert hook.received[-1]["query"]["encrypt_type"] == "aes"
    out = _cli("simulate", "--url", hook.url, "--deliveries", "3", "text", "重复", env=env)
    assert out.stdout.count("echo:重复") == 3
    assert len({r["msg"].id for r in hook.received[-3:]}) == 1
    out = _cli("simulate", "--url", hook.url, "verify", "--echostr", "hello", env=env)
    assert out.stdout.strip() == "hello"
