"""Shared by the benchmarks: a fresh, migrated PostgreSQL database of their own."""
from __future__ import annotations


def recreate_database(url: str) -> None:
    """Drop and create the database named at the end of `url`, then apply every migration."""
    from sqlalchemy import create_engine, text

    from liaison import schema

    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    schema.upgrade(url)
