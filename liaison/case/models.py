"""Case tables: the case, its append-only timeline, followers (并单), ratings, extension requests,
classifier corrections, handler notices and staff keyword rules. `status` moves only through
`liaison.case.lifecycle`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned, city_rule
from liaison.core.types import KeywordList, UTCDateTime, new_public_id
from liaison.people.models import Department, Deputy, Grid, Resident  # noqa: F401  (relationship targets)


class Case(TenantOwned, Base):
    """诉求 / 工单: one matter raised by a resident. `status` moves only through liaison.lifecycle."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_deadline", "status", "deadline"),
        Index("ix_cases_created_id", "created_at", "id"),  # the 台账's order (newest first)
        Index("ix_cases_resident_created", "resident_id", "created_at"),
        Index("ix_cases_grid_status", "grid_id", "status"),
        # The 台账 of one grid in its order; with the status and county, its capped count reads the index alone.
        Index("ix_cases_grid_created", "grid_id", "created_at", "id", postgresql_include=["status", "county_id"]),
        Index("ix_cases_signature", "signature", postgresql_using="gin"),
        Index("ix_cases_next_action_at", "next_action_at",
              postgresql_where=sql_text("next_action_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    # On PostgreSQL the INSERT computes the number (`case.service.next_case_number`): FetchedValue
    # has the ORM read it back with RETURNING instead of a SELECT after the flush.
    number: Mapped[str] = mapped_column(String(20), unique=True, server_default=FetchedValue())
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
    # Facts of the timeline kept on the row, in the same transaction as the entry they repeat (by
    # liaison.case.service), so the 台账 and the statistics read one row per case: the first `accept`
    # entry's time (受理时间), the resident's rating of the latest rated round (评价), and the channel
    # of the `submit` entry (来源); and the resident's masked tag (诉求人, `resident_tag`).
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating: Mapped[str | None] = mapped_column(String(24))
    source: Mapped[str | None] = mapped_column(String(24))
    resident_tag: Mapped[str | None] = mapped_column(String(10))
    resident: Mapped[Resident] = relationship()
    deputy: Mapped[Deputy | None] = relationship()
    department: Mapped[Department | None] = relationship()
    grid: Mapped[Grid | None] = relationship()
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", viewonly=True)


class CaseEvent(TenantOwned, Base):
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


class CaseFollower(TenantOwned, Base):
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


class Rating(TenantOwned, Base):
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


class ExtensionRequest(TenantOwned, Base):
    """延期申请: a department asks staff to move a case's deadline by `working_days`."""

    __tablename__ = "extension_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    working_days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|approved|rejected
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)
    old_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    new_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    case: Mapped[Case] = relationship()
    department: Mapped[Department | None] = relationship()


class ClassifierCorrection(TenantOwned, Base):
    """A handler corrected a case's category: the (text, category) pair feeds the classifier."""

    __tablename__ = "classifier_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    old_category: Mapped[str | None] = mapped_column(String(32))
    new_category: Mapped[str] = mapped_column(String(32))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notice(TenantOwned, Base):
    """A notification in the mini-program for a deputy, a department, or one staff account
    (督办, reminders, escalations, digests, extension decisions)."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    dedup_key: Mapped[str | None] = mapped_column(String(128), unique=True)  # sweeps never repeat one
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    case: Mapped[Case | None] = relationship()


class KeywordRule(TenantOwned, Base):
    """A keyword rule added by staff: `keyword` in a message adds `weight` to `category`'s score."""

    __tablename__ = "keyword_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    keyword: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CaseReferral(TenantOwned, Base):
    """三级联动: a case handed up by its county's staff to the county's city (with a reason), answered
    or instructed there (批示) and handed back down. One row per hand-up; `status` moves only through
    `liaison.case.lifecycle.REFERRAL_TRANSITIONS`. The row lives in the case's county; `city_id` is
    the city it was handed to, whose staff see the case (and only such cases) through `CITY_RULES`."""

    __tablename__ = "case_referrals"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("cities.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # at_city | answered | returned
    reason: Mapped[str] = mapped_column(Text)
    handed_up_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    handed_up_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)  # the city's latest answer or instruction
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    return_note: Mapped[str | None] = mapped_column(Text)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    case: Mapped[Case] = relationship()


# --- What city staff see (liaison.core.tenant.CITY_RULES; migration 0019 says the same in SQL): the
# cases handed up to their city, those cases' timelines, residents, notices and outbox rows (their
# answers and hand-downs write these), and the registry's names.
def _handed_up(city_id: int):
    from sqlalchemy import select

    return select(CaseReferral.case_id).where(CaseReferral.city_id == city_id).scalar_subquery()


@city_rule(CaseReferral)
def _city_referrals(city_id: int):
    return CaseReferral.city_id == city_id


@city_rule(Case)
def _city_cases(city_id: int):
    return Case.id.in_(_handed_up(city_id))


@city_rule(CaseEvent)
def _city_case_events(city_id: int):
    return CaseEvent.case_id.in_(_handed_up(city_id))


@city_rule(Notice)
def _city_notices(city_id: int):
    return Notice.case_id.in_(_handed_up(city_id))


@city_rule(Resident)
def _city_residents(city_id: int):
    from sqlalchemy import select

    return Resident.id.in_(select(Case.resident_id).where(Case.id.in_(_handed_up(city_id))).scalar_subquery())

