"""Alembic environment: the URL comes from DATABASE_URL (or the caller's -x url=... / config)."""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from liaison import schema

config = context.config
target_metadata = schema.metadata


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from config.settings import DEFAULT_SQLITE_URL

    raw = os.environ.get("DATABASE_URL") or DEFAULT_SQLITE_URL
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Row-level security (0005) hides every county's rows from a transaction that names none:
            # migrations see and write every county, by name.
            connection.exec_driver_sql("SELECT set_config('liaison.all_counties', 'on', true)")
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
