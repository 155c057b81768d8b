"""Smoke test of the embedded default: SQLite file, in-process queue and worker, no Redis."""
from __future__ import annotations

import re

from sqlalchemy import select

from tests.conftest import AES_KEY, APP_ID, APP_SECRET, SIMULATOR_TIMEOUT, TOKEN, LiveServer, wait_for


def test_embedded_mode_runs_the_loop_without_postgres_or_redis(tmp_path, fake_wechat):
    from config.settings import load_settings
    from liaison import demo, schema
    from liaison.case import service as cases
    from liaison.case.models import Case
    from liaison.core import db
    from webapp import create_app
    from wechat_fake.simulator import WeChatSimulator

    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    settings = load_settings({"DATABASE_URL": url, "SECRET_KEY": "k", "WECHAT_TOKEN": TOKEN,
                              "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
                              "WECHAT_ENCODING_AES_KEY": AES_KEY,
                              "WECHAT_API_BASE_URL": fake_wechat.base_url})
    assert settings.embedded
    schema.upgrade(url)  # the migrations run on SQLite too
    db.init_engine(url)
    with db.session_scope() as session:
        assert demo.seed_demo(session)
    app = create_app(settings, start_background=False)
    with LiveServer(app) as server:
        sim = WeChatSimulator(url=server.url + "/wechat", token=TOKEN, appid=APP_ID,
                              encoding_aes_key=AES_KEY, mode="safe", timeout=SIMULATOR_TIMEOUT)
        replies = sim.deliveries(sim.build_text("o_embedded", "幸福里小区的路灯坏了"), n=3, concurrent=True)
        assert len({r.content for r in replies}) == 1
        number = re.search(r"\d{4}-\d{6}", replies[0].content).group(0)
        with db.session_scope() as session:
            assert len(session.scalars(select(Case)).all()) == 1
            case = cases.case_by_number(session, number)
            cases.accept(session, case, cases.Actor("deputy", case.deputy_id))
            cases.reply(session, case, cases.Actor("deputy", case.deputy_id), "明天就修。")
        sent = wait_for(lambda: fake_wechat.calls("/cgi-bin/message/custom/send"),
                        message="the in-process worker to deliver the reply")
        assert "明天就修" in sent[0]["json"]["text"]["content"]
        assert server.url and app.test_client().get("/healthz").json["mode"] == "embedded"
