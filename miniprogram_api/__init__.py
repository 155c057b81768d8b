"""The mini-program JSON API (`/api/...`): residents, deputies, department handlers and staff.

Views only parse, call the domain (`liaison.*`) and serialise; the endpoint declarations in `views`
also generate the OpenAPI document served at `/api/openapi.json`.
"""
from miniprogram_api import (
    rules_views,  # noqa: F401,E402  (classifier rules and corrections)
    unavailable,  # noqa: F401  (503 + Retry-After while the database is down)
    views,  # noqa: F401  (declares the endpoints on bp)
)
from miniprogram_api.framework import bp

__all__ = ["bp"]
