"""Interop tables: Open311 partner keys, hand-off targets (直通车), external links between our cases and
another platform's requests, and the log of each partner's calls."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.case.models import Case
from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id


class Partner(TenantOwned, Base):
    """A program allowed to file requests through Open311 (a 12345 bridge, another county). Its
    `api_key` is shown once when staff issue it; only its SHA-256 is stored. `resident_id` is the
    stand-in resident (no openid) the partner's requests are filed under."""

    __tablename__ = "open311_partners"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))  # shown in lists so staff can tell keys apart
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class HandoffTarget(TenantOwned, Base):
    """直通车: where cases of `category` (None: any category) in this county are handed. The target
    speaks Open311 at `endpoint` (the base URL ending in /v2); `api_key` is the key it issued us."""

    __tablename__ = "handoff_targets"
    __table_args__ = (UniqueConstraint("county_id", "category"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(300))
    api_key: Mapped[str] = mapped_column(String(128))
    service_code: Mapped[str | None] = mapped_column(String(64))  # their code; None: ours
    jurisdiction_id: Mapped[str | None] = mapped_column(String(64))
    # The HMAC-SHA256 key the target signs its status pushes with (POST /open311/v2/callbacks/<token>);
    # kept in clear because checking a signature needs it. None: the target is only polled.
    callback_secret: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ExternalLink(TenantOwned, Base):
    """One case known on another platform. Outgoing: we handed our case to `target`; the row (with
    its client-generated `token`) is written before the call so a retry sends the same token and the
    target files once. Incoming: `partner` filed the case here under its `token`."""

    __tablename__ = "external_links"
    __table_args__ = (
        UniqueConstraint("partner_id", "token"),  # a partner's token files once
        Index("ix_external_links_token", "token"),
        Index("ix_external_links_next_poll_at", "next_poll_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # outgoing | incoming
    token: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(ForeignKey("handoff_targets.id"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("open311_partners.id"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    # pending (not filed yet) | filed | closed (their side closed it) | rated (our rating sent back)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    external_status: Mapped[str | None] = mapped_column(String(16))
    notes_seen: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    case: Mapped[Case] = relationship()
    target: Mapped[HandoffTarget | None] = relationship()
    partner: Mapped[Partner | None] = relationship()


class PartnerCall(TenantOwned, Base):
    """The log of a partner's Open311 calls (who, what, answer), kept for audit."""

    __tablename__ = "open311_calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("open311_partners.id"), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallbackReceipt(TenantOwned, Base):
    """A status push accepted from a hand-off target, kept by its signature so the same signed
    call sent again (a replay) is refused; a fresh push with the same content is applied (a no-op)."""

    __tablename__ = "handoff_callbacks"
    __table_args__ = (UniqueConstraint("link_id", "signature"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("external_links.id"), index=True)
    signature: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
