"""Tables of the engagement features: find-your-deputy codes, broadcast notices, scan-to-rate surveys and
livelihood-project votes (民生实事票决).

Registered on `Base.metadata` by the import at the end of liaison/models.py; created by migration 0003.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id


class QrCode(TenantOwned, Base):
    """A permanent parametric QR code (QR_LIMIT_STR_SCENE), created once at WeChat and reused forever.

    WeChat allows at most 100,000 permanent codes per account: every row here counts against the cap.
    """

    __tablename__ = "qr_codes"
    __table_args__ = (UniqueConstraint("county_id", "scene"),)  # scenes are per official account
    id: Mapped[int] = mapped_column(primary_key=True)
    scene: Mapped[str] = mapped_column(String(64))  # grid:G001, deputy:D001, survey:…
    kind: Mapped[str] = mapped_column(String(16))
    target_code: Mapped[str] = mapped_column(String(64))
    ticket: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(300))  # what the QR image encodes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Broadcast(TenantOwned, Base):
    """A notice written by a deputy (to their grids) or staff (their jurisdiction) to grids' residents.

    status: held (content review: waits for staff approval) → sending → done | cancelled.
    """

    __tablename__ = "broadcasts"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    author_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    author_kind: Mapped[str] = mapped_column(String(16))  # deputy | staff
    title: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(60))  # who the residents see as the sender
    grid_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    content_check: Mapped[str] = mapped_column(String(8))  # pass | review
    total: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    month: Mapped[str | None] = mapped_column(String(7))  # the mass-send month the quota counts in
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BroadcastRecipient(TenantOwned, Base):
    """One resident of one broadcast: claimed atomically before anything is sent to them.

    status: pending → sending → sent (a WeChat channel) | miniprogram (only the mini-program) |
    unknown (the worker died during the send: not resent) | cancelled. Every row but `pending`,
    `sending` and `cancelled` is the resident's mini-program copy of the notice.
    """

    __tablename__ = "broadcast_recipients"
    __table_args__ = (UniqueConstraint("broadcast_id", "resident_id"),
                      Index("ix_broadcast_recipients_chunk", "broadcast_id", "chunk", "status"),
                      Index("ix_broadcast_recipients_resident", "resident_id", "status"))
    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    chunk: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    channel: Mapped[str | None] = mapped_column(String(16))  # subscribe | custom | mass | miniprogram
    batch_key: Mapped[str | None] = mapped_column(String(64))  # mass send clientmsgid
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MassQuota(TenantOwned, Base):
    """How many mass messages a resident got in a month (WeChat: at most 4 per follower per month)."""

    __tablename__ = "mass_quotas"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM (China time)
    count: Mapped[int] = mapped_column(Integer, default=0)


class MassBatch(TenantOwned, Base):
    """One mass-send request of a broadcast and WeChat's report on it (the MASSSENDJOBFINISH event).

    `batch_key` is the clientmsgid the batch was sent under; `msg_id` is WeChat's id for the job,
    which its completion report names. status: submitted → finished. WeChat filters out followers it
    will not deliver to (unfollowed, blocked, over quota): `filter_count` says how many.
    """

    __tablename__ = "mass_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    batch_key: Mapped[str] = mapped_column(String(64), unique=True)
    msg_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    recipients: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    wechat_status: Mapped[str | None] = mapped_column(String(64))  # "send success", "err(10001)", …
    total_count: Mapped[int | None] = mapped_column(Integer)
    filter_count: Mapped[int | None] = mapped_column(Integer)
    sent_count: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int | None] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Survey(TenantOwned, Base):
    """A scan-to-rate survey: a station's service, a deputy's report to voters (述职) or one case."""

    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    kind: Mapped[str] = mapped_column(String(16))  # station | report | case
    title: Mapped[str] = mapped_column(String(100))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SurveyVote(TenantOwned, Base):
    """One resident's rating in one survey (one vote per resident per survey)."""

    __tablename__ = "survey_votes"
    __table_args__ = (UniqueConstraint("survey_id", "resident_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    value: Mapped[str] = mapped_column(String(24))  # satisfied | basically_satisfied | unsatisfied
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))  # chat | miniprogram
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SurveyPrompt(TenantOwned, Base):
    """A resident scanned a survey code; their next chat reply 1/2/3 before `expires_at` is the vote."""

    __tablename__ = "survey_prompts"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProjectVote(TenantOwned, Base):
    """民生实事票决: the deputies of one level choose among candidate livelihood projects.

    status: open → closed (results are published only when closed).
    """

    __tablename__ = "project_votes"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    max_choices: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The deputies of the level when the vote closed (the base of the quorum and the majority).
    electorate: Mapped[int | None] = mapped_column(Integer)


class ProjectCandidate(TenantOwned, Base):
    """A candidate livelihood project of a vote."""

    __tablename__ = "project_candidates"
    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("project_votes.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    # Set when the vote closes: its votes, and whether they reach the majority (入选).
    votes: Mapped[int | None] = mapped_column(Integer)
    chosen: Mapped[bool | None] = mapped_column(Boolean)


class ProjectBallot(TenantOwned, Base):
    """One deputy's ballot in one vote (the unique key makes it one ballot each)."""

    __tablename__ = "project_ballots"
    __table_args__ = (UniqueConstraint("vote_id", "deputy_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("project_votes.id"), index=True)
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"))
    candidate_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
