"""The official-account webhook over real HTTP: verification, modes, bad input, dedup, events, ratings."""
from __future__ import annotations

import re
import time

import pytest
import requests
from sqlalchemy import func, select

from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent
from liaison.core import db
from liaison.messaging.models import InboundMessage
from liaison.people.models import Resident
from tests.conftest import AES_KEY, APP_ID, SIMULATOR_TIMEOUT, TOKEN, LiveServer

CASE_NUMBER = re.compile(r"\d{4}-\d{6}")


def count(model) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def nothing_stored():
    return count(InboundMessage) == 0 and count(Case) == 0 and count(Resident) == 0


def make_sim(live_server, mode):
    from wechat_fake.simulator import WeChatSimulator

    return WeChatSimulator(url=live_server.url + "/wechat", token=TOKEN, appid=APP_ID,
                           encoding_aes_key=AES_KEY, mode=mode, timeout=SIMULATOR_TIMEOUT)


@pytest.fixture
def plaintext_server(settings, demo_county):
    """The app with WECHAT_ALLOW_PLAINTEXT on (what tests and demos may set; production never)."""
    from dataclasses import replace

    from webapp import create_app

    with LiveServer(create_app(replace(settings, wechat_allow_plaintext=True), start_background=False)) as server:
        yield server


# --- verification -------------------------------------------------------------------------------

def test_get_verification_echoes(simulator):
    assert simulator.verify_url(echostr="hello-123") == "hello-123"


def test_official_verification_vector(clean_db, redis_client, fake_wechat):
    from config.settings import load_settings
    from tests.conftest import settings_env
    from webapp import create_app

    app = create_app(load_settings(settings_env(fake_wechat.base_url, WECHAT_TOKEN="AAAAA")),
                     start_background=False)
    response = app.test_client().get("/wechat", query_string={
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696", "timestamp": "1714036504",
        "nonce": "1514711492", "echostr": "ok-echo"})
    assert response.status_code == 200 and response.text == "ok-echo"


def test_get_with_forged_signature_is_refused(live_server):
    response = requests.get(live_server.url + "/wechat", params={
        "signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1", "echostr": "x"})
    assert response.status_code == 403


# --- modes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["plaintext", "compatible", "safe"])
def test_text_message_opens_a_case_in_every_mode(request, mode):
    server = request.getfixturevalue("plaintext_server" if mode == "plaintext" else "live_server")
    reply = make_sim(server, mode).send_text("o_mode_" + mode, "幸福里小区3号楼门口的路灯坏了好几天")
    assert reply.status_code == 200
    number = CASE_NUMBER.search(reply.content).group(0)
    assert "张建华" in reply.content  # the grid's lead deputy handles a street lamp (属地)
    with db.session_scope() as session:
        case = session.scalar(select(Case).where(Case.number == number))
        assert case.status == Status.ASSIGNED and case.handler_kind == "deputy"
        assert case.routing["reasons"]
        actions = [e.action for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]
        assert actions == ["submit", "assign"]


def test_voice_recognition_opens_a_case(simulator):
    reply = simulator.send_voice("o_voice", recognition="公司拖欠我们工资三个月了")
    assert CASE_NUMBER.search(reply.content)
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        assert case.handler_kind == "department" and case.department.code == "renshe"


def test_voice_without_recognition_asks_for_text(simulator):
    reply = simulator.send_voice("o_voice2", recognition=None)
    assert "文字" in reply.content and count(Case) == 0


# --- safe mode: only what msg_signature covers is believed ---------------------------------------

def test_plaintext_message_is_refused_when_an_aes_key_is_configured(live_server):
    reply = make_sim(live_server, "plaintext").send_text("o_victim", "我要反映：幸福里小区的路灯坏了")
    assert reply.status_code == 403
    assert nothing_stored()


def test_plaintext_message_is_refused_without_a_key_unless_allowed(clean_db, redis_client, fake_wechat,
                                                                  demo_county):
    from config.settings import load_settings
    from tests.conftest import settings_env
    from webapp import create_app

    settings = load_settings(settings_env(fake_wechat.base_url, WECHAT_ENCODING_AES_KEY=""))
    with LiveServer(create_app(settings, start_background=False)) as server:
        assert make_sim(server, "plaintext").send_text("o_nokey", "路灯坏了").status_code == 403
    assert nothing_stored()


def test_compatible_mode_believes_the_encrypted_part_only(simulator):
    from wechat_fake.simulator import WeChatSimulator

    compat = WeChatSimulator(url=simulator.url, token=TOKEN, appid=APP_ID, encoding_aes_key=AES_KEY,
                             mode="compatible", timeout=SIMULATOR_TIMEOUT)
    query, body = compat.envelope(compat.build_text("o_sender", "东关街的下水道堵了"))
    forged = body.replace("o_sender", "o_victim", 1).replace("东关街的下水道堵了", "撤销我的所有诉求", 1)
    response = requests.post(simulator.url, params=query, data=forged.encode())
    assert response.status_code == 200
    with db.session_scope() as session:
        assert session.scalars(select(Resident.oa_openid)).all() == ["o_sender"]
        assert session.scalar(select(Case)).text == "东关街的下水道堵了"


def test_a_signed_query_carries_one_body_only(plaintext_server):
    sim = make_sim(plaintext_server, "plaintext")
    first = sim.send_text("o_owner", "幸福里小区3号楼门口的路灯坏了好几天")
    assert first.status_code == 200
    captured = first.request["query"]  # e.g. from a proxy log
    forged = sim.build_text("o_victim", "学校门口交通拥堵，孩子上学不安全")
    response = requests.post(plaintext_server.url + "/wechat", params=captured, data=forged.encode())
    assert response.status_code == 403
    assert count(Case) == 1 and count(InboundMessage) == 1
    # the very same request again is a network retry: same answer, nothing new
    again = requests.post(plaintext_server.url + "/wechat", params=captured,
                          data=first.request["body"].encode())
    assert again.status_code == 200 and CASE_NUMBER.search(again.text).group(0) in first.content
    assert count(Case) == 1 and count(InboundMessage) == 1


def test_a_replayed_nonce_with_another_encrypted_body_is_refused(simulator, live_server):
    first = simulator.send_text("o_owner2", "东关街的下水道堵了，污水漫到路上")
    assert first.status_code == 200
    query = dict(first.request["query"])
    # another validly encrypted message, but under the captured timestamp and nonce
    _, body = simulator.envelope(simulator.build_text("o_owner2", "再加一条"), timestamp=query["timestamp"],
                                 nonce=query["nonce"])
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body).group(1)
    from wechat_fake.simulator import wechat_signature

    query["msg_signature"] = wechat_signature(TOKEN, query["timestamp"], query["nonce"], encrypt)
    response = requests.post(live_server.url + "/wechat", params=query, data=body.encode())
    assert response.status_code == 403
    assert count(InboundMessage) == 1


def test_start_up_says_loudly_that_plaintext_is_allowed(settings, caplog):
    from dataclasses import replace

    from webapp import create_app

    with caplog.at_level("WARNING"):
        create_app(replace(settings, wechat_allow_plaintext=True), start_background=False)
    assert any("WECHAT_ALLOW_PLAINTEXT" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_allow_plaintext_setting_is_parsed():
    from config.settings import SettingsError, load_settings

    base = {"SECRET_KEY": "k", "WECHAT_TOKEN": "t", "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s"}
    assert load_settings(base).wechat_allow_plaintext is False
    assert load_settings({**base, "WECHAT_ALLOW_PLAINTEXT": "true"}).wechat_allow_plaintext is True
    with pytest.raises(SettingsError, match="WECHAT_ALLOW_PLAINTEXT"):
        load_settings({**base, "WECHAT_ALLOW_PLAINTEXT": "maybe"})


# --- bad input ----------------------------------------------------------------------------------

def test_forged_signature_is_refused_and_stores_nothing(live_server):
    body = "<xml><ToUserName>gh</ToUserName><FromUserName>o_x</FromUserName><CreateTime>1</CreateTime>" \
           "<MsgType>text</MsgType><Content>路灯坏了</Content><MsgId>1</MsgId></xml>"
    response = requests.post(live_server.url + "/wechat", data=body.encode(), params={
        "signature": "f" * 40, "timestamp": str(int(time.time())), "nonce": "42", "openid": "o_x"})
    assert response.status_code == 403
    assert nothing_stored()


def test_forged_msg_signature_in_safe_mode_is_refused(live_server, simulator):
    xml = simulator.build_text("o_forged", "路灯坏了")
    query, body = simulator.envelope(xml)
    query["msg_signature"] = "0" * 40
    response = requests.post(live_server.url + "/wechat", params=query, data=body.encode())
    assert response.status_code == 403
    assert nothing_stored()


def test_stale_timestamp_is_refused(live_server):
    reply = make_sim(live_server, "safe").send_text("o_old", "路灯坏了", timestamp=int(time.time()) - 3600)
    assert reply.status_code == 403
    assert nothing_stored()


def test_huge_body_is_refused(live_server, simulator):
    reply = simulator.send_raw("<xml>" + "A" * 200_000 + "</xml>", sign=True)
    assert reply.status_code == 413
    assert nothing_stored()


@pytest.mark.parametrize("body", ["<xml><MsgType>text", "not xml at all", "<xml></xml>",
                                  "<!DOCTYPE x [<!ENTITY a 'b'>]><xml><MsgType>&a;</MsgType></xml>"])
def test_malformed_xml_gets_a_4xx_and_stores_nothing(simulator, body):
    reply = simulator.send_raw(body, sign=True)
    assert 400 <= reply.status_code < 500
    assert nothing_stored()


def test_undecryptable_payload_is_refused(simulator):
    reply = simulator.send_raw("<xml><ToUserName>gh</ToUserName><Encrypt>bm90IGEgcmVhbCBjaXBoZXI=</Encrypt></xml>",
                               sign=True)
    assert reply.status_code in (400, 403)
    assert nothing_stored()


# --- dedup --------------------------------------------------------------------------------------

@pytest.mark.parametrize("concurrent", [False, True])
def test_three_deliveries_make_one_case_and_identical_replies(simulator, concurrent):
    xml = simulator.build_text("o_retry", "东关街的下水道堵了，污水漫到路上", msg_id=777000 + int(concurrent))
    replies = simulator.deliveries(xml, n=3, concurrent=concurrent)
    assert all(r.status_code == 200 for r in replies)
    assert len({r.content for r in replies}) == 1 and CASE_NUMBER.search(replies[0].content)
    assert count(Case) == 1 and count(InboundMessage) == 1


# --- joining short messages ---------------------------------------------------------------------

def test_short_messages_in_a_row_join_one_case(simulator):
    first = simulator.send_text("o_pieces", "路灯坏了")
    second = simulator.send_text("o_pieces", "在幸福里小区3号楼门口")
    third = simulator.send_text("o_pieces", "好几天了")
    number = CASE_NUMBER.search(first.content).group(0)
    assert number in second.content and number in third.content
    with db.session_scope() as session:
        cases = session.scalars(select(Case)).all()
        assert len(cases) == 1
        assert "3号楼" in cases[0].text and "好几天" in cases[0].text


def test_messages_from_two_residents_are_separate_cases(simulator):
    simulator.send_text("o_a", "青山村的自来水停了")
    simulator.send_text("o_b", "学校门口交通拥堵，孩子上学不安全")
    assert count(Case) == 2


# --- events -------------------------------------------------------------------------------------

def test_subscribe_from_grid_code_binds_and_shows_the_deputy_card(simulator):
    reply = simulator.send_event("o_scan", "subscribe", event_key="qrscene_grid:G002")
    assert "李秀英" in reply.content and "东关社区第二网格" in reply.content
    with db.session_scope() as session:
        resident = session.scalar(select(Resident).where(Resident.oa_openid == "o_scan"))
        assert resident.grid.code == "G002"
    # the bound grid routes a later local matter to its deputy without naming the place
    reply = simulator.send_text("o_scan", "楼道里有人飞线充电，太危险了")
    assert "李秀英" in reply.content


def test_scan_of_a_deputy_code_binds_to_the_deputys_grid(simulator):
    reply = simulator.send_event("o_scan2", "SCAN", event_key="deputy:D003")
    assert "王德明" in reply.content
    with db.session_scope() as session:
        assert session.scalar(select(Resident).where(Resident.oa_openid == "o_scan2")).grid.code == "G003"


def test_menu_clicks(simulator):
    clock = iter(range(int(time.time()) - 60, int(time.time())))  # distinct CreateTime per tap

    def tap(key):
        return simulator.send_event("o_menu", "CLICK", event_key=key, create_time=next(clock)).content

    assert "还没有绑定" in tap("FIND_DEPUTY")
    simulator.send_event("o_menu", "SCAN", event_key="grid:G001")
    assert "张建华" in tap("FIND_DEPUTY")
    assert "还没有反映过" in tap("MY_CASES")
    created = simulator.send_text("o_menu", "小区垃圾没人清理")
    number = CASE_NUMBER.search(created.content).group(0)
    assert number in tap("MY_CASES")
    assert "没有待评价" in tap("RATE")


def test_repeated_event_delivery_is_handled_once(simulator):
    xml = simulator.build_event("o_evt_retry", "SCAN", event_key="grid:G003", create_time=int(time.time()))
    replies = simulator.deliveries(xml, n=3, concurrent=True)
    assert len({r.content for r in replies}) == 1 and "王德明" in replies[0].content
    assert count(InboundMessage) == 1


def test_unknown_events_get_success(simulator):
    reply = simulator.send_event("o_unknown", "VIEW", event_key="https://example.invalid/")
    assert reply.status_code == 200 and reply.raw == "success"
    reply = simulator.send_event("o_unknown", "CLICK", event_key="NO_SUCH_MENU")
    assert reply.raw == "success"


# --- fields that are not plain text (issue: signed pushes gave 500, so WeChat retried 3 times) ---

def _element_valued(sim, name):
    """A well-signed message whose `name` element holds a child element (or repeats)."""
    if name in ("Event", "EventKey"):
        xml = sim.build_event("o_elem", "CLICK", event_key="MY_CASES")
    elif name in ("Label", "Location_X"):
        xml = sim.build_location("o_elem", 30.1, 120.2, "幸福里")
    elif name == "TemplateId":
        xml = sim.build_subscribe_msg_event("o_elem", "subscribe_msg_popup_event", [("tpl1", "accept")])
    else:
        xml = sim.build_text("o_elem", "路灯坏了")
    if name == "repeated Content":
        return xml.replace("</xml>", "<Content>又一个</Content></xml>")
    if name == "MsgID":
        from wechat_fake.simulator import _Raw

        return sim.build_event("mphelper", "MASSSENDJOBFINISH", MsgID=_Raw("<a>1</a>"), Status="send success")
    return re.sub(rf"<{name}>.*?</{name}>", f"<{name}><a>1</a><b>2</b></{name}>", xml, count=1)


@pytest.mark.parametrize("name", ["Content", "FromUserName", "ToUserName", "CreateTime", "MsgId", "Event",
                                  "EventKey", "Label", "Location_X", "TemplateId", "repeated Content",
                                  "MsgID"])
def test_element_valued_field_gets_a_4xx_and_stores_nothing(simulator, name, caplog):
    xml = _element_valued(simulator, name)
    with caplog.at_level("INFO", logger="bot.webhook"):
        reply = simulator.send_raw(xml, encrypt=True)
    assert 400 <= reply.status_code < 500, reply.raw
    assert nothing_stored()
    assert len([r for r in caplog.records if r.name == "bot.webhook"]) == 1


@pytest.mark.parametrize("body", ["", "   \n"])
def test_signed_empty_body_gets_a_4xx(plaintext_server, body):
    reply = make_sim(plaintext_server, "plaintext").send_raw(body, sign=True)
    assert reply.status_code == 400
    assert nothing_stored()


def test_overlong_msg_type_or_msg_id_gets_a_4xx(simulator):
    xml = simulator.build_text("o_long", "路灯坏了")
    assert simulator.send_raw(xml.replace("text", "t" * 40, 1), encrypt=True).status_code == 400
    assert simulator.send_raw(re.sub(r"<MsgId>\d+</MsgId>", "<MsgId>" + "9" * 80 + "</MsgId>", xml),
                              encrypt=True).status_code == 400
    assert nothing_stored()
