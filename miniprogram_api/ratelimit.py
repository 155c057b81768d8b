"""Rate limits on the API (Flask-Limiter over the deployment's Redis; in-process memory when embedded).

Limits are per caller identity (the resident or account the session token names, read from its
signature alone: no database work before a refusal) and per client address. The rules are settings
(`config.settings`), read per request, so every app instance follows its own configuration. Refusals
are 429 in the API's error shape with `Retry-After`.

Decorate a view *under* `@endpoint(...)`: the limiter then knows the route the endpoint registers
(`functools.wraps` keeps the view's qualified name).
"""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from liaison.core import ratelimit as domain_limits
from liaison.people import service as accounts

limiter = Limiter(key_func=get_remote_address, strategy="moving-window", headers_enabled=True,
                  key_prefix="liaison:api", swallow_errors=True)

CASES_MESSAGE = "提交诉求过于频繁，请稍后再试"
BINDING_MESSAGE = "绑定码错误次数过多，请 15 分钟后再试"


def _settings():
    return current_app.config["SETTINGS"]


def identity() -> str:
    """The caller the bearer token names (`resident:ID` / `account:ID`), else the client address.

    Any valid token of one person gives the same key, so logging in again does not reset a limit.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        settings = _settings()
        subject = accounts.token_subject(settings.secret_key, token.strip(),
                                         settings.session_token_max_age_seconds)
        if subject is not None:
            return subject
    return "address:" + (get_remote_address() or "unknown")


def _failed(response) -> bool:
    """A refused attempt (wrong code, bad input); the limit's own 429s are not counted again."""
    return 400 <= response.status_code < 500 and response.status_code != 429


# Case creation: each new case pushes a notice to a deputy.
cases_per_identity = limiter.limit(lambda: _settings().case_rate_limit_per_resident, key_func=identity,
                                   scope="cases:identity", error_message=CASES_MESSAGE)
cases_per_address = limiter.limit(lambda: _settings().case_rate_limit_per_address,
                                  scope="cases:address", error_message=CASES_MESSAGE)
# Binding codes: only failed attempts count; past the limit even a right code waits (a lockout).
binding_per_identity = limiter.limit(lambda: _settings().binding_failure_limit_per_resident,
                                     key_func=identity, scope="bind:identity", deduct_when=_failed,
                                     error_message=BINDING_MESSAGE)
binding_per_address = limiter.limit(lambda: _settings().binding_failure_limit_per_address,
                                    scope="bind:address", deduct_when=_failed, error_message=BINDING_MESSAGE)

LIMITED_ENDPOINTS = {"submit_case", "bind"}  # documented with a 429 in the OpenAPI document


def init_app(app: Flask) -> None:
    """Attach the limiter to `app` (storage from the app's settings) and answer 429 as API JSON."""
    settings = app.config["SETTINGS"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", domain_limits.storage_uri(settings.redis_url))
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 2} if settings.redis_url else {})
    limiter.init_app(app)

    @limiter.request_filter
    def _outside_the_api() -> bool:
        # Only the API's views carry these limits. Elsewhere the limiter would still resolve limits
        # on every request: the WeChat webhook's hot path paid ~280 Python calls a delivery for
        # nothing (the chat's own limits are the domain's, `liaison.core.ratelimit`).
        return request.blueprint != "miniprogram_api"

    @app.errorhandler(429)
    def _too_many(error):
        from .framework import ApiError, error_response

        limit: RequestLimit | None = getattr(error, "limit", None)
        message = error.description if isinstance(error.description, str) and limit is not None \
            else "操作过于频繁，请稍后再试"
        return error_response(ApiError(429, "rate_limited", message))
