"""The data model: typed SQLAlchemy 2 models shared by the webhook, the API and the workers.

Names follow ../shared/GLOSSARY.md. Schema changes go through Alembic (migrations/).
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator,
    UniqueConstraint, event,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.db import Base


_clock = None  # a callable returning the time, set only by tests that move time forward


def utcnow() -> datetime:
    """Timezone-aware UTC now; every stored time is UTC. The domain's one clock."""
    return _clock() if _clock is not None else datetime.now(timezone.utc)


def set_clock(clock) -> None:
    """Replace the domain's clock (tests move time forward without sleeping); None restores it."""
    global _clock
    _clock = clock


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

DEPUTY_LEVELS = ("national", "province", "city", "county", "township")
DEPUTY_LEVEL_NAMES = {"national": "全国", "province": "省", "city": "市", "county": "县", "township": "乡"}


class Station(Base):
    """代表联络站 / 代表之家."""

    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    reception_hours: Mapped[str | None] = mapped_column(String(100))
    grids: Mapped[list[Grid]] = relationship(back_populates="station")


class Grid(Base):
    """网格: the smallest neighbourhood unit. `aliases` lists community names residents write."""

    __tablename__ = "grids"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    station: Mapped[Station | None] = relationship(back_populates="grids")
    deputy_links: Mapped[list[DeputyGrid]] = relationship(back_populates="grid")


class Deputy(Base):
    """人大代表. `level` is one of DEPUTY_LEVELS."""

    __tablename__ = "deputies"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    level: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    duties: Mapped[str | None] = mapped_column(String(200))
    reception_hours: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    station: Mapped[Station | None] = relationship()
    grid_links: Mapped[list[DeputyGrid]] = relationship(back_populates="deputy")


class DeputyGrid(Base):
    """A deputy serves a grid as lead (主) or assisting (协) deputy."""

    __tablename__ = "deputy_grids"
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), default="lead")  # lead | assist
    deputy: Mapped[Deputy] = relationship(back_populates="grid_links")
    grid: Mapped[Grid] = relationship(back_populates="deputy_links")


class Department(Base):
    """职能部门 / 承办单位; `code` matches the classifier's routing table."""

    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class Resident(Base):
    """群众: one person, known by the official-account and/or mini-program openid (linked by unionid)."""

    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    oa_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    mp_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Customer-service window bookkeeping (WeChat allows messages only after a user action).
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The current customer-service window: "message" (48 h, 5 sends) or "event" (1 min, 3 sends).
    window_kind: Mapped[str | None] = mapped_column(String(8))
    window_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_used: Mapped[int] = mapped_column(Integer, default=0)
    grid: Mapped[Grid | None] = relationship()


class Case(Base):
    """诉求 / 工单: one matter raised by a resident. `status` moves only through liaison.lifecycle."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_deadline", "status", "deadline"),
        Index("ix_cases_resident_created", "resident_id", "created_at"),
        Index("ix_cases_grid_status", "grid_id", "status"),
        Index("ix_cases_signature", "signature", postgresql_using="gin"),
        Index("ix_cases_next_action_at", "next_action_at",
              postgresql_where=sql_text("next_action_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    routing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # decision + reasons
    # Keywords for 并单; an indexed array on PostgreSQL so candidates are found without a scan.
    signature: Mapped[list[str]] = mapped_column(KeywordList, default=list)
    handler_kind: Mapped[str | None] = mapped_column(String(16))  # deputy | department
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accept_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Timers (liaison.timers): the earliest moment the sweep has something to do for this case.
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    alert: Mapped[str] = mapped_column(String(8), default="none")  # none | yellow | red
    reminded_for: Mapped[datetime | None] = mapped_column(UTCDateTime())  # deadline reminded about
    accept_reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    rating_reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resident: Mapped[Resident] = relationship()
    deputy: Mapped[Deputy | None] = relationship()
    department: Mapped[Department | None] = relationship()
    grid: Mapped[Grid | None] = relationship()
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", viewonly=True)


class CaseEvent(Base):
    """The append-only timeline of a case: who did what, when. Rows are never updated or deleted."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))  # resident | deputy | department | staff | system
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    case: Mapped[Case] = relationship(back_populates="events")


@event.listens_for(CaseEvent, "before_update")
@event.listens_for(CaseEvent, "before_delete")
def _timeline_is_append_only(_mapper, _connection, target):
    raise RuntimeError("the case timeline is append-only")


class CaseFollower(Base):
    """并单: a resident whose own message was merged into this case and who receives its updates."""

    __tablename__ = "case_followers"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseCounter(Base):
    """Per-year sequence behind human-readable case numbers such as 2026-000123."""

    __tablename__ = "case_counters"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class InboundMessage(Base):
    """Every delivery WeChat pushed, unique on its dedup key, with the reply it got (retries reuse it)."""

    __tablename__ = "inbound_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    msg_type: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    reply_text: Mapped[str | None] = mapped_column(Text)
    resident: Mapped[Resident | None] = relationship()
    case: Mapped[Case | None] = relationship()


class Rating(Base):
    """评价 of one round of a case: satisfied | basically_satisfied | unsatisfied | unrated."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("case_id", "round", "resident_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    value: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))  # chat | miniprogram | qrcode | system
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxMessage(Base):
    """A side effect (a message to send) written in the same transaction as the change that caused it.

    The relay hands pending rows to the queue; the job claims a row atomically before sending, so a
    retried or duplicated job never sends twice.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "next_attempt_at"),
                      Index("ix_outbox_resident_status", "resident_id", "status"))
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending -> enqueued -> sending -> sent | failed (will retry) | dead | unknown (crashed mid-send)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str | None] = mapped_column(String(24))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(Base):
    """One try at sending an outbox message: which channel, what WeChat said."""

    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    channel: Mapped[str] = mapped_column(String(24))
    ok: Mapped[bool] = mapped_column(Boolean)
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
from liaison import accounts as _accounts  # noqa: E402,F401  (registers its tables)
from liaison import rules as _rules  # noqa: E402,F401  (registers keyword_rules)
from liaison import engagement_models as _engagement  # noqa: E402,F401  (registers the engagement tables)
