"""Console tables: a staff member's password, the one-time links that set it, console sessions, and
the statistics' daily summary with its marks of days to recount.

Kept beside `people.models.Account` rather than on it: an account works cases in the mini-program
without ever signing in to the desk console, and a console session must be revocable row by row.
Each row is its account's county's (`county_id`, row-level security like every county-owned table);
sign-in names stay unique across counties, so a name alone finds its account.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime
from liaison.people.models import Account


class ConsoleCredential(TenantOwned, Base):
    """The sign-in name and argon2id password hash of an account that may use the console."""

    __tablename__ = "console_credentials"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    login: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None until the link is used
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    account: Mapped[Account] = relationship()


class PasswordLink(TenantOwned, Base):
    """A one-time link that sets (or resets) an account's console password. Only its hash is stored."""

    __tablename__ = "console_password_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleSession(TenantOwned, Base):
    """One signed-in browser. The cookie carries a random token; only its hash is stored, so
    signing out or disabling the account ends the session at once."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    account: Mapped[Account] = relationship()


class DailyFigures(TenantOwned, Base):
    """The statistics' counters of one county's cases received on one day (China time), per value of
    the dimensions a case row carries (grid, deputy, department, category, source) and, for cases
    still being worked, their deadline's day (`due_day`: 超期 is counted at read time against today).

    Per figure of `liaison.console.service.FIGURES`: `<name>_n` the numerator's count, `<name>_d` the
    denominator's, `<name>_days` a duration's sum of working days; `overdue_n` counts the cases being
    worked that have a deadline. Written only by the recount (`liaison.console.summary`), read by the
    statistics for days not marked stale in `StaleDay`.
    """

    __tablename__ = "console_daily_figures"
    __table_args__ = (Index("ix_console_daily_figures_day", "county_id", "day"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    grid_id: Mapped[int | None] = mapped_column(Integer)
    deputy_id: Mapped[int | None] = mapped_column(Integer)
    department_id: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(24))
    due_day: Mapped[date | None] = mapped_column(Date)
    received_n: Mapped[int] = mapped_column(Integer, default=0)
    closed_rate_n: Mapped[int] = mapped_column(Integer, default=0)
    closed_rate_d: Mapped[int] = mapped_column(Integer, default=0)
    on_time_rate_n: Mapped[int] = mapped_column(Integer, default=0)
    on_time_rate_d: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction_rate_n: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction_rate_d: Mapped[int] = mapped_column(Integer, default=0)
    unrated_n: Mapped[int] = mapped_column(Integer, default=0)
    second_round_rate_n: Mapped[int] = mapped_column(Integer, default=0)
    second_round_rate_d: Mapped[int] = mapped_column(Integer, default=0)
    response_days_d: Mapped[int] = mapped_column(Integer, default=0)
    response_days_days: Mapped[int] = mapped_column(Integer, default=0)
    closing_days_d: Mapped[int] = mapped_column(Integer, default=0)
    closing_days_days: Mapped[int] = mapped_column(Integer, default=0)
    overdue_n: Mapped[int] = mapped_column(Integer, default=0)


class StaleDay(TenantOwned, Base):
    """A (county, day) whose cases changed since `DailyFigures` counted it. On PostgreSQL a trigger on
    `cases` (migration 0020) adds one row per writing statement and day, in the writer's transaction;
    the recount deletes the rows it saw, in the transaction that replaces the day's counters. Rows are
    never unique: a writer never waits for another writer's mark."""

    __tablename__ = "console_stale_days"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
