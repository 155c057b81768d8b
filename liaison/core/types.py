"""Small types shared by every domain: column types, public ids and the acting party."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, String, TypeDecorator
from sqlalchemy.dialects import postgresql


def new_public_id() -> str:
    """An unguessable identifier for URLs (ids in URLs must not be enumerable)."""
    return secrets.token_urlsafe(12)


class UTCDateTime(TypeDecorator):
    """DateTime that always comes back timezone-aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, datetime):
            value = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)  # stored as naive UTC text, compared as text
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime):
            value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value


KeywordList = JSON().with_variant(postgresql.ARRAY(String(64)), "postgresql")



@dataclass(frozen=True)
class Actor:
    """Who acts on a case: resident | deputy | department | staff | system, with their row id."""

    kind: str
    id: int | None = None

    @staticmethod
    def system() -> Actor:
        return Actor("system")
