"""The migrations build exactly the schema the models describe, on PostgreSQL and on SQLite."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from liaison import schema
from liaison.schema import metadata


def schema_drift(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return diff


def test_postgres_schema_matches_models(migrated_database):
    assert schema_drift(migrated_database) == []


def test_sqlite_schema_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    schema.upgrade(url)
    assert schema_drift(url) == []


def test_downgrade_to_nothing_and_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    schema.upgrade(url)
    schema.downgrade(url, "base")
    schema.upgrade(url)
    assert schema_drift(url) == []
