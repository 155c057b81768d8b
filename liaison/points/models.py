"""履职积分 tables: a versioned points standard per county and year (as data), the per-deputy ledger
of points with the event each came from, offline activities with their review decisions, and
audited adjustments."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.people.models import Deputy  # noqa: F401  (relationship target)

POINTS = Numeric(8, 2)


class PointsStandard(TenantOwned, Base):
    """One version of a county's standard for a year. `items`: [{code, category, name, source,
    points, cap}] where `source` names the recorded event that earns the item ("activity" for offline
    activities reported and approved); a negative `points` is a deduction. `grades`: [{grade, min}]
    best first. `review_chain`: [{name, by}] with `by` station_staff | county_staff. The newest
    active version of a year applies; older versions stay for the record."""

    __tablename__ = "points_standards"
    __table_args__ = (UniqueConstraint("county_id", "year", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(100))
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)
    grades: Mapped[list[Any]] = mapped_column(JSON, default=list)
    review_chain: Mapped[list[Any]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PointsEntry(TenantOwned, Base):
    """One line of a deputy's ledger: points for one item from one source event (`source_ref`,
    e.g. "assignment:12"), never typed in. Unique per source, so an event counts once."""

    __tablename__ = "points_entries"
    __table_args__ = (UniqueConstraint("deputy_id", "year", "item_code", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    standard_id: Mapped[int] = mapped_column(ForeignKey("points_standards.id"))
    item_code: Mapped[str] = mapped_column(String(32))
    points: Mapped[Decimal] = mapped_column(POINTS)
    source_ref: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deputy: Mapped[Deputy] = relationship()


class ActivityReport(TenantOwned, Base):
    """An offline activity (会议, 培训, 调研…) reported by the deputy with evidence. It counts only once
    every step of the review chain (snapshotted at submission in `chain`) approved it.
    status: pending → approved | rejected (points.lifecycle); `step` is the next step to decide."""

    __tablename__ = "activity_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    standard_id: Mapped[int] = mapped_column(ForeignKey("points_standards.id"))
    year: Mapped[int] = mapped_column(Integer)
    item_code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(100))
    happened_on: Mapped[date] = mapped_column(Date)
    evidence: Mapped[str] = mapped_column(Text)
    photo_media_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    chain: Mapped[list[Any]] = mapped_column(JSON, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deputy: Mapped[Deputy] = relationship()
    reviews: Mapped[list[ActivityReview]] = relationship(back_populates="report", order_by="ActivityReview.id")


class ActivityReview(TenantOwned, Base):
    """One decision on one step of an activity's review chain, by whom and why."""

    __tablename__ = "activity_reviews"
    __table_args__ = (UniqueConstraint("report_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("activity_reports.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    step_name: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    note: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    report: Mapped[ActivityReport] = relationship(back_populates="reviews")


class PointsAdjustment(TenantOwned, Base):
    """A correction by county staff, with its reason (audited: it enters the ledger as its own line)."""

    __tablename__ = "points_adjustments"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    points: Mapped[Decimal] = mapped_column(POINTS)
    reason: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
