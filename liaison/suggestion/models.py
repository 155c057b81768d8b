"""代表建议 tables: the 问题清单 entry built from cases, the suggestion a deputy drafts from it, its
deputies (领衔/附议), linked cases, handling departments (主办/协办), its append-only timeline (review
decisions, 交办, 答复, 督办 entries) and the 双满意 ratings. `status` moves only through
`liaison.suggestion.lifecycle`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.case.models import Case  # noqa: F401  (relationship and foreign-key target)
from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.people.models import Department, Deputy  # noqa: F401  (relationship targets)


class ProblemEntry(TenantOwned, Base):
    """问题清单 entry: a set of residents' cases staff or a deputy picked as one problem worth a
    suggestion. status: open → drafted (a suggestion was drafted from it)."""

    __tablename__ = "problem_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(32))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProblemEntryCase(TenantOwned, Base):
    """A case on a 问题清单 entry."""

    __tablename__ = "problem_entry_cases"
    entry_id: Mapped[int] = mapped_column(ForeignKey("problem_entries.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)


class Suggestion(TenantOwned, Base):
    """代表建议: drafted by its lead deputy, reviewed, assigned (交办), answered, rated (双满意)."""

    __tablename__ = "suggestions"
    __table_args__ = (
        UniqueConstraint("county_id", "number"),
        Index("ix_suggestions_next_action_at", "next_action_at",
              postgresql_where=sql_text("next_action_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    number: Mapped[str] = mapped_column(String(20))  # 2026-0001, per county
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("problem_entries.id"))
    title: Mapped[str] = mapped_column(String(100))
    problems: Mapped[str] = mapped_column(Text)
    proposals: Mapped[str] = mapped_column(Text)
    lead_deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    review_step: Mapped[int] = mapped_column(Integer, default=0)  # index into the county's steps
    nature: Mapped[str] = mapped_column(String(12), default="individual")  # individual 个性 | common 共性
    key_supervision: Mapped[bool] = mapped_column(Boolean, default=False)  # 重点督办
    round: Mapped[int] = mapped_column(Integer, default=1)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    answer_category: Mapped[str | None] = mapped_column(String(1))  # A | B | C
    answer_text: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    plan_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a B answer carried out
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    lead_deputy: Mapped[Deputy] = relationship()


class SuggestionDeputy(TenantOwned, Base):
    """A deputy behind a suggestion: lead (领衔) or cosigner (附议)."""

    __tablename__ = "suggestion_deputies"
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), primary_key=True)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))  # lead | cosigner


class SuggestionCase(TenantOwned, Base):
    """A resident's case the suggestion grew from (its residents are told what it achieved)."""

    __tablename__ = "suggestion_cases"
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)


class SuggestionDepartment(TenantOwned, Base):
    """A department handling a suggestion: lead (主办) or co (协办)."""

    __tablename__ = "suggestion_departments"
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))  # lead | co
    department: Mapped[Department] = relationship()


class SuggestionEvent(TenantOwned, Base):
    """The append-only timeline of a suggestion. Rows are never updated or deleted."""

    __tablename__ = "suggestion_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))  # deputy | department | staff | system
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(SuggestionEvent, "before_update")
@event.listens_for(SuggestionEvent, "before_delete")
def _timeline_is_append_only(_mapper, _connection, target):
    raise RuntimeError("the suggestion timeline is append-only")


class SuggestionRating(TenantOwned, Base):
    """测评 of one round's answer: by a proposing deputy (`rater` deputy:<id>) or the standing
    committee (`rater` committee). value: satisfied | basically_satisfied | unsatisfied."""

    __tablename__ = "suggestion_ratings"
    __table_args__ = (UniqueConstraint("suggestion_id", "round", "rater"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    rater: Mapped[str] = mapped_column(String(24))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    value: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
