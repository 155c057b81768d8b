"""The database role the app connects as on PostgreSQL: it owns nothing, is no superuser and has no
BYPASSRLS, so the row-level security policies of migration 0005 bind it.

Migrations run as the owner (`python manage.py migrate` with the owner's DATABASE_URL); the web,
worker and scheduler processes connect as the app role. `python manage.py app-role NAME` (as the
owner) creates the role if needed and grants it what the app does: DML on every table, the sequences
(case numbers create theirs at run time, hence CREATE on the schema).
"""
from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_app_role(connection: Connection, role: str, password: str | None = None) -> None:
    """Create `role` (LOGIN, NOSUPERUSER, NOBYPASSRLS) unless it exists, and grant it the app's rights."""
    if not ROLE_NAME.match(role):
        raise ValueError("role names are lower-case letters, digits and underscores")
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE")
    else:
        connection.exec_driver_sql(f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS")
    if password is not None:
        connection.execute(text(f"ALTER ROLE {role} PASSWORD :p"), {"p": password})
    database = connection.execute(text("SELECT current_database()")).scalar()
    connection.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
    connection.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    connection.exec_driver_sql(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    connection.exec_driver_sql(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    connection.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}")
    connection.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}")


def bypasses_rls(connection: Connection) -> bool:
    """True when the connected role is a superuser or has BYPASSRLS (start-up may warn about it)."""
    return bool(connection.execute(text(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")).scalar())
