"""The API docs page: Swagger UI at `/docs/` over `/api/openapi.json`.

Swagger UI's files come from the `flask-swagger-ui` package (served by this app; nothing from the
internet), so the page works on an offline county network. It lives outside `/api/` because every
route under `/api/` is an operation of the OpenAPI document.
"""
from __future__ import annotations

from flask import Flask

DOCS_PATH = "/docs"


def init_app(app: Flask) -> None:
    """Register the docs page on `app`."""
    from flask_swagger_ui import get_swaggerui_blueprint

    app.register_blueprint(get_swaggerui_blueprint(
        DOCS_PATH, "/api/openapi.json", blueprint_name="api_docs",
        config={"app_name": "一键找代表 小程序接口", "persistAuthorization": True}))
