"""The outbound WeChat client against the fake server (real HTTP) and real Redis (DB 14/15)."""

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from liaison.wechat.client import WeChatClient, thing_value
from liaison.wechat.errors import (
    WeChatAPIError,
    WeChatRateLimitError,
    WeChatTimeoutError,
    WeChatTokenError,
    WeChatTransientError,
    WeChatUnsubscribedError,
    WeChatWindowError,
    is_retryable,
    is_token_error,
    is_window_error,
)
from liaison.wechat.privacy import mask
from liaison.wechat.tokens import MemoryTokenStore, RedisTokenStore
from wechat_fake.server import FakeWeChatServer, png_comment

ROOT = Path(__file__).resolve().parents[1]
APPID, SECRET, MP_APPID, MP_SECRET = "wx_test_app", "s3cret", "wx_mini", "mini_s3cret"
SEND = "/cgi-bin/message/custom/send"
STABLE = "/cgi-bin/stable_token"


@pytest.fixture
def fake():
    with FakeWeChatServer(appid=APPID, secret=SECRET, mp_appid=MP_APPID, mp_secret=MP_SECRET) as server:
        yield server


@pytest.fixture
def rds():
    client = redis.Redis(host="127.0.0.1", port=6379, db=14)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def new_redis():
    return redis.Redis(host="127.0.0.1", port=6379, db=14)


@pytest.fixture
def client(fake, rds):
    c = WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(rds, APPID))
    yield c
    c.close()


@pytest.fixture
def mini(fake, rds):
    c = WeChatClient(MP_APPID, MP_SECRET, fake.base_url, RedisTokenStore(rds, MP_APPID))
    yield c
    c.close()


# ---------------------------------------------------------------- tokens
def test_stable_token_fetched_once_and_shared_through_redis(fake, rds):
    a = WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(new_redis(), APPID))
    b = WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(new_redis(), APPID))
    a.send_custom_text("o_1", "一")
    b.send_custom_text("o_2", "二")
    assert len(fake.calls(STABLE)) == 1
    assert fake.calls("/cgi-bin/token") == []  # never the non-stable endpoint
    tokens = {c["query"]["access_token"] for c in fake.calls(SEND)}
    assert len(tokens) == 1
    assert rds.get(f"wechat:access_token:{APPID}").decode() == tokens.pop()
    ttl = rds.ttl(f"wechat:access_token:{APPID}")
    assert 0 < ttl <= 7200 - 300  # expiry minus the safety margin
    body = fake.calls(STABLE)[0]["json"]
    assert body == {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": False}


def test_token_shared_with_another_process(fake, client):
    client.send_custom_text("o_1", "一")
    code = (
        "import redis\n"
        "from liaison.wechat.client import WeChatClient\n"
        "from liaison.wechat.tokens import RedisTokenStore\n"
        f"c = WeChatClient({APPID!r}, {SECRET!r}, {fake.base_url!r}, RedisTokenStore(redis.Redis(db=14), {APPID!r}))\n"
        "c.send_custom_text('o_2', '二')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert len(fake.calls(SEND)) == 2
    assert len(fake.calls(STABLE)) == 1


def test_concurrent_refresh_calls_stable_token_once(fake, rds):
    fake.delay_next(STABLE, 0.3)  # hold the first refresher inside the lock while the others arrive
    clients = [WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(new_redis(), APPID)) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    tokens, errors = [], []

    def run(c):
        try:
            barrier.wait()
            tokens.append(c.get_access_token())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert len(fake.calls(STABLE)) == 1


def test_memory_store_concurrent_refresh_once(fake):
    fake.delay_next(STABLE, 0.3)
    c = WeChatClient(APPID, SECRET, fake.base_url, MemoryTokenStore())
    barrier = threading.Barrier(6)
    tokens = []

    def run():
        barrier.wait()
        tokens.append(c.get_access_token())

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 6 and len(set(tokens)) == 1
    assert len(fake.calls(STABLE)) == 1


def test_default_store_is_memory(fake):
    c = WeChatClient(APPID, SECRET, fake.base_url)
    c.send_custom_text("o", "a")
    c.send_custom_text("o", "b")
    assert isinstance(c.token_store, MemoryTokenStore)
    assert len(fake.calls(STABLE)) == 1


def test_40001_refreshes_once_and_retries_once(fake, client):
    client.send_custom_text("o_1", "warm up")
    old = fake.calls(SEND)[0]["query"]["access_token"]
    fake.invalidate_tokens()  # WeChat now rejects the token; stable_token still hands it out
    result = client.send_custom_text("o_1", "路灯")
    assert result["errcode"] == 0
    sends = fake.calls(SEND)
    assert [c.get("errcode") for c in sends] == [0, 40001, 0]
    new = sends[-1]["query"]["access_token"]
    assert new != old
    stable_calls = fake.calls(STABLE)
    # the normal call gave the same bad token back, so exactly one forced refresh followed
    assert [c["json"]["force_refresh"] for c in stable_calls] == [False, False, True]
    assert len(fake.sent_messages()) == 2


def test_expired_token_refreshes_without_force(fake, client):
    client.send_custom_text("o_1", "warm up")
    fake.expire_tokens()  # 42001; stable_token issues a new token on its own
    client.send_custom_text("o_1", "again")
    assert [c.get("errcode") for c in fake.calls(SEND)] == [0, 42001, 0]
    assert [c["json"]["force_refresh"] for c in fake.calls(STABLE)] == [False, False]


def test_persistent_40001_raises_after_exactly_one_retry(fake, client):
    fake.fail_next(SEND, 40001, "invalid credential", times=10)
    with pytest.raises(WeChatTokenError) as info:
        client.send_custom_text("o_1", "x")
    assert info.value.errcode == 40001 and info.value.is_token_error and is_token_error(info.value)
    assert len(fake.calls(SEND)) == 2
    # initial, refresh (WeChat handed back the same token), forced refresh - and nothing more
    assert [c["json"]["force_refresh"] for c in fake.calls(STABLE)] == [False, False, True]
    assert fake.calls(SEND)[0]["query"]["access_token"] != fake.calls(SEND)[1]["query"]["access_token"]
    # the next call works again once WeChat does
    fake.reset()
    client.token_store.invalidate()
    assert client.send_custom_text("o_1", "y")["errcode"] == 0


def test_token_store_does_not_drop_a_token_another_process_refreshed(rds):
    store = RedisTokenStore(rds, APPID)
    fetches = []

    def fetch(force):
        fetches.append(force)
        return f"T{len(fetches)}", 7200

    assert store.get_token(fetch) == "T1"
    store.invalidate("T0")  # a stale token: compare-and-delete leaves T1 alone
    assert store.peek() == "T1"
    # bad_token=T0 (someone else already refreshed): the cached T1 is used without fetching
    assert store.get_token(fetch, bad_token="T0") == "T1"
    assert fetches == [False]
    store.invalidate("T1")
    assert store.peek() is None


def test_redis_lock_timeout_falls_back_to_fetch(rds):
    store = RedisTokenStore(rds, APPID, blocking_timeout=0.2)
    held = rds.lock(store.lock_name, timeout=30)
    assert held.acquire()
    try:
        assert store.get_token(lambda force: ("TX", 7200)) == "TX"
    finally:
        held.release()


# ---------------------------------------------------------------- errors
def test_window_error(fake, client):
    fake.fail_next(SEND, 45015, "response out of time limit")
    with pytest.raises(WeChatWindowError) as info:
        client.send_custom_text("o_1", "x")
    err = info.value
    assert err.errcode == 45015 and err.is_window_error and is_window_error(err)
    assert not err.retryable and err.kind == "window"
    assert len(fake.calls(SEND)) == 1  # no retry
    fake.fail_next(SEND, 45047)
    with pytest.raises(WeChatWindowError):
        client.send_custom_text("o_1", "x")


def test_other_error_classes(fake, client):
    fake.fail_next("/cgi-bin/message/subscribe/bizsend", 43101, "user refuse to accept the msg")
    with pytest.raises(WeChatUnsubscribedError) as info:
        client.send_subscribe_bizsend("o_1", "T", {"thing1": "已受理"})
    assert info.value.is_unsubscribed and info.value.kind == "unsubscribed"
    fake.fail_next(SEND, 45011, "api minute-quota reach limit")
    with pytest.raises(WeChatRateLimitError) as info:
        client.send_custom_text("o_1", "x")
    assert info.value.is_rate_limited
    fake.fail_next(SEND, -1, "system error")
    with pytest.raises(WeChatTransientError) as info:
        client.send_custom_text("o_1", "x")
    assert info.value.retryable and is_retryable(info.value)
    fake.fail_next(SEND, 40003, "invalid openid")
    with pytest.raises(WeChatAPIError) as info:
        client.send_custom_text("o_1", "x")
    assert type(info.value) is WeChatAPIError and info.value.kind == "other" and not info.value.retryable


def test_http_500_is_retryable(fake, client):
    fake.fail_next_http(SEND, 500)
    with pytest.raises(WeChatAPIError) as info:
        client.send_custom_text("o_1", "x")
    err = info.value
    assert isinstance(err, WeChatTransientError)
    assert err.http_status == 500 and err.errcode is None and err.retryable
    assert len(fake.calls(SEND)) == 1  # the client itself does not retry; the job queue does


def test_timeout(fake, rds):
    c = WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(rds, APPID), timeout=(1.0, 0.3))
    c.get_access_token()
    fake.delay_next(SEND, 2)
    with pytest.raises(WeChatTimeoutError) as info:
        c.send_custom_text("o_1", "x")
    assert info.value.retryable and info.value.errcode is None
    assert info.value.maybe_delivered and not info.value.connect_timeout  # read timeout: WeChat may have sent it


def test_connection_error_is_retryable(fake):
    fake.stop()
    c = WeChatClient(APPID, SECRET, fake.base_url, MemoryTokenStore(), timeout=(0.5, 0.5))
    with pytest.raises(WeChatTransientError) as info:
        c.send_custom_text("o_1", "x")
    assert info.value.retryable and info.value.http_status is None


def test_forked_child_gets_its_own_http_session(fake, client):
    client.send_custom_text("o_1", "parent")
    parent_session = client.session
    pid = os.fork()
    if pid == 0:  # child: like an RQ job
        try:
            client.send_custom_text("o_2", "child")
            os._exit(0 if client.session is not parent_session else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert [m["touser"] for m in fake.sent_messages()] == ["o_1", "o_2"]
    assert len(fake.calls(STABLE)) == 1  # the child used the token cached in Redis


def test_redis_store_with_decode_responses(fake):
    r = redis.Redis(host="127.0.0.1", port=6379, db=15, decode_responses=True)
    r.flushdb()
    try:
        c = WeChatClient(APPID, SECRET, fake.base_url, RedisTokenStore(r, APPID))
        c.send_custom_text("o_1", "x")
        c.send_custom_text("o_1", "y")
        assert len(fake.calls(STABLE)) == 1
        assert r.get(f"wechat:access_token:{APPID}") == fake.calls(SEND)[0]["query"]["access_token"]
    finally:
        r.flushdb()
        r.close()


def test_default_timeout_is_set(fake):
    c = WeChatClient(APPID, SECRET, fake.base_url)
    assert c.timeout == (3.0, 10.0)
    assert WeChatClient(APPID, SECRET).base_url == "https://api.weixin.qq.com"


# ---------------------------------------------------------------- every API through base_url
def test_every_method_goes_through_base_url(fake, client, mini):
    fake.register_code("js1", "o_mp_1", "sk", unionid="u1")
    client.send_custom_text("o_1", "您的来信已收到")
    client.send_subscribe_bizsend("o_1", "TPL_BIZ", {"thing1": "来信已受理", "time2": {"value": "2024-05-01"}},
                                  page="pages/letter/detail?id=1")
    client.send_template("o_1", "TPL_T", {"thing1": "已答复"}, url="https://example.org/l/1",
                         client_msg_id="letter-1-replied")
    client.send_template("o_1", "TPL_T", {"thing1": "已答复"}, client_msg_id="letter-1-replied")
    tag = client.create_tag("网格G001")["tag"]
    openids = [f"o_{i}" for i in range(120)]
    client.batch_tag(openids, tag["id"])
    assert client.get_tags()["tags"][0]["count"] == 120
    client.batch_untag(openids[:10], tag["id"])
    client.mass_send_by_tag(tag["id"], "本周接待日", clientmsgid="mass-1")
    client.mass_send_by_openids(["o_1", "o_2"], "本周接待日", clientmsgid="mass-2")
    qr = client.create_qrcode("grid:G001")
    temp = client.create_qrcode("grid:G002", permanent=False, expire_seconds=3600)
    assert temp["expire_seconds"] == 3600 and "expire_seconds" not in qr
    assert client.qrcode_image_url("a+b/c").endswith("ticket=a%2Bb%2Fc")
    assert mini.jscode2session("js1") == {"openid": "o_mp_1", "session_key": "sk", "unionid": "u1"}
    png = mini.get_wxacode_unlimited("g=G001", page="pages/index/index", check_path=False)
    assert png.startswith(b"\x89PNG") and '"g=G001"' in png_comment(png)
    assert mini.msg_sec_check("o_mp_1", "小区路灯坏了") == "pass"
    assert mini.msg_sec_check("o_mp_1", "楼下有人赌博") == "risky"
    mini.send_mini_subscribe("o_mp_1", "TPL_MP", {"thing1": "已受理"}, page="pages/letter/detail?id=1",
                             miniprogram_state="formal")

    seen = {c["path"] for c in fake.calls()}
    assert seen == {
        STABLE, SEND, "/cgi-bin/message/subscribe/bizsend", "/cgi-bin/message/template/send",
        "/cgi-bin/tags/create", "/cgi-bin/tags/members/batchtagging", "/cgi-bin/tags/get",
        "/cgi-bin/tags/members/batchuntagging", "/cgi-bin/message/mass/sendall",
        "/cgi-bin/message/mass/send", "/cgi-bin/qrcode/create", "/sns/jscode2session",
        "/wxa/getwxacodeunlimit", "/wxa/msg_sec_check", "/cgi-bin/message/subscribe/send",
    }
    assert all(c.get("errcode") == 0 for c in fake.calls()), [c for c in fake.calls() if c.get("errcode")]
    assert len(fake.calls("/cgi-bin/tags/members/batchtagging")) == 3  # 50 + 50 + 20
    assert "access_token" not in fake.calls("/sns/jscode2session")[0]["query"]
    # two apps, one stable_token each
    assert sorted(c["json"]["appid"] for c in fake.calls(STABLE)) == sorted([APPID, MP_APPID])

    kinds = [m["kind"] for m in fake.sent_messages()]
    assert kinds == ["custom", "bizsend", "template", "mass_tag", "mass_openids", "mini_subscribe"]
    template_call = fake.calls("/cgi-bin/message/template/send")[0]["json"]
    assert template_call["client_msg_id"] == "letter-1-replied" and template_call["url"] == "https://example.org/l/1"
    assert template_call["data"] == {"thing1": {"value": "已答复"}}
    biz = fake.sent_messages("bizsend")[0]["body"]
    assert biz["data"] == {"thing1": {"value": "来信已受理"}, "time2": {"value": "2024-05-01"}}
    assert biz["page"] == "pages/letter/detail?id=1"
    mass = fake.calls("/cgi-bin/message/mass/sendall")[0]["json"]
    assert mass == {"filter": {"is_to_all": False, "tag_id": tag["id"]}, "msgtype": "text",
                    "text": {"content": "本周接待日"}, "clientmsgid": "mass-1"}
    sec = fake.calls("/wxa/msg_sec_check")[0]["json"]
    assert sec["version"] == 2 and sec["openid"] == "o_mp_1"
    # UTF-8 bodies, not \\u escapes (WeChat shows escapes literally)
    assert "您的来信已收到" in fake.calls(SEND)[0]["raw_body"]


def test_wxacode_json_error_raises(fake, mini):
    fake.fail_next("/wxa/getwxacodeunlimit", 41030, "invalid page")
    with pytest.raises(WeChatAPIError) as info:
        mini.get_wxacode_unlimited("g=G001", page="pages/nope")
    assert info.value.errcode == 41030


def test_local_argument_checks(client, fake):
    with pytest.raises(ValueError):
        client.get_wxacode_unlimited("网格G001")
    with pytest.raises(ValueError):
        client.create_qrcode("x" * 65)
    with pytest.raises(ValueError):
        client.mass_send_by_openids(["o_1"], "x", clientmsgid="m")
    assert fake.calls() == []


def test_thing_value():
    assert thing_value("第一行\n第二行") == "第一行 第二行"
    clipped = thing_value("这" * 30)
    assert len(clipped) == 20 and clipped.endswith("…")


# ---------------------------------------------------------------- privacy
def test_mask_and_no_openid_in_logs(fake, client, caplog):
    openid = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"
    assert openid not in mask(openid) and mask(openid) == mask(openid) and mask(openid) != mask(openid + "x")
    caplog.set_level(logging.DEBUG)
    client.send_custom_text(openid, "hi")
    fake.fail_next(SEND, 45015)
    with pytest.raises(WeChatWindowError):
        client.send_custom_text(openid, "hi")
    client.mass_send_by_openids([openid, "o_other_resident"], "x", clientmsgid="m")
    assert openid not in caplog.text and "o_other_resident" not in caplog.text
    assert mask(openid) in caplog.text

