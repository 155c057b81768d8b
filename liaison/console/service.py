"""The office's statistics: each figure defined once, here, as SQL conditions on a case.

A rate is numerator / denominator, both conditions on `Case` (`FIGURES`); a count has a numerator
only; a duration is an average over the denominator's cases of working days between two moments
(`liaison.core.workcalendar`). The console's statistics page, its drill-down into the 台账 (the
ledger's `figure` filter applies exactly these conditions), the exports and the API all read them
from here, so a figure cannot mean two things. The README lists the definitions (`definition`).

Figures are computed from one row of facts per case (`_facts`), aggregated by any dimension
(station, grid, deputy, department, category, month) in one pass.
"""
from __future__ import annotations

import contextvars
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Iterable

from sqlalchemy import ColumnElement, Date, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.orm import Session

from liaison.case import access, lifecycle
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent, Rating
from liaison.case.stats import RATED_VALUES, SATISFIED_VALUES, satisfaction_rate
from liaison.console import summary
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ, working_days_between
from liaison.people.models import GRID_KINDS, Department, Deputy, Grid, Station

# 办结: the handler finished the round (rated or not yet; 不满意 after the second round awaiting or
# given the staff ruling included).
DONE_STATUSES = (Status.CLOSED, Status.ARCHIVED, Status.UNRATED, Status.RULING, Status.CONCLUDED)
# Not a matter the office handles: merged into another case, refused, withdrawn by the resident.
NOT_HANDLED_STATUSES = (Status.MERGED, Status.REJECTED, Status.WITHDRAWN)


def accepted_at() -> ColumnElement:
    """When the case was first accepted (受理): the earliest `accept` on its timeline, kept on the row
    (`Case.accepted_at`, written with the entry; `timeline_facts` reads it from the timeline)."""
    return Case.accepted_at


def latest_rating() -> ColumnElement:
    """The case's 评价: its resident's rating of the latest rated round (followers' do not decide),
    kept on the row (`Case.rating`, written with the rating)."""
    return Case.rating


def source_of() -> ColumnElement:
    """The case's source: the channel of its `submit` entry, kept on the row (`Case.source`)."""
    return Case.source


def timeline_facts() -> list[ColumnElement]:
    """The three row facts above as the timeline and the ratings define them (correlated subqueries):
    what `Case.accepted_at`, `Case.rating` and `Case.source` must equal (tests and the back-fill
    of migration 0020 read them so)."""
    return [
        select(func.min(CaseEvent.at)).where(CaseEvent.case_id == Case.id, CaseEvent.action == "accept")
        .correlate(Case).scalar_subquery().label("accepted_at"),
        select(Rating.value).where(Rating.case_id == Case.id, Rating.resident_id == Case.resident_id,
                                   Rating.value.in_(RATED_VALUES))
        .order_by(Rating.round.desc(), Rating.id.desc()).limit(1).correlate(Case).scalar_subquery()
        .label("rating"),
        select(CaseEvent.detail["channel"].as_string())
        .where(CaseEvent.case_id == Case.id, CaseEvent.action == "submit")
        .order_by(CaseEvent.id).limit(1).correlate(Case).scalar_subquery().label("source"),
    ]


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """超期: past the deadline while someone is still working it (as `access.is_overdue`)."""
    return and_(Case.deadline.is_not(None), Case.deadline < now,
                Case.status.in_(sorted(lifecycle.WORKING_STATUSES)))


def _received():
    return Case.status != Status.MERGED


def _handled():
    return Case.status.not_in(NOT_HANDLED_STATUSES)


def _done():
    return Case.status.in_(DONE_STATUSES)


def _on_time():
    return and_(_done(), Case.closed_at.is_not(None), Case.deadline.is_not(None),
                Case.closed_at <= Case.deadline)


def _satisfied():
    return latest_rating().in_(SATISFIED_VALUES)


def _rated():
    return latest_rating().in_(RATED_VALUES)


def _unrated():
    return Case.status == Status.UNRATED


def _second_round():
    return Case.round >= 2


def _closed_once():
    return or_(_done(), Case.round >= 2)


def _accepted():
    return accepted_at().is_not(None)


# The moment 超期 is judged at (None: now). The summary's recount counts "being worked, with a
# deadline" by judging at the end of time, and keeps the deadline's day to judge at read time.
_overdue_at: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("console_overdue_at", default=None)
END_OF_TIME = datetime(9999, 12, 31, tzinfo=timezone.utc)


def _overdue():
    return overdue_condition(_overdue_at.get() or utcnow())


@dataclass(frozen=True)
class Figure:
    """One statistic. `kind`: count (numerator only), rate (numerator / denominator) or duration
    (average working days from `start` to `end` over the denominator's cases)."""

    name: str
    label: str
    kind: str
    definition: str
    numerator: Callable[[], ColumnElement[bool]] | None
    denominator: Callable[[], ColumnElement[bool]] | None = None
    start: str | None = None
    end: str | None = None


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("received", "受理量", "count", "期内收到的诉求数（并入他件的并单不重复计）", _received),
    Figure("closed_rate", "办结率", "rate",
           "已办结 / 应办理（不含并单、不予受理、撤回）", _done, _handled),
    Figure("on_time_rate", "按期办结率", "rate", "办结时间不晚于期限的已办结诉求 / 已办结诉求",
           _on_time, _done),
    Figure("satisfaction_rate", "满意率", "rate",
           "（满意 + 基本满意）/ 已评价；以诉求人最近一轮评价为准，未评价不计入分母", _satisfied, _rated),
    Figure("unrated", "未评价", "count", "办结后期满未评价的诉求数（单列，不计入满意率）", _unrated),
    Figure("second_round_rate", "二次办理率", "rate", "因不满意进入第二轮办理的诉求 / 办结过的诉求",
           _second_round, _closed_once),
    Figure("response_days", "平均响应时长（工作日）", "duration",
           "从收到诉求到首次受理的工作日数的平均值", None, _accepted, "created_at", "accepted_at"),
    Figure("closing_days", "平均办结时长（工作日）", "duration",
           "从收到诉求到办结的工作日数的平均值（已办结诉求）", None, _done, "created_at", "closed_at"),
    Figure("overdue", "超期未办结", "count", "已过办理期限仍在办理中的诉求数", _overdue),
]}
# Not yet in the data: 回访率 (visits are recorded from a later step on).

LOCAL_ZONE = "Asia/Shanghai"  # China time, as `liaison.core.workcalendar.CHINA_TZ`
DIMENSIONS = {"station": "联络站", "grid": "网格", "grid_kind": "网格类型", "deputy": "代表",
              "department": "承办单位", "category": "类别", "source": "来源", "month": "月份"}
# Where a case came from: the channel of its first timeline entry (随手拍 and Open311 are their own).
SOURCE_LABELS = {"wechat": "公众号", "miniprogram": "小程序", "deputy_snapshot": "代表直通车（随手拍）",
                 "open311": "外平台转入"}


@lru_cache(maxsize=65536)
def _working_days(start: date, end: date) -> int:
    return working_days_between(datetime.combine(start, datetime.min.time(), tzinfo=CHINA_TZ),
                                datetime.combine(end, datetime.min.time(), tzinfo=CHINA_TZ))


def working_days_elapsed(start: datetime, end: datetime) -> int:
    """Working days from `start` to `end` (China time; 0 on the same day), per the one calendar."""
    return _working_days(start.astimezone(CHINA_TZ).date(), end.astimezone(CHINA_TZ).date())


@dataclass
class Tally:
    """Counters for one group: per figure the numerator count, the denominator count, and for
    durations the sum of working days."""

    numerators: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    denominators: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    day_sums: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def value(self, name: str) -> float | int | None:
        figure = FIGURES[name]
        if figure.kind == "count":
            return self.numerators[name]
        if figure.kind == "duration":
            n = self.denominators[name]
            return None if n == 0 else self.day_sums[name] / n
        if name == "satisfaction_rate":  # the one 满意率 formula (liaison.case.stats)
            rated = self.denominators[name]
            satisfied = self.numerators[name]
            return satisfaction_rate(satisfied, 0, rated - satisfied)
        n = self.denominators[name]
        return None if n == 0 else self.numerators[name] / n

    def values(self) -> dict[str, Any]:
        return {name: self.value(name) for name in FIGURES}

    def add(self, other: Tally) -> Tally:
        """Fold another group's counters into this one (every counter is a sum)."""
        for mine, theirs in ((self.numerators, other.numerators), (self.denominators, other.denominators),
                             (self.day_sums, other.day_sums)):
            for name, value in theirs.items():
                mine[name] += value
        return self


@dataclass(frozen=True)
class Group:
    """One row of a statistics table: the dimension's value (a code, a category, `2026-03`), its
    label, the figures and the raw counts (for the drill-down links)."""

    key: str | None
    label: str
    figures: dict[str, Any]
    counts: dict[str, tuple[int, int]]


def _facts(session: Session, where: list[ColumnElement[bool]]):
    columns = [Case.id, Case.created_at, Case.closed_at, Case.grid_id, Grid.station_id,
               Grid.kind.label("grid_kind"), Case.deputy_id, Case.department_id, Case.category,
               accepted_at().label("accepted_at"), source_of().label("source")]
    flags = []
    for figure in FIGURES.values():
        for part, condition in (("n", figure.numerator), ("d", figure.denominator)):
            if condition is not None:
                flags.append((figure.name, part))
                columns.append(case((condition(), 1), else_=0).label(f"{figure.name}_{part}"))
    query = select(*columns).outerjoin(Grid, Grid.id == Case.grid_id).where(*where)
    return flags, session.execute(query.execution_options(yield_per=2000))


def _key(row, dimension: str | None) -> Any:
    if dimension is None:
        return "all"
    if dimension == "month":
        return row.created_at.astimezone(CHINA_TZ).strftime("%Y-%m")
    return {"station": row.station_id, "grid": row.grid_id, "grid_kind": row.grid_kind,
            "deputy": row.deputy_id, "department": row.department_id, "category": row.category,
            "source": row.source}[dimension]


class Where(list):
    """The ledger's conditions on `Case` (a list, AND-ed), with what the daily summary needs to apply
    the same selection to its rows: `summary` holds conditions on `DailyFigures` equal to them, or
    None when a filter (status, rating, text …) is not one the summary can apply."""

    def __init__(self, conditions: Iterable[ColumnElement[bool]], summary: list[ColumnElement[bool]] | None):
        super().__init__(conditions)
        self.summary = summary

    # A condition added afterwards is one the summary does not know: the selection counts live.
    def append(self, condition) -> None:
        self.summary = None
        super().append(condition)

    def extend(self, conditions) -> None:
        self.summary = None
        super().extend(conditions)

    def __iadd__(self, conditions):
        self.summary = None
        return super().__iadd__(conditions)


def tally(session: Session, where: list[ColumnElement[bool]], dimension: str | None = None) -> dict[Any, Tally]:
    """Count every figure over the cases matching `where`, per value of `dimension` (None: one group).

    On PostgreSQL, for a selection the daily summary can apply (`Where.summary`), from the summary
    plus a live count of the days marked stale (`tally_summary`); otherwise by the database
    (`tally_in_sql`: one GROUP BY over the cases); on the embedded SQLite row by row (`tally_rows`).
    All read the same `FIGURES` conditions; tests check they agree."""
    return {key[0]: t for key, t in tally_by(session, where, (dimension,)).items()}


def tally_by(session: Session, where: list[ColumnElement[bool]],
             dimensions: tuple[str | None, ...]) -> dict[tuple, Tally]:
    """`tally` per combination of several dimensions' values (keys are tuples in their order)."""
    if session.get_bind().dialect.name != "postgresql":
        return _tally_rows(session, where, dimensions)
    if isinstance(where, Where) and where.summary is not None:
        return _tally_summary(session, where, dimensions)
    return _tally_in_sql(session, where, dimensions)


def _local_date(column: ColumnElement) -> ColumnElement:
    return cast(func.timezone(LOCAL_ZONE, column), Date)


def _sql_key(dimension: str | None) -> ColumnElement:
    if dimension is None:
        return literal("all")
    if dimension == "month":
        return func.to_char(func.timezone(LOCAL_ZONE, Case.created_at), "YYYY-MM")
    if dimension == "day":  # the summary's: the day received (China time)
        return _local_date(Case.created_at)
    if dimension == "due_day":  # the summary's: the deadline's day of a case being worked
        return case((and_(Case.deadline.is_not(None), Case.status.in_(sorted(lifecycle.WORKING_STATUSES))),
                     _local_date(Case.deadline)), else_=None)
    return {"station": Grid.station_id, "grid": Case.grid_id, "grid_kind": Grid.kind, "deputy": Case.deputy_id,
            "department": Case.department_id, "category": Case.category, "source": source_of()}[dimension]


def tally_in_sql(session: Session, where: list[ColumnElement[bool]],
                 dimension: str | None = None) -> dict[Any, Tally]:
    """`tally` by one GROUP BY over the cases (PostgreSQL)."""
    return {key[0]: t for key, t in _tally_in_sql(session, where, (dimension,)).items()}


def tally_summary(session: Session, where: Where, dimension: str | None = None) -> dict[Any, Tally]:
    """`tally` from the daily summary and a live count of its stale days (PostgreSQL)."""
    return {key[0]: t for key, t in _tally_summary(session, where, (dimension,)).items()}


def tally_rows(session: Session, where: list[ColumnElement[bool]], dimension: str | None = None) -> dict[Any, Tally]:
    """`tally` row by row in Python, one row of facts per case (any database)."""
    return {key[0]: t for key, t in _tally_rows(session, where, (dimension,)).items()}


def _tally_in_sql(session: Session, where: list[ColumnElement[bool]],
                  dimensions: tuple[str | None, ...]) -> dict[tuple, Tally]:
    """One scan: GROUP BY the dimensions and the days a duration needs (received, first accepted,
    closed, China time), SUM(CASE …) per figure's condition; the groups are folded in Python, each
    distinct pair of days counted by the calendar once."""
    # For this one transaction: compiling this many expressions costs more than it saves, and the
    # grouping sorts in memory rather than spilling to disk.
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    keys = [_sql_key(d).label(f"key{i}") for i, d in enumerate(dimensions)]
    ends = {"accepted_at": accepted_at, "closed_at": lambda: Case.closed_at}
    durations = [f for f in FIGURES.values() if f.kind == "duration"]
    days = {"created_at": _local_date(Case.created_at).label("day_created_at")}
    for figure in durations:
        days.setdefault(figure.end, _local_date(ends[figure.end]()).label(f"day_{figure.end}"))
    flags, columns = [], [*keys, *days.values()]
    for figure in FIGURES.values():
        for part, condition in (("n", figure.numerator), ("d", figure.denominator)):
            if condition is not None:
                flags.append((figure.name, part))
                columns.append(func.sum(case((condition(), 1), else_=0)))
    for figure in durations:
        counted = and_(figure.denominator(), ends[figure.end]().is_not(None))
        columns.append(func.sum(case((counted, 1), else_=0)))
    query = (select(*columns).select_from(Case).outerjoin(Grid, Grid.id == Case.grid_id)
             .where(*where).group_by(*keys, *days.values()))
    width, day_names = len(keys), list(days)
    groups: dict[tuple, Tally] = defaultdict(Tally)
    for row in session.execute(query):
        t = groups[tuple(row[:width])]
        moments = dict(zip(day_names, row[width:width + len(days)]))
        values = row[width + len(days):]
        for (name, part), value in zip(flags, values):
            (t.numerators if part == "n" else t.denominators)[name] += int(value or 0)
        for figure, value in zip(durations, values[len(flags):]):
            if value:
                t.day_sums[figure.name] += _working_days(moments["created_at"], moments[figure.end]) * int(value)
    return groups


# ------------------------------------------------------------------------------------ the daily summary
SUMMARY_KEYS = ("day", "grid", "deputy", "department", "category", "source", "due_day")
SUMMARY_KEY_COLUMNS = ("day", "grid_id", "deputy_id", "department_id", "category", "source", "due_day")


def summary_counters() -> list[tuple[str, str, str]]:
    """(figure, part, column of `DailyFigures`) for every counter a `Tally` keeps: part n (numerator),
    d (denominator) or days (a duration's working days)."""
    found = []
    for figure in FIGURES.values():
        if figure.numerator is not None:
            found.append((figure.name, "n", f"{figure.name}_n"))
        if figure.denominator is not None:
            found.append((figure.name, "d", f"{figure.name}_d"))
        if figure.kind == "duration":
            found.append((figure.name, "days", f"{figure.name}_days"))
    return found


def _counter(t: Tally, part: str) -> dict[str, int]:
    return {"n": t.numerators, "d": t.denominators, "days": t.day_sums}[part]


def recount_summary(session: Session) -> int:
    """Recount, from the cases, every day marked stale in the counties of the session's scope and
    replace its `DailyFigures` rows; returns the number of days recounted.

    The marks read first are deleted with the new rows in this transaction: a write committed before
    that read is visible to the recount, a later one left its own mark for the next recount. One
    recount per county at a time (a transaction-level advisory lock). Nothing on SQLite: no marks,
    and the statistics count there row by row."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    total = 0
    for county_id in summary.counties_with_marks(session):
        summary.lock_county(session, county_id)
        marks = summary.marks(session, county_id)  # read under the lock
        days = sorted({day for _mark, day in marks})
        if not days:
            continue
        where = [Case.county_id == county_id, summary.received_on(Case.created_at, days)]
        token = _overdue_at.set(END_OF_TIME)  # "being worked, with a deadline"; judged at read time
        try:
            groups = _tally_in_sql(session, where, SUMMARY_KEYS)
        finally:
            _overdue_at.reset(token)
        rows = []
        for key, t in groups.items():
            row = dict(zip(SUMMARY_KEY_COLUMNS, key))
            for name, part, column in summary_counters():
                row[column] = _counter(t, part)[name]
            rows.append(row)
        summary.replace(session, county_id, days, rows, [mark for mark, _day in marks])
        total += len(days)
    return total


def _tally_summary(session: Session, where: Where, dimensions: tuple[str | None, ...]) -> dict[tuple, Tally]:
    """The summary's counters for the days not marked stale, plus a live count of the stale days'
    cases; 超期 of the summary's cases judged now: their deadline's day before today, plus a live
    count of the few whose deadline falls today and has passed."""
    now = utcnow()
    today = now.astimezone(CHINA_TZ).date()
    stale = summary.stale_days(session)
    counters = summary_counters()
    groups: dict[tuple, Tally] = defaultdict(Tally)
    width = len(dimensions)
    for row in summary.read(session, where.summary, dimensions, [c for _n, _p, c in counters], stale, today):
        t = groups[tuple(row[:width])]
        for (name, part, _column), value in zip(counters, row[width:]):
            _counter(t, part)[name] += int(value or 0)  # overdue_n: judged today by `summary.read`
    if stale:
        for key, t in _tally_in_sql(session, [*where, summary.received_on(Case.created_at, stale)],
                                    dimensions).items():
            groups[key].add(t)
    due_today = [*where, Case.status.in_(sorted(lifecycle.WORKING_STATUSES)),
                 Case.deadline >= summary.day_start(today), Case.deadline < now]
    if stale:
        due_today.append(~summary.received_on(Case.created_at, stale))
    for key, t in _tally_in_sql(session, due_today, dimensions).items():
        if t.numerators["overdue"]:
            groups[key].numerators["overdue"] += t.numerators["overdue"]
    return groups


def _tally_rows(session: Session, where: list[ColumnElement[bool]],
                dimensions: tuple[str | None, ...]) -> dict[tuple, Tally]:
    flags, rows = _facts(session, where)
    groups: dict[tuple, Tally] = defaultdict(Tally)
    for row in rows:
        t = groups[tuple(_key(row, d) for d in dimensions)]
        mapping = row._mapping
        for name, part in flags:
            if mapping[f"{name}_{part}"]:
                if part == "n":
                    t.numerators[name] += 1
                else:
                    t.denominators[name] += 1
                    figure = FIGURES[name]
                    if figure.kind == "duration":
                        start, end = mapping[figure.start], mapping[figure.end]
                        if start is not None and end is not None:
                            t.day_sums[name] += working_days_elapsed(start, end)
    return groups


def statistics(session: Session, scope: access.Scope, where: list[ColumnElement[bool]],
               dimension: str | None) -> tuple[Group, list[Group]]:
    """The totals and one group per value of `dimension` (sorted by label; months in order).

    `where` already holds the scope (the ledger's `conditions`); `scope` only names the groups."""
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    groups = tally(session, where, dimension)
    total = _sum(groups.values())
    return Group("all", "合计", total.values(), _counts(total)), \
        (_groups(session, dimension, groups) if dimension else [])


def overview(session: Session, scope: access.Scope, where: list[ColumnElement[bool]],
             dimension: str) -> tuple[Group, list[Group], list[Group]]:
    """The statistics page in one pass: the totals, the groups of `dimension` and the months, all
    rolled up from one count per (dimension value, month)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    pairs = tally_by(session, where, (dimension, "month"))
    by_dimension: dict[Any, Tally] = defaultdict(Tally)
    by_month: dict[Any, Tally] = defaultdict(Tally)
    for (value, month), t in pairs.items():
        by_dimension[value].add(t)
        by_month[month].add(t)
    total = _sum(pairs.values())
    return (Group("all", "合计", total.values(), _counts(total)), _groups(session, dimension, by_dimension),
            _groups(session, "month", by_month))


def _sum(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.add(t)
    return total


def _groups(session: Session, dimension: str | None, groups: dict[Any, Tally]) -> list[Group]:
    labels = _labels(session, dimension, [k for k in groups if k is not None])
    rows = [Group(code, label, t.values(), _counts(t))
            for key, t in groups.items()
            for code, label in [labels.get(key, (None, "（未指定）"))]]
    rows.sort(key=lambda g: (g.key is None, g.key if dimension == "month" else g.label))
    return rows


def _counts(t: Tally) -> dict[str, tuple[int, int]]:
    return {name: (t.numerators[name], t.denominators[name]) for name in FIGURES}


def _labels(session: Session, dimension: str | None, keys: Iterable[Any]) -> dict[Any, tuple[str, str]]:
    """(code for the drill-down link, label) per group key."""
    keys = list(keys)
    if dimension in (None, "month", "category"):
        return {k: (k, k) for k in keys}
    if dimension == "source":
        return {k: (k, SOURCE_LABELS.get(k, k)) for k in keys}
    if dimension == "grid_kind":
        return {k: (k, GRID_KINDS.get(k, k)) for k in keys}
    model = {"station": Station, "grid": Grid, "deputy": Deputy, "department": Department}[dimension]
    rows = session.scalars(select(model).where(model.id.in_(keys))) if keys else []
    return {row.id: (row.code, row.name) for row in rows}


def ranking(groups: list[Group], figure: str, *, descending: bool = True) -> list[Group]:
    """Groups ordered by one figure (groups without a value last)."""
    present = [g for g in groups if g.figures.get(figure) is not None]
    missing = [g for g in groups if g.figures.get(figure) is None]
    return sorted(present, key=lambda g: g.figures[figure], reverse=descending) + missing


def definitions() -> list[tuple[str, str]]:
    """(label, definition) of every figure, in display order (the README and the page list them)."""
    return [(f.label, f.definition) for f in FIGURES.values()]
