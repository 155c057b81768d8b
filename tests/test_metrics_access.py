"""/metrics: only with the bearer token METRICS_TOKEN (absent: not served at all), from figures cached
for METRICS_CACHE_SECONDS so scrapes do not run database aggregates each time."""
from __future__ import annotations

import pytest
from sqlalchemy import event

from liaison.core import db
from tests.conftest import METRICS_TOKEN, settings_env


@pytest.fixture
def make_client(clean_db, redis_client, fake_wechat, demo_county):
    from config.settings import load_settings
    from webapp import create_app

    def make(**overrides: str):
        application = create_app(load_settings(settings_env(fake_wechat.base_url, **overrides)),
                                 start_background=False)
        return application.test_client()

    return make


def test_metrics_need_the_token(make_client):
    client = make_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200 and "liaison_cases_open" in response.text


def test_metrics_are_not_served_without_a_token_setting(make_client):
    client = make_client(METRICS_TOKEN="")
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_scrapes_within_the_cache_time_run_no_query(make_client):
    client = make_client(METRICS_CACHE_SECONDS="3600")
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    first = client.get("/metrics", headers=headers).data
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        again = [client.get("/metrics", headers=headers).data for _ in range(5)]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == [] and all(body == first for body in again)
