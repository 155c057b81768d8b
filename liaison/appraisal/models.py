"""述职测评 tables: one appraisal per deputy, quarter and round (a scan-to-rate survey restricted to the
deputy's constituents), and the 整改 item an appraisal under the threshold opens."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.engagement.models import Survey  # noqa: F401  (relationship target)
from liaison.people.models import Deputy  # noqa: F401  (relationship target)


class Appraisal(TenantOwned, Base):
    """A deputy's 述职 测评 for one quarter; `round` 2 is the second 测评 after 整改.
    status: open → closed (appraisal.lifecycle); the result is kept for the re-election record."""

    __tablename__ = "appraisals"
    __table_args__ = (UniqueConstraint("deputy_id", "year", "quarter", "round"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    quarter: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=1)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rated: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction_rate: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deputy: Mapped[Deputy] = relationship()
    survey: Mapped[Survey] = relationship()


class Rectification(TenantOwned, Base):
    """限期整改 opened by an appraisal under the threshold; done → the second 测评 is scheduled.
    status: open → done (appraisal.lifecycle)."""

    __tablename__ = "rectifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    appraisal_id: Mapped[int] = mapped_column(ForeignKey("appraisals.id"), unique=True)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")
    report: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    second_appraisal_id: Mapped[int | None] = mapped_column(ForeignKey("appraisals.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    appraisal: Mapped[Appraisal] = relationship(foreign_keys=[appraisal_id])
