"""While the database cannot be reached the API answers 503 with `Retry-After`, not 500.

A blueprint handler is needed (not only an app one): Flask prefers the blueprint's catch-all
`Exception` handler in `framework` over an app handler for a more specific class.
"""
from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from liaison.core import db
from miniprogram_api.framework import ApiError, bp, error_response

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 10


def unavailable_response(error: Exception):
    """The 503 answer for a database outage (one warning line, no traceback)."""
    log.warning("database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
    response = error_response(ApiError(503, "service_unavailable", "服务暂时不可用，请稍后重试"))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@bp.errorhandler(DBAPIError)
@bp.errorhandler(PoolTimeout)
def _database_error(error: Exception):
    if db.is_unavailable(error):
        return unavailable_response(error)
    log.exception("database error in the API")
    return error_response(ApiError(500, "internal_error", "服务器内部错误，请稍后重试"))
