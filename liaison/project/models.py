"""民生实事 tables after the 票决: candidate proposals collected from residents and deputies (征集), the
chosen projects with their lead department, milestones, timeline and completion 测评. The vote itself
is in `liaison.engagement.models` (ProjectVote, ProjectCandidate, ProjectBallot). `status` moves only
through `liaison.project.lifecycle`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.engagement.models import ProjectCandidate  # noqa: F401  (foreign-key target)
from liaison.people.models import Department  # noqa: F401  (relationship target)


class ProjectProposal(TenantOwned, Base):
    """征集: a candidate project proposed by a resident or a deputy, screened by staff.
    status: submitted → accepted | declined."""

    __tablename__ = "project_proposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    source_kind: Mapped[str] = mapped_column(String(16))  # resident | deputy
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"))
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The 票决 candidate an accepted proposal became (`service.open_vote`).
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("project_candidates.id"))


class LivelihoodProject(TenantOwned, Base):
    """A chosen 民生实事 project: planned → in_progress → completed; `color` is its 三色督办 light."""

    __tablename__ = "livelihood_projects"
    __table_args__ = (
        Index("ix_livelihood_projects_next_action_at", "next_action_at",
              postgresql_where=sql_text("next_action_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("project_candidates.id"), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    lead_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    color: Mapped[str] = mapped_column(String(8), default="green")  # green | yellow | red
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lead_department: Mapped[Department] = relationship()


class ProjectMilestone(TenantOwned, Base):
    """A milestone of the plan: due by `due_at`, reported done at `done_at`."""

    __tablename__ = "project_milestones"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    project_id: Mapped[int] = mapped_column(ForeignKey("livelihood_projects.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProjectEvent(TenantOwned, Base):
    """The append-only timeline of a project."""

    __tablename__ = "project_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("livelihood_projects.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(ProjectEvent, "before_update")
@event.listens_for(ProjectEvent, "before_delete")
def _timeline_is_append_only(_mapper, _connection, target):
    raise RuntimeError("the project timeline is append-only")


class ProjectRating(TenantOwned, Base):
    """Completion 测评 by a deputy (`rater` deputy:<id>) or a resident (resident:<id>), once each."""

    __tablename__ = "project_ratings"
    __table_args__ = (UniqueConstraint("project_id", "rater"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("livelihood_projects.id"), index=True)
    rater: Mapped[str] = mapped_column(String(24))
    rater_kind: Mapped[str] = mapped_column(String(16))  # deputy | resident
    value: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
