"""Rate limits: new cases per resident and per address (API), new cases per resident in the chat (merged
or refused with a plain answer, never dropped), binding-code lockout per caller and per address."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from liaison.case.models import Case, CaseEvent, Notice
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging.models import InboundMessage
from tests.api_fixtures import FlaskHttp, bootstrap_staff, login, resident
from tests.conftest import settings_env

TEXTS = ["幸福里小区3号楼门口的路灯坏了", "幸福里小区垃圾桶满了没人清运", "幸福里小区门口的下水道堵了",
         "幸福里小区楼道里的消防栓没水", "幸福里小区门前的人行道砖松动", "幸福里小区夜里工地施工噪音大",
         "幸福里小区的公交站牌倒了", "幸福里小区健身器材损坏"]


def count(model, *where) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def make_app(clean_db, redis_client, fake_wechat, demo_county):
    from config.settings import load_settings
    from webapp import create_app

    def make(**overrides: str):
        application = create_app(load_settings(settings_env(fake_wechat.base_url, **overrides)),
                                 start_background=False)
        application.config["TESTING"] = True
        return FlaskHttp(application.test_client())

    return make


def test_one_resident_cannot_flood_cases_through_the_api(make_app, fake_wechat):
    http = make_app()  # the defaults: 5 a minute per resident
    flooder = resident(http, "", fake_wechat, "o_rl_flood")
    statuses = [flooder.post("/api/cases", {"text": text}).status_code for text in TEXTS * 3]
    assert statuses[:5] == [201] * 5 and set(statuses[5:]) == {429}
    refused = flooder.post("/api/cases", {"text": TEXTS[0]})
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "频繁" in refused.json()["error"]["message"] and int(refused.headers["Retry-After"]) > 0
    assert count(Case) == 5 and count(Notice) <= 5 * 2
    # A fresh login is the same person: the limit holds.
    again = resident(http, "", fake_wechat, "o_rl_flood")
    assert again.post("/api/cases", {"text": TEXTS[1]}).status_code == 429
    # Someone else is not affected.
    assert resident(http, "", fake_wechat, "o_rl_other").post("/api/cases", {"text": TEXTS[2]}).status_code == 201


def test_case_creation_is_limited_per_address(make_app, fake_wechat):
    http = make_app(CASE_RATE_LIMIT_PER_ADDRESS="3 per minute")
    statuses = [resident(http, "", fake_wechat, f"o_rl_addr{i}").post("/api/cases", {"text": TEXTS[i]}).status_code
                for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]


def test_binding_code_guesses_lock_the_caller_out(make_app, fake_wechat):
    from liaison.people import service as accounts

    http = make_app()
    with db.session_scope() as session:
        _account, code = accounts.create_first_staff(session, "工委 陈主任")
    guesser = resident(http, "", fake_wechat, "o_rl_guess")
    statuses = [guesser.post("/api/bind", {"binding_code": f"WRONG{i:05d}"}).status_code for i in range(5)]
    assert statuses == [422] * 5
    locked = guesser.post("/api/bind", {"binding_code": code})  # even the right code waits now
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "rate_limited"
    assert "绑定码" in locked.json()["error"]["message"]
    # Another person (from another phone) binds with the right code.
    other = login(http, "", fake_wechat, "o_rl_owner")
    response = http.post("/api/bind", json={"binding_code": code},
                         headers={"Authorization": f"Bearer {other['token']}",
                                  "X-Forwarded-For": "ignored"})
    assert response.status_code == 200, response.text


def test_binding_failures_are_limited_per_address(make_app, fake_wechat):
    http = make_app(BINDING_FAILURE_LIMIT_PER_ADDRESS="3 per 15 minutes")
    statuses = [resident(http, "", fake_wechat, f"o_rl_bind{i}").post("/api/bind", {"binding_code": "NOPE123456"})
                .status_code for i in range(5)]
    assert statuses == [422, 422, 422, 429, 429]


def test_successful_binds_do_not_count_towards_the_lockout(make_app, fake_wechat):
    http = make_app(BINDING_FAILURE_LIMIT_PER_ADDRESS="2 per 15 minutes")
    staff = bootstrap_staff(http, "", fake_wechat, "o_rl_staff")
    for i in range(3):
        code = staff.post("/api/accounts", {"role": "staff", "name": f"工作人员{i}"}).json()["binding_code"]
        person = resident(http, "", fake_wechat, f"o_rl_ok{i}")
        assert person.post("/api/bind", {"binding_code": code}).status_code == 200


def test_chat_flood_joins_the_latest_case_and_never_drops_a_message(app):
    from liaison.case import service as cases
    from liaison.conversation import service as conversation

    start = utcnow()
    replies = []
    for i, text in enumerate(TEXTS):
        incoming = conversation.Incoming(openid="o_rl_chat", msg_type="text", create_time=1_700_000_000 + i,
                                         msg_id=f"rl{i}", content=text)
        # Each message comes after the join window: without a limit each would be a new case.
        with db.session_scope() as session:
            replies.append(conversation.handle(session, incoming, join_window=timedelta(minutes=10),
                                               now=start + timedelta(minutes=20 * i)))
    assert all("已登记" in reply for reply in replies[:5])
    assert all("较多" in reply and "已补充到您的诉求" in reply for reply in replies[5:])
    assert count(Case) == 5 and count(InboundMessage) == len(TEXTS)
    assert count(CaseEvent, CaseEvent.action == "add_information") == len(TEXTS) - 5
    # With no open case left, the resident is told plainly to write again later.
    with db.session_scope() as session:
        for case in session.scalars(select(Case)).all():
            cases.withdraw(session, case, case.resident)
    with db.session_scope() as session:
        reply = conversation.handle(session, conversation.Incoming(
            openid="o_rl_chat", msg_type="text", create_time=1_700_000_100, msg_id="rl-last",
            content="幸福里小区的井盖丢了"), join_window=timedelta(minutes=10), now=start + timedelta(hours=5))
    assert "暂时不能登记新的诉求" in reply and count(Case) == 5 and count(InboundMessage) == len(TEXTS) + 1


def test_malformed_limit_setting_stops_start_up(fake_wechat):
    from config.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="CASE_RATE_LIMIT_PER_RESIDENT"):
        load_settings(settings_env(fake_wechat.base_url, CASE_RATE_LIMIT_PER_RESIDENT="lots"))


def test_one_script_counts_every_limit_of_a_rule_in_the_librarys_own_windows(redis_client):
    """`hit` checks and counts all limits of a rule in one Redis script, in the windows `limits` reads."""
    from liaison.core import ratelimit

    uri = ratelimit.storage_uri(_url(redis_client))
    limits = ratelimit.Limits(uri, {"chat": "2 per minute;3 per day"})
    assert limits._hit_all is not None
    assert [limits.hit("chat", "r1") for _ in range(3)] == [True, True, False]
    assert limits.allowed("chat", "r1") is False  # the library's own check sees the two entries
    minute, day = limits.rules["chat"]
    assert limits.limiter.get_window_stats(minute, "chat", "r1").remaining == 0
    assert limits.limiter.get_window_stats(day, "chat", "r1").remaining == 1  # the refused one not counted
    assert limits.hit("chat", "r2") is True  # another identity has its own windows


def _url(redis_client) -> str:
    kwargs = redis_client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
