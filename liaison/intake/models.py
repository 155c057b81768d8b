"""Walk-in matters (a deputy or station staff registers what a resident raised in person), the case
codes printed on a 交办单, and 回访 records (a rating taken by phone or on a visit)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.case.models import Case, Rating  # noqa: F401  (relationship targets)
from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime
from liaison.rota.models import DutyShift  # noqa: F401  (the shift a matter was received on)

PLACE_KINDS = {"reception": "代表周三见（联络站接待）", "stall": "街头摆摊", "post": "监督岗走访"}
VISIT_METHODS = {"phone": "电话回访", "visit": "上门回访"}


class WalkIn(TenantOwned, Base):
    """A matter raised in person and registered on the resident's behalf. The resident's name and
    phone are kept here only (never logged); `contact_consent` records that they agreed to be called."""

    __tablename__ = "walk_ins"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    registered_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    place_kind: Mapped[str] = mapped_column(String(16))  # reception | stall | post
    place: Mapped[str | None] = mapped_column(String(200))
    resident_name: Mapped[str] = mapped_column(String(50))
    resident_phone: Mapped[str | None] = mapped_column(String(32))
    contact_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The duty shift (代表周三见, 监督岗) the matter was received on, if any.
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("duty_shifts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    case: Mapped[Case] = relationship()


class CaseCode(TenantOwned, Base):
    """The WeChat QR code printed on a case's 交办单 (scene `case:<token>`, a temporary code): the
    resident scans it to follow and rate the case in WeChat."""

    __tablename__ = "case_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    ticket: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(300))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReturnVisit(TenantOwned, Base):
    """回访: staff asked the resident by phone or on a visit; the rating given counts as the round's
    rating (`ratings.channel` = "return_visit")."""

    __tablename__ = "return_visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))  # phone | visit
    visitor: Mapped[str] = mapped_column(String(50))  # who made the call or the visit
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(Text)
    rating_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"))
    recorded_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
