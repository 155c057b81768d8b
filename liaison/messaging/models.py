"""Messages in and out: every delivery WeChat pushed, and the transactional outbox of messages to send
with their delivery attempts."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.case.models import Case, CaseReferral  # noqa: F401  (relationship target)
from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned, city_rule
from liaison.core.types import UTCDateTime
from liaison.people.models import Resident  # noqa: F401  (relationship target)


class InboundMessage(TenantOwned, Base):
    """Every delivery WeChat pushed, unique on its dedup key, with the reply it got (retries reuse it)."""

    __tablename__ = "inbound_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    msg_type: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    reply_text: Mapped[str | None] = mapped_column(Text)
    # What the conversation took the message for (greeting, status_question, new_matter, …) and, for
    # text and voice, what it said: nothing a resident sends is dropped, even when no case is opened.
    intent: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    resident: Mapped[Resident | None] = relationship()
    case: Mapped[Case | None] = relationship()


class OutboxMessage(TenantOwned, Base):
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
    # the moves between statuses: liaison.messaging.lifecycle
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str | None] = mapped_column(String(24))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(TenantOwned, Base):
    """One try at sending an outbox message: which channel, what WeChat said."""

    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    channel: Mapped[str] = mapped_column(String(24))
    ok: Mapped[bool] = mapped_column(Boolean)
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


@city_rule(OutboxMessage)
def _city_outbox(city_id: int):
    """City staff see (and write) the outbox rows of the cases handed up to their city."""
    from sqlalchemy import select

    return OutboxMessage.case_id.in_(select(CaseReferral.case_id).where(CaseReferral.city_id == city_id)
                                     .scalar_subquery())
