"""The statistics' daily summary: reading, replacing and marking stale the `DailyFigures` rows.

What the counters mean, and how a day is recounted from the cases, is `liaison.console.service`'s
(one definition per figure); this module only stores and sums them. A day is exact when no
`StaleDay` mark names it: on PostgreSQL a statement trigger on `cases` (migration 0020) marks the
day of every case a statement writes, in the writer's transaction, and the recount job
(`jobs.tasks.recount_console_summary`) replaces marked days and deletes the marks it saw. The
statistics read the summary for unmarked days and count marked days live, so a figure is never
behind. SQLite (embedded) has no trigger and never reads the summary.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Iterable

from sqlalchemy import ColumnElement, and_, case, delete, false, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session

from liaison.console.models import DailyFigures, StaleDay
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Grid

LOCK_KEY = 180018  # pg_advisory_xact_lock(LOCK_KEY, county_id): one recount of a county at a time


def day_start(day: date) -> datetime:
    """Midnight of a China-time day, as the UTC instant stored times compare with."""
    return datetime.combine(day, time(0), tzinfo=CHINA_TZ)


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days folded into (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def received_on(column: ColumnElement, days: Iterable[date]) -> ColumnElement[bool]:
    """`column` (a stored UTC time) falls on one of `days` (China time), as index-friendly ranges."""
    ranges = [and_(column >= day_start(first), column < day_start(last + timedelta(days=1)))
              for first, last in _runs(days)]
    return or_(*ranges) if ranges else false()


def stale_days(session: Session) -> set[date]:
    """The days marked stale in the counties the session sees."""
    return set(session.scalars(select(StaleDay.day).distinct()))


def counties_with_marks(session: Session) -> list[int]:
    """The counties (of the session's scope) with days to recount."""
    return list(session.scalars(select(StaleDay.county_id).distinct().order_by(StaleDay.county_id)))


def lock_county(session: Session, county_id: int) -> None:
    """Wait for any other recount of this county, until this transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key, :county)"), {"key": LOCK_KEY, "county": county_id})


def marks(session: Session, county_id: int) -> list[tuple[int, date]]:
    """(mark id, day) of every stale mark of the county."""
    return [tuple(row) for row in session.execute(
        select(StaleDay.id, StaleDay.day).where(StaleDay.county_id == county_id))]


def replace(session: Session, county_id: int, days: list[date], rows: list[dict], mark_ids: list[int]) -> None:
    """The county's counters of `days` become `rows`; the marks `mark_ids` (read before the
    recount) go."""
    session.execute(delete(DailyFigures).where(DailyFigures.county_id == county_id, DailyFigures.day.in_(days))
                    .execution_options(synchronize_session=False))
    if rows:  # Core on the table: one multi-row INSERT per batch (RLS checks the county)
        session.execute(insert(DailyFigures.__table__), [{**row, "county_id": county_id} for row in rows])
    for start in range(0, len(mark_ids), 5000):
        session.execute(delete(StaleDay).where(StaleDay.id.in_(mark_ids[start:start + 5000]))
                        .execution_options(synchronize_session=False))


def _key(dimension: str | None) -> ColumnElement:
    if dimension is None:
        return literal("all")
    if dimension == "month":
        return func.to_char(DailyFigures.day, "YYYY-MM")
    return {"station": Grid.station_id, "grid": DailyFigures.grid_id, "grid_kind": Grid.kind,
            "deputy": DailyFigures.deputy_id, "department": DailyFigures.department_id,
            "category": DailyFigures.category, "source": DailyFigures.source}[dimension]


def read(session: Session, conditions: list[ColumnElement[bool]], dimensions: tuple[str | None, ...],
         counters: list[str], stale: set[date], today: date):
    """Rows of (dimension values…, sum of each counter in `counters`) over the unmarked days matching
    `conditions`; `overdue_n` sums only the cases whose deadline's day is before `today`."""
    keys = [_key(d).label(f"key{i}") for i, d in enumerate(dimensions)]
    sums = [func.sum(case((DailyFigures.due_day < today, DailyFigures.overdue_n), else_=0)) if name == "overdue_n"
            else func.sum(getattr(DailyFigures, name)) for name in counters]
    query = select(*keys, *sums).select_from(DailyFigures).where(*conditions)
    if any(d in ("station", "grid_kind") for d in dimensions):
        query = query.outerjoin(Grid, Grid.id == DailyFigures.grid_id)
    if stale:
        query = query.where(DailyFigures.day.not_in(sorted(stale)))
    return session.execute(query.group_by(*keys)).all()
