"""The office console under `/console`: server-rendered pages in Chinese for county and station staff
(deputies get the desk view read-only). Every rule is the domain's: scopes from
`liaison.case.access`, actions through the case services, figures from `liaison.console.service`.

`init_app(app)` is the one call the app factory makes.
"""
from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from . import (
    bulletin_views,  # noqa: F401  (registers the 通报 and 整改 pages on the blueprint)
    city_views,  # noqa: F401  (registers the 县（区） page of city staff)
    interop_views,  # noqa: F401  (registers the 对接 page: partner keys, hand-off targets)
    points_views,  # noqa: F401  (registers the 履职积分 pages: 公示, standard, ledgers, reviews)
    project_views,  # noqa: F401  (registers the 民生实事 pages: 台账, 征集, 票决, a project)
    rota_views,  # noqa: F401  (registers the duty rota pages: shifts, rules, swaps, attendance)
    suggestion_views,  # noqa: F401  (registers the 代表建议 pages: 台账, a suggestion, 问题清单)
)
from .views import bp

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Register the console. CSRF is checked on the console's own POSTs only: the webhook and the
    mini-program API authenticate otherwise (signature, bearer token) and take no cookies."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    csrf.init_app(app)
    app.extensions["console.csrf"] = csrf
    app.register_blueprint(bp)
