"""Duty rota tables: recurring rules per station, the shifts they plan, who is on each shift, swaps
asked for and decided, and deputies' grid visits (下沉网格). Statuses move through `rota.lifecycle`."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.people.models import Account, Deputy, Grid, Station  # noqa: F401  (relationship targets)

SHIFT_KINDS = ("reception", "director", "supervision")  # 代表接待（周三见）| 局长进站 | 监督岗
SHIFT_KIND_LABELS = {"reception": "代表接待", "director": "局长进站", "supervision": "监督岗"}
HOLIDAY_POLICIES = ("skip", "next_working_day")


class DutyRule(TenantOwned, Base):
    """A recurring duty: every `weekday` (0 = Monday) at a station, `slots` people taken in turn from
    the pool (`deputy_ids`, or department heads' `account_ids` for 局长进站/监督岗).

    On a public holiday the shift is skipped or moved to the next working day (`holiday_policy`); on a
    调休 working weekend day the station is open, and `on_makeup_days` adds a shift there too."""

    __tablename__ = "duty_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="reception")
    title: Mapped[str] = mapped_column(String(60))
    weekday: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer, default=540)  # minutes after local midnight
    end_minute: Mapped[int] = mapped_column(Integer, default=690)
    slots: Mapped[int] = mapped_column(Integer, default=2)
    deputy_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    account_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    holiday_policy: Mapped[str] = mapped_column(String(20), default="next_working_day")
    on_makeup_days: Mapped[bool] = mapped_column(Boolean, default=False)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    station: Mapped[Station] = relationship()


class DutyShift(TenantOwned, Base):
    """One shift on one day. A rule's shift is unique per (rule, `planned_for`: the rule's own day,
    before a holiday moved it), so planning again never duplicates one nor revives a cancelled one.

    status: planned → kept | missed | cancelled (rota.lifecycle)."""

    __tablename__ = "duty_shifts"
    __table_args__ = (UniqueConstraint("rule_id", "planned_for"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("duty_rules.id"))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(60))
    day: Mapped[date] = mapped_column(Date, index=True)
    planned_for: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="planned", index=True)
    note: Mapped[str | None] = mapped_column(String(200))
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the day-before reminder
    noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the grids' notice
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    station: Mapped[Station] = relationship()
    assignments: Mapped[list[ShiftAssignment]] = relationship(back_populates="shift",
                                                              order_by="ShiftAssignment.id")


class ShiftAssignment(TenantOwned, Base):
    """A deputy (or a department head's account) on a shift. status: on_duty → checked_in | missed |
    swapped (a substitute took the place)."""

    __tablename__ = "shift_assignments"
    __table_args__ = (UniqueConstraint("shift_id", "deputy_id"), UniqueConstraint("shift_id", "account_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("duty_shifts.id"), index=True)
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16), default="on_duty")
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    check_in_via: Mapped[str | None] = mapped_column(String(16))  # scan | miniprogram
    shift: Mapped[DutyShift] = relationship(back_populates="assignments")
    deputy: Mapped[Deputy | None] = relationship()
    account: Mapped[Account | None] = relationship()


class ShiftSwap(TenantOwned, Base):
    """A deputy asks that `substitute_deputy_id` takes their place on a shift; staff decide.
    status: requested → approved | rejected | withdrawn (rota.lifecycle)."""

    __tablename__ = "shift_swaps"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("shift_assignments.id"), index=True)
    substitute_deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    assignment: Mapped[ShiftAssignment] = relationship()


class GridVisit(TenantOwned, Base):
    """下沉网格: a deputy's visit to one of their grids, by scanning the grid's code or a report."""

    __tablename__ = "grid_visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"))
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    method: Mapped[str] = mapped_column(String(16))  # scan | report
    note: Mapped[str | None] = mapped_column(Text)
    photo_media_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
