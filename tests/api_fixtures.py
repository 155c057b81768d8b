"""Helpers for the mini-program API tests: log people in through the fake WeChat jscode2session, make
staff/deputy/department accounts and bind them, and call the API with a bearer token."""
from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

import requests

from liaison.core import db
from liaison.people import service as accounts

_codes = itertools.count(1)


@dataclass
class ApiUser:
    """A logged-in caller: a requests session against the live server or a Flask test client."""

    base: str
    token: str
    role: str
    http: object = field(default=None)

    def _headers(self, idempotency_key=None, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(extra or {})
        return headers

    def get(self, path, **params):
        return self.http.get(self.base + path, params=params or None, headers=self._headers())

    def post(self, path, json=None, idempotency_key=None, headers=None):
        return self.http.post(self.base + path, json=json if json is not None else {},
                              headers=self._headers(idempotency_key, headers))


def login(http, base, fake_wechat, openid, unionid=None):
    """POST /api/login with a fresh js_code registered at the fake WeChat API; returns the JSON."""
    code = f"code-{next(_codes)}-{uuid.uuid4().hex[:8]}"
    fake_wechat.register_code(code, openid, session_key="sk-" + uuid.uuid4().hex, unionid=unionid)
    response = http.post(base + "/api/login", json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()


def resident(http, base, fake_wechat, openid, unionid=None) -> ApiUser:
    data = login(http, base, fake_wechat, openid, unionid)
    assert data["me"]["role"] == "resident"
    return ApiUser(base, data["token"], "resident", http)


def bind_with_code(http, base, fake_wechat, openid, binding_code) -> ApiUser:
    """A new WeChat user logs in (as a resident) and binds the account with the code."""
    first = resident(http, base, fake_wechat, openid)
    response = first.post("/api/bind", {"binding_code": binding_code})
    assert response.status_code == 200, response.text
    data = response.json()
    return ApiUser(base, data["token"], data["me"]["role"], http)


def bootstrap_staff(http, base, fake_wechat, openid="o_mp_staff") -> ApiUser:
    """The first staff account, made by the service function (as manage.py will) and bound."""
    with db.session_scope() as session:
        _account, code = accounts.create_first_staff(session, "工委 陈主任")
    return bind_with_code(http, base, fake_wechat, openid, code)


def make_account(staff: ApiUser, fake_wechat, openid, **body) -> ApiUser:
    """Staff registers an account through the API; the person binds it with the returned code."""
    response = staff.post("/api/accounts", body)
    assert response.status_code == 201, response.text
    return bind_with_code(staff.http, staff.base, fake_wechat, openid, response.json()["binding_code"])


class FlaskHttp:
    """Adapter so the helpers work with Flask's test client (`base` is "")."""

    def __init__(self, client):
        self.client = client

    def get(self, url, params=None, headers=None):
        return _Wrapped(self.client.get(url, query_string=params, headers=headers))

    def post(self, url, json=None, headers=None, data=None):
        if data is not None:
            return _Wrapped(self.client.post(url, data=data, headers=headers))
        return _Wrapped(self.client.post(url, json=json, headers=headers))


class _Wrapped:
    def __init__(self, response):
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers

    def json(self):
        return self.response.get_json()

    @property
    def text(self):
        return self.response.get_data(as_text=True)


def live_http() -> requests.Session:
    return requests.Session()
