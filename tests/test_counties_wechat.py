"""Two counties with their own official accounts on one deployment, through the simulator over real HTTP.

Each county (甲县, 乙县) has its own app id, secret, token and AES key and its own deadline settings.
A resident of each writes to their county's webhook (`/wechat/<code>`); each gets a passive reply
encrypted for their county's account, a case in their county with their county's deadline, and the
worker's sends for them go out with an access token of their county's app id.
"""
from __future__ import annotations

import base64
import os
import re

import pytest
import requests
from sqlalchemy import select

from liaison import demo
from liaison.case import service as cases
from liaison.case.models import Case
from liaison.core import db, tenant
from liaison.core.types import Actor
from liaison.core.workcalendar import add_working_days
from liaison.people.models import Resident
from liaison.tenancy import service as tenancy
from tests.conftest import APP_ID, SIMULATOR_TIMEOUT, WorkerProcess, wait_for

CASE_NUMBER = re.compile(r"\d{4}-\d{6}")


def _aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()[:-1]


def _deadlines(reply_days: int) -> dict:
    """A county deadline table giving `reply_days` to answer, whatever the category."""
    base = cases.merged_deadlines(None)
    return {"default": {"reply": reply_days},
            "categories": {name: {**limits, "reply": reply_days} for name, limits in base["categories"].items()}}


COUNTIES = {
    "jiaxian": {"name": "甲县", "app_id": "wx_jiaxian", "secret": "jia-secret", "token": "jia-token",
                "reply_days": 3},
    "yixian": {"name": "乙县", "app_id": "wx_yixian", "secret": "yi-secret", "token": "yi-token",
               "reply_days": 12},
}


@pytest.fixture
def counties(app, fake_wechat):
    """甲县 and 乙县, each with its own official account (served by the fake too) and registry."""
    made = {}
    for code, spec in COUNTIES.items():
        spec = {**spec, "aes_key": _aes_key()}
        fake_wechat.add_app(spec["app_id"], spec["secret"])
        with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
            county_id = tenancy.add_county(
                session, code, spec["name"], settings={"deadlines": _deadlines(spec["reply_days"])},
                wechat_app_id=spec["app_id"], wechat_app_secret=spec["secret"], wechat_token=spec["token"],
                wechat_encoding_aes_key=spec["aes_key"]).id
        with tenant.use(tenant.county(county_id)), db.session_scope() as session:
            assert demo.seed_demo(session)
        made[code] = {**spec, "id": county_id}
    return made


def _simulator(live_server, code: str, spec: dict, **overrides):
    from wechat_fake.simulator import WeChatSimulator

    return WeChatSimulator(url=f"{live_server.url}/wechat/{code}", token=overrides.get("token", spec["token"]),
                           appid=overrides.get("appid", spec["app_id"]),
                           encoding_aes_key=overrides.get("aes_key", spec["aes_key"]), mode="safe",
                           timeout=SIMULATOR_TIMEOUT)


def _case_of(county_id: int, openid: str) -> Case | None:
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        case = session.scalar(select(Case).join(Resident, Case.resident_id == Resident.id)
                              .where(Resident.oa_openid == openid))
        if case is not None:
            session.expunge(case)
        return case


def test_two_counties_get_their_own_replies_tokens_and_deadlines(counties, live_server, fake_wechat, rq_worker):
    openids = {"jiaxian": "o_jia_resident", "yixian": "o_yi_resident"}
    for code, spec in counties.items():
        reply = _simulator(live_server, code, spec).send_text(openids[code], "幸福里小区路灯坏了，晚上很黑")
        assert reply.ok and CASE_NUMBER.search(reply.content or ""), reply  # decrypted with the county's key

    for code, spec in counties.items():
        case = _case_of(spec["id"], openids[code])
        assert case is not None and case.county_id == spec["id"]
        assert case.deadline == add_working_days(case.created_at, spec["reply_days"])
        # Nothing of the other county's resident is visible here.
        other = next(c for c in counties if c != code)
        assert _case_of(spec["id"], openids[other]) is None

    # The worker learns each new follower's unionid through the county's own account.
    def user_info_appids():
        return {c["query"].get("openid"): c.get("appid") for c in fake_wechat.calls("/cgi-bin/user/info")}

    wait_for(lambda: len(user_info_appids()) == 2, message="user/info for both residents")
    assert user_info_appids() == {openids[c]: s["app_id"] for c, s in counties.items()}

    # A handler's answer reaches each resident by a customer-service message of their county's account.
    for code, spec in counties.items():
        with tenant.use(tenant.county(spec["id"])), db.session_scope() as session:
            case = session.scalar(select(Case).where(Case.county_id == spec["id"]))
            cases.accept(session, case, Actor("staff"))
            cases.reply(session, case, Actor("staff"), f"{spec['name']}已安排维修")

    def answers():
        return {m["touser"]: (m["appid"], m["body"]["text"]["content"])
                for m in fake_wechat.sent_messages() if m["path"] == "/cgi-bin/message/custom/send"
                and "已安排维修" in m["body"].get("text", {}).get("content", "")}

    wait_for(lambda: len(answers()) == 2, message="both answers sent")
    for code, spec in counties.items():
        appid, text = answers()[openids[code]]
        assert appid == spec["app_id"] and spec["name"] in text
    stable = {c["json"]["appid"] for c in fake_wechat.calls("/cgi-bin/stable_token")}
    assert {"wx_jiaxian", "wx_yixian"} <= stable and APP_ID not in {
        m["appid"] for m in fake_wechat.sent_messages()}


def test_a_county_webhook_checks_with_the_countys_own_secrets(counties, live_server):
    jia, yi = counties["jiaxian"], counties["yixian"]
    assert _simulator(live_server, "jiaxian", jia).verify_url(echostr="jia-echo") == "jia-echo"
    # Another county's token, AES key or app id is refused and stores nothing.
    for wrong in ({"token": yi["token"]}, {"aes_key": yi["aes_key"]}, {"appid": yi["app_id"]}):
        reply = _simulator(live_server, "jiaxian", jia, **wrong).send_text("o_intruder", "路灯坏了")
        assert reply.status_code in (400, 403), (wrong, reply)
    assert _case_of(jia["id"], "o_intruder") is None
    # The deployment's account is not a county's.
    from tests.conftest import AES_KEY, TOKEN

    reply = _simulator(live_server, "jiaxian", jia, token=TOKEN, appid=APP_ID, aes_key=AES_KEY).send_text(
        "o_intruder", "路灯坏了")
    assert reply.status_code == 403
    # Unknown counties and counties without an account of their own are not served.
    assert requests.post(f"{live_server.url}/wechat/nowhere", data=b"<xml/>", timeout=10).status_code == 404
    assert requests.get(f"{live_server.url}/wechat/default", timeout=10).status_code == 404
    assert requests.get(f"{live_server.url}/wechat/bad%20code", timeout=10).status_code == 404


def test_a_county_added_while_the_app_runs_is_served_at_once(app, live_server, fake_wechat):
    from wechat_fake.simulator import WeChatSimulator

    url = f"{live_server.url}/wechat/bingxian"
    assert requests.get(url, timeout=10).status_code == 404  # not there yet (and the miss is not cached)
    key = _aes_key()
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        county_id = tenancy.add_county(session, "bingxian", "丙县", wechat_app_id="wx_bing",
                                       wechat_app_secret="bing-secret", wechat_token="bing-token",
                                       wechat_encoding_aes_key=key).id
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        demo.seed_demo(session)
    sim = WeChatSimulator(url=url, token="bing-token", appid="wx_bing", encoding_aes_key=key, mode="safe",
                          timeout=SIMULATOR_TIMEOUT)
    reply = sim.send_text("o_bing_resident", "幸福里小区路灯坏了")
    assert reply.ok and CASE_NUMBER.search(reply.content or "")
    assert _case_of(county_id, "o_bing_resident") is not None
    assert _case_of(tenant.DEFAULT_COUNTY_ID, "o_bing_resident") is None


def test_the_default_webhook_stays_the_default_county(counties, simulator):
    reply = simulator.send_text("o_default_resident", "幸福里小区路灯坏了")
    assert reply.ok and CASE_NUMBER.search(reply.content or "")
    case = _case_of(tenant.DEFAULT_COUNTY_ID, "o_default_resident")
    assert case is not None
    assert case.deadline == add_working_days(case.created_at, cases.deadline_days(case.category, "reply"))


def test_a_county_delivery_spooled_during_an_outage_is_stored_in_that_county(counties, live_server, redis_client,
                                                                              clean_db, monkeypatch):
    from datetime import timedelta

    from bot import webhook
    from liaison.conversation import spool

    yi = counties["yixian"]
    assert _simulator(live_server, "yixian", yi).verify_url(echostr="x") == "x"  # the county row is known
    monkeypatch.setattr(webhook, "COUNTY_CACHE_SECONDS", 0.0)  # ... and has expired when the database fails
    assert _simulator(live_server, "yixian", yi).verify_url(echostr="y") == "y"
    db.init_engine("postgresql+psycopg://postgres@127.0.0.1:1/unreachable")
    try:
        reply = _simulator(live_server, "yixian", yi).send_text("o_yi_outage", "幸福里小区路灯坏了")
        assert reply.ok and reply.content == spool.RECEIVED_TEXT
    finally:
        db.init_engine(clean_db)
    assert spool.replay(redis_client, join_window=timedelta(minutes=10)) == 1
    case = _case_of(yi["id"], "o_yi_outage")
    assert case is not None and case.deadline == add_working_days(case.created_at, yi["reply_days"])
    assert _case_of(tenant.DEFAULT_COUNTY_ID, "o_yi_outage") is None


@pytest.fixture
def strict_deployment(counties, fake_wechat, spawn_worker):
    """The multi-county production shape: LIAISON_IMPLICIT_DEFAULT_COUNTY=false in the web app (here,
    over real HTTP) and in a real worker, so any unit of work that names no county fails."""
    from config.settings import load_settings
    from tests.conftest import LiveServer, settings_env
    from webapp import create_app

    env = settings_env(fake_wechat.base_url, LIAISON_IMPLICIT_DEFAULT_COUNTY="false")
    strict = create_app(load_settings(env), start_background=False)
    assert tenant._fallback is None  # noqa: SLF001 - the setting is what this test is about
    worker = WorkerProcess(env).start()
    try:
        with LiveServer(strict) as server:
            yield server, worker
    finally:
        worker.stop()
        tenant.set_fallback(tenant.DEFAULT)


def test_without_an_implicit_county_every_path_names_its_county(counties, strict_deployment, fake_wechat):
    server, worker = strict_deployment
    with pytest.raises(tenant.TenantScopeError):  # nothing falls back to the default county
        with db.session_scope() as session:
            session.scalar(select(Case.id))
    # Each county's webhook, and the deployment's own (the default county), through the simulator.
    from tests.conftest import AES_KEY, TOKEN
    from wechat_fake.simulator import WeChatSimulator

    openids = {"jiaxian": "o_strict_jia", "yixian": "o_strict_yi"}
    for code, spec in counties.items():
        reply = _simulator(server, code, spec).send_text(openids[code], "幸福里小区路灯坏了，晚上很黑")
        assert reply.ok and CASE_NUMBER.search(reply.content or ""), reply
    default = WeChatSimulator(url=f"{server.url}/wechat", token=TOKEN, appid=APP_ID, encoding_aes_key=AES_KEY,
                              mode="safe", timeout=SIMULATOR_TIMEOUT).send_text("o_strict_default", "幸福里小区路灯坏了")
    assert default.ok and CASE_NUMBER.search(default.content or "")
    for code, spec in counties.items():
        case = _case_of(spec["id"], openids[code])
        assert case is not None and case.deadline == add_working_days(case.created_at, spec["reply_days"])
    assert _case_of(tenant.DEFAULT_COUNTY_ID, "o_strict_default") is not None
    # The real worker learns each follower's unionid through their county's account.
    wait_for(lambda: {c["query"].get("openid") for c in fake_wechat.calls("/cgi-bin/user/info")}
             >= set(openids.values()) | {"o_strict_default"}, message="user/info of all three residents")
    appids = {c["query"]["openid"]: c["appid"] for c in fake_wechat.calls("/cgi-bin/user/info")}
    assert appids == {openids["jiaxian"]: "wx_jiaxian", openids["yixian"]: "wx_yixian",
                      "o_strict_default": APP_ID}
    # The mini-program API: a resident of 乙县 logs in there and sees their own case only.
    fake_wechat.register_code("strict-code", openids["yixian"])
    login = requests.post(f"{server.url}/api/login", json={"code": "strict-code", "county": "yixian"}, timeout=10)
    assert login.status_code == 200, login.text
    # The console: 乙县's staff sign in and see 乙县's cases only.
    from tests.console_fixtures import csrf_token
    from tests.console_fixtures import make_account as console_account

    with tenant.use(tenant.county(counties["yixian"]["id"])):
        console_account("staff", "乙县工委", login="yi_staff")
    browser = requests.Session()
    page = browser.get(f"{server.url}/console/login", timeout=10)
    signed = browser.post(f"{server.url}/console/login", data={
        "csrf_token": csrf_token(page.text), "login": "yi_staff", "password": "console password 1"},
        allow_redirects=False, timeout=10)
    assert signed.status_code == 303, signed.text[:300]
    ledger = browser.get(f"{server.url}/console/cases", timeout=10).text
    yi_case, jia_case = (_case_of(counties[c]["id"], openids[c]) for c in ("yixian", "jiaxian"))
    assert f"/console/cases/{yi_case.public_id}" in ledger
    assert f"/console/cases/{jia_case.public_id}" not in ledger
    assert browser.get(f"{server.url}/console/cases/{jia_case.public_id}", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert worker.proc.poll() is None, worker.stderr()


def test_the_embedded_default_stays_single_county():
    from config.settings import load_settings

    env = {"SECRET_KEY": "k", "WECHAT_TOKEN": "t", "WECHAT_APP_ID": "a", "WECHAT_APP_SECRET": "s",
           "LIAISON_IMPLICIT_DEFAULT_COUNTY": "false"}
    assert load_settings(env).implicit_default_county  # SQLite: one county, always
    assert not load_settings({**env, "DATABASE_URL": "postgresql://x@h/db"}).implicit_default_county
    assert load_settings({k: v for k, v in env.items() if not k.startswith("LIAISON")}
                         | {"DATABASE_URL": "postgresql://x@h/db"}).implicit_default_county
