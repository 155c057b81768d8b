"""While PostgreSQL cannot be reached the API answers 503 with Retry-After, never 500.

The outage is real: the engine is pointed at a port where no server listens (the fault test in
tests/test_fault_postgres.py stops a real server instead).
"""
from __future__ import annotations

import requests

from tests.api_fixtures import resident

DOWN_URL = "postgresql+psycopg://postgres@127.0.0.1:1/unreachable"


def test_api_answers_503_with_retry_after_while_the_database_is_down(live_server, fake_wechat):
    from liaison.core import db

    http = requests.Session()
    user = resident(http, live_server.url, fake_wechat, "o_outage_api")
    assert user.get("/api/me").status_code == 200
    up_url = str(db.get_engine().url.render_as_string(hide_password=False))
    db.init_engine(DOWN_URL)
    try:
        for response in (user.get("/api/me"), user.get("/api/cases"),
                         user.post("/api/cases", {"text": "路灯坏了"}, idempotency_key="k-outage"),
                         http.get(live_server.url + "/healthz")):
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
        assert user.get("/api/me").json()["error"]["code"] == "service_unavailable"
    finally:
        db.init_engine(up_url)
    assert user.get("/api/me").status_code == 200  # back without restarting anything


def test_a_database_refusal_that_is_not_an_outage_is_not_a_503():
    from sqlalchemy.exc import DataError, IntegrityError, OperationalError

    from liaison.core import db

    assert db.is_unavailable(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert not db.is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not db.is_unavailable(DataError("INSERT", {}, Exception("value too long")))
    assert not db.is_unavailable(ValueError("x"))
