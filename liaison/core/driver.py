"""One SQL string on a SQLAlchemy connection's driver cursor, as SQLAlchemy would execute it.

For the hot path's statements (`db.run`, the tenant scope's settings at each transaction's start):
SQLAlchemy's per-execution work costs more than the round trip. What a caller relies on is kept:
the engine's `before_cursor_execute` listeners see the statement, a driver error becomes
SQLAlchemy's (parameters hidden per the engine), and a lost connection invalidates the pool, so the
webhook's retry on a fresh connection and its spool work as with SQLAlchemy's own execution.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection


def execute(connection: Connection, sql: str, values: dict[str, Any], *, rows: bool = False,
            describe: bool = False) -> tuple[list, Any]:
    """Execute `sql` (the driver's paramstyle) with `values` in `connection`'s transaction: (the
    rows when `rows`, else [], the cursor's description when `describe`, else None)."""
    cursor = connection.connection.driver_connection.cursor()
    try:
        if connection._has_events or connection.engine._has_events:
            connection.dispatch.before_cursor_execute(connection, cursor, sql, values, None, False)
        cursor.execute(sql, values)
        return (cursor.fetchall() if rows else []), (cursor.description if describe else None)
    except BaseException as error:  # as SQLAlchemy's own execution: wrapped, pool invalidated on a disconnect
        connection._handle_dbapi_exception(error, sql, values, cursor, None)
    finally:
        cursor.close()
