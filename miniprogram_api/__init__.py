"""The mini-program JSON API (`/api/...`): residents, deputies, department handlers and staff.

Views only parse, call the domain (`liaison.*`) and serialise. Every endpoint is declared the same way:
a module below declares its views with `framework.endpoint`, which adds the route to `bp` and the
operation to the OpenAPI document served at `/api/openapi.json`. Importing this package imports each
of those modules, here and only here, so `bp` is complete when the app factory registers it.
"""
from miniprogram_api import (  # each declares its endpoints on bp
    appraisal_views,
    city_views,
    engagement_views,
    intake_views,
    interop_views,
    media_views,
    points_views,
    project_views,
    rota_views,
    rules_views,
    suggestion_views,
    unavailable,  # noqa: F401  (503 + Retry-After while the database is down)
    views,
)
from miniprogram_api.framework import bp

ENDPOINT_MODULES = (views, engagement_views, rules_views, intake_views, rota_views, points_views,
                    appraisal_views, suggestion_views, project_views, interop_views, city_views,
                    media_views)
# cases, people, registry; engagement; classifier; walk-ins, 交办单, 回访; duty rota, 履职积分,
# 述职测评; 代表建议; 民生实事 projects; 随手拍; city figures; chat media kept

__all__ = ["bp", "ENDPOINT_MODULES"]
