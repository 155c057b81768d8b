"""The 台账 (ledger): every case in the caller's scope, narrowed by filters, one page at a time or
all of it row by row for the export.

Each filter is one `FilterField` in `FILTER_FIELDS`: a name (the query parameter), a Chinese label, a
widget, its choices, and the SQL condition it adds. A new dimension (grid kind, channel, 回访) is one
more entry; the page, the export and the statistics drill-down pick it up without other changes.
The caller's scope (`liaison.case.access.case_condition`) is always AND-ed in: no filter widens it.
A filter the statistics' daily summary can apply too has its `summary` condition beside its own, on
`DailyFigures` (`conditions` returns both; the statistics read the summary only when every filter
has one).

A page is one indexed SELECT: the facts the 台账 shows are on the case row (受理时间, 评价, 来源 —
`Case.accepted_at`, `Case.rating`, `Case.source`), the names come by primary key, and the capped
count rides along as a subquery.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from liaison.case import access, lifecycle, referrals
from liaison.case.lifecycle import STATUS_LABELS
from liaison.case.models import Case, Rating
from liaison.case.service import RATING_VALUES, NotFound
from liaison.console import service as figures
from liaison.console.models import DailyFigures
from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import GRID_KINDS, Department, Deputy, DeputyGrid, Grid, Station
from liaison.people.service import DEPARTMENT, DEPUTY, STAFF
from liaison.tenancy.models import County

NONE_VALUE = "_none"  # "no grid", "no department": what a drill-down into an empty group sends
PAGE_SIZE = 50
COUNT_CAP = 1_000  # the ledger counts its rows exactly up to here (20 pages); the statistics count all
RATING_LABELS = {**RATING_VALUES, "unrated": "未评价"}
CHANNEL_LABELS = figures.SOURCE_LABELS
MAX_TEXT_QUERY = 50


class BadFilter(DomainError):
    """A filter value the ledger cannot read (a malformed date, an unknown code)."""

    kind = INVALID
    code = "bad_filter"


@dataclass(frozen=True)
class FilterField:
    """One filter of the ledger: `condition(session, value)` is the SQL it adds for a raw value."""

    name: str
    label: str
    widget: str  # date | select | text
    condition: Callable[[Session, str], ColumnElement[bool]]
    choices: Callable[[Session, access.Scope], list[tuple[str, str]]] | None = None
    # The same selection on the daily summary's rows (None: the summary cannot apply this filter).
    summary: Callable[[Session, str], ColumnElement[bool]] | None = None


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter("日期格式应为 YYYY-MM-DD", field=name) from None


def local_day_start(day: date) -> datetime:
    """Midnight of a China-time day, as the UTC instant stored times compare with."""
    return datetime.combine(day, time(0), tzinfo=CHINA_TZ)


_CODE_CHECKS = "ledger_code_checks"  # session.info: the (model, code) pairs a page has yet to check


def _code_check(session: Session, model, code: str) -> None:
    """Remember that `code` must name a `model` row: `conditions` checks it at once, a page only when
    it comes back empty (a row matched means the code named one, and the check costs a round trip)."""
    session.info.setdefault(_CODE_CHECKS, []).append((model, code))


def check_codes(session: Session, matched: bool = False) -> None:
    """Raise BadFilter for a code filter whose code names nothing (the checks `_code_check` noted),
    and forget the checks. `matched=True`: the statement found rows, so every code named one and
    nothing is looked up."""
    pending = session.info.pop(_CODE_CHECKS, [])
    if matched:
        return
    for model, code in dict.fromkeys(pending):
        if session.scalar(select(model.id).where(model.code == code)) is None:
            raise BadFilter("筛选条件无效", field=model.__tablename__)


def _by_code(model, column):
    def condition(session: Session, value: str) -> ColumnElement[bool]:
        if value == NONE_VALUE:
            return column.is_(None)
        # The id comes in the statement itself: no look-up round trip before the page's SELECT.
        _code_check(session, model, value)
        return column == select(model.id).where(model.code == value).scalar_subquery()
    return condition


def _grid_kind(grid_id):
    def condition(_session: Session, value: str) -> ColumnElement[bool]:
        """社区 / 企业 / 产业链 (issue 15: statistics split by grid kind)."""
        if value == NONE_VALUE:
            return grid_id.is_(None)
        if value not in GRID_KINDS:
            raise BadFilter("筛选条件无效", field="grid_kind")
        return grid_id.in_(select(Grid.id).where(Grid.kind == value))
    return condition


def _station(grid_id):
    def condition(session: Session, value: str) -> ColumnElement[bool]:
        if value == NONE_VALUE:
            return or_(grid_id.is_(None), grid_id.in_(select(Grid.id).where(Grid.station_id.is_(None))))
        _code_check(session, Station, value)
        return grid_id.in_(select(Grid.id).where(
            Grid.station_id == select(Station.id).where(Station.code == value).scalar_subquery()))
    return condition


def _status(_session: Session, value: str) -> ColumnElement[bool]:
    groups = {"open": lifecycle.OPEN_STATUSES, "final": lifecycle.FINAL_STATUSES}
    if value in groups:
        return Case.status.in_(sorted(groups[value]))
    if value not in STATUS_LABELS:
        raise BadFilter("筛选条件无效", field="status")
    return Case.status == value


def _overdue(_session: Session, value: str) -> ColumnElement[bool]:
    if value not in ("yes", "no"):
        raise BadFilter("筛选条件无效", field="overdue")
    late = figures.overdue_condition(utcnow())
    return late if value == "yes" else ~late


def _round(_session: Session, value: str) -> ColumnElement[bool]:
    if value not in ("1", "2"):
        raise BadFilter("筛选条件无效", field="round")
    return Case.round == 1 if value == "1" else Case.round >= 2


RATING_CHANNELS = {"chat": "微信回复", "miniprogram": "小程序", "qrcode": "扫码评价", "return_visit": "回访"}


def _rating_channel(_session: Session, value: str) -> ColumnElement[bool]:
    """How the resident's rating of the case's current round came in: chat, mini-program, code, 回访."""
    if value not in RATING_CHANNELS:
        raise BadFilter("筛选条件无效", field="rating_channel")
    return Case.id.in_(select(Rating.case_id).where(
        Rating.case_id == Case.id, Rating.round == Case.round, Rating.resident_id == Case.resident_id,
        Rating.channel == value))


def _rating(_session: Session, value: str) -> ColumnElement[bool]:
    rating = figures.latest_rating()
    if value == "none":
        return and_(rating.is_(None), Case.status != lifecycle.Status.UNRATED)
    if value == "unrated":
        return Case.status == lifecycle.Status.UNRATED
    if value not in RATING_VALUES:
        raise BadFilter("筛选条件无效", field="rating")
    return rating == value


def _text(_session: Session, value: str) -> ColumnElement[bool]:
    value = value.strip()[:MAX_TEXT_QUERY]
    return or_(Case.number == value, Case.text.icontains(value, autoescape=True),
               Case.summary.icontains(value, autoescape=True))


def _figure(_session: Session, value: str) -> ColumnElement[bool]:
    """`figure=on_time_rate.numerator`: exactly the rows a statistics figure counts."""
    name, _, part = value.partition(".")
    figure = figures.FIGURES.get(name)
    if figure is None or part not in ("numerator", "denominator"):
        raise BadFilter("筛选条件无效", field="figure")
    condition = figure.numerator if part == "numerator" else figure.denominator
    if condition is None:
        raise BadFilter("筛选条件无效", field="figure")
    return condition()


def _grids_in(scope: access.Scope):
    query = select(Grid).order_by(Grid.code)
    return query if scope.grid_ids is None else query.where(Grid.id.in_(scope.grid_ids or (-1,)))


def _station_choices(session: Session, scope: access.Scope) -> list[tuple[str, str]]:
    query = select(Station).order_by(Station.code)
    if scope.grid_ids is not None:
        query = query.where(Station.id.in_(select(Grid.station_id).where(Grid.id.in_(scope.grid_ids or (-1,)))))
    return [(s.code, s.name) for s in session.scalars(query)]


def _grid_choices(session: Session, scope: access.Scope) -> list[tuple[str, str]]:
    return [(g.code, g.name) for g in session.scalars(_grids_in(scope))]


def _deputy_choices(session: Session, scope: access.Scope) -> list[tuple[str, str]]:
    query = select(Deputy).order_by(Deputy.code)
    if scope.grid_ids is not None:
        query = query.where(Deputy.id.in_(select(DeputyGrid.deputy_id).where(
            DeputyGrid.grid_id.in_(scope.grid_ids or (-1,)))))
    return [(d.code, d.name) for d in session.scalars(query)]


def _department_choices(session: Session, _scope: access.Scope) -> list[tuple[str, str]]:
    return [(d.code, d.name) for d in session.scalars(select(Department).order_by(Department.code))]


def _source(column):
    def condition(_session: Session, value: str) -> ColumnElement[bool]:
        if value not in CHANNEL_LABELS:
            raise BadFilter("筛选条件无效", field="source")
        return column == value
    return condition


def _category_choices(session: Session, _scope: access.Scope) -> list[tuple[str, str]]:
    names = session.scalars(select(Case.category).where(Case.category.is_not(None))
                            .distinct().order_by(Case.category))
    return [(n, n) for n in names]


FILTER_FIELDS: list[FilterField] = [
    FilterField("since", "受理日期自", "date",
                lambda _s, v: Case.created_at >= local_day_start(_day(v, "since")),
                summary=lambda _s, v: DailyFigures.day >= _day(v, "since")),
    FilterField("until", "至", "date",
                lambda _s, v: Case.created_at < local_day_start(_day(v, "until") + timedelta(days=1)),
                summary=lambda _s, v: DailyFigures.day <= _day(v, "until")),
    FilterField("station", "联络站", "select", _station(Case.grid_id), _station_choices,
                summary=_station(DailyFigures.grid_id)),
    FilterField("grid", "网格", "select", _by_code(Grid, Case.grid_id), _grid_choices,
                summary=_by_code(Grid, DailyFigures.grid_id)),
    FilterField("grid_kind", "网格类型", "select", _grid_kind(Case.grid_id), lambda _s, _c: list(GRID_KINDS.items()),
                summary=_grid_kind(DailyFigures.grid_id)),
    FilterField("deputy", "代表", "select", _by_code(Deputy, Case.deputy_id), _deputy_choices,
                summary=_by_code(Deputy, DailyFigures.deputy_id)),
    FilterField("department", "承办单位", "select", _by_code(Department, Case.department_id),
                _department_choices, summary=_by_code(Department, DailyFigures.department_id)),
    FilterField("category", "类别", "select", lambda _s, v: Case.category == v, _category_choices,
                summary=lambda _s, v: DailyFigures.category == v),
    FilterField("source", "来源", "select", _source(Case.source), lambda _s, _c: list(CHANNEL_LABELS.items()),
                summary=_source(DailyFigures.source)),
    FilterField("status", "状态", "select", _status,
                lambda _s, _c: [("open", "未办结（全部）"), ("final", "已结束（全部）"),
                                *STATUS_LABELS.items()]),
    FilterField("overdue", "超期", "select", _overdue,
                lambda _s, _c: [("yes", "超期未办结"), ("no", "未超期")]),
    FilterField("round", "轮次", "select", _round, lambda _s, _c: [("1", "首次办理"), ("2", "二次办理")]),
    FilterField("rating", "评价", "select", _rating,
                lambda _s, _c: [*RATING_VALUES.items(), ("unrated", "未评价"), ("none", "待评价/未办结")]),
    FilterField("rating_channel", "评价渠道", "select", _rating_channel,
                lambda _s, _c: list(RATING_CHANNELS.items())),
    FilterField("q", "搜索", "text", _text),
    FilterField("figure", "统计口径", "hidden", _figure),
]
FIELDS_BY_NAME = {f.name: f for f in FILTER_FIELDS}


def summary_scope(scope: access.Scope) -> ColumnElement[bool] | None:
    """`access.case_condition` on the daily summary's rows (None for a resident: not a console scope)."""
    principal = scope.principal
    if principal.role == DEPUTY:
        found = [DailyFigures.deputy_id == principal.account.deputy_id]
        if scope.grid_ids:
            found.append(DailyFigures.grid_id.in_(scope.grid_ids))
        return or_(*found)
    if principal.role == DEPARTMENT:
        return DailyFigures.department_id == principal.account.department_id
    if principal.role == STAFF:
        if scope.grid_ids is None:
            return true()
        return DailyFigures.grid_id.in_(scope.grid_ids) if scope.grid_ids else false()
    return None


def conditions(session: Session, scope: access.Scope, params: Mapping[str, str],
               checked: bool = True) -> figures.Where:
    """The scope plus one condition per filled-in filter (unknown parameters are ignored), and the
    same on the daily summary when every filled-in filter has a summary form. A code that names no
    station, grid, deputy or department is BadFilter; with `checked=False` that check is left to the
    caller (`check_codes`), who may know already that the codes named rows."""
    session.info.pop(_CODE_CHECKS, None)
    found = [access.case_condition(scope)]
    on_summary = summary_scope(scope)
    summary = [on_summary] if on_summary is not None else None
    for field in FILTER_FIELDS:
        value = (params.get(field.name) or "").strip()
        if value:
            if "\x00" in value:
                raise BadFilter("筛选条件包含非法字符", field=field.name)
            found.append(field.condition(session, value))
            if summary is not None:
                summary = None if field.summary is None else [*summary, field.summary(session, value)]
    if checked:
        check_codes(session)
    return figures.Where(found, summary)


def active_filters(params: Mapping[str, str]) -> dict[str, str]:
    """The filled-in filters, to carry into links (export, pages)."""
    return {f.name: params[f.name].strip() for f in FILTER_FIELDS if (params.get(f.name) or "").strip()}


def page(session: Session, scope: access.Scope, params: Mapping[str, str], number: int = 1,
         size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of ledger rows (newest first) and the number of rows matching, counted up to
    COUNT_CAP + 1 (more is shown as "COUNT_CAP+": counting a million rows to print one number would
    cost more than the page; the statistics and the export count everything). One statement: the
    count is a subquery of the page's, and the filters' codes are resolved inside it (they are looked
    up apart only when nothing matched, to tell a bad code from an empty page)."""
    rows, total = _page(session, conditions(session, scope, params, checked=False), number, size)
    check_codes(session, matched=total > 0)
    return rows, total


def _page(session: Session, where: list[ColumnElement[bool]], number: int,
          size: int) -> tuple[list[dict[str, Any]], int]:
    matching = select(Case.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = select(func.count()).select_from(matching).scalar_subquery().label("matching")
    query = _row_query(where, total).offset((max(number, 1) - 1) * size).limit(size)
    found = session.execute(query).all()
    if found:
        return list(rows_of(found)), found[0].matching
    return [], session.scalar(select(func.count()).select_from(matching)) or 0


def page_rows(session: Session, scope: access.Scope, params: Mapping[str, str], number: int = 1,
              size: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One page of ledger rows (newest first) and whether another page follows: the console's 台账
    page. It reads `size + 1` rows and nothing else; the number of matching rows is `count`, which
    the page fetches apart, so the rows answer at the speed of one indexed SELECT."""
    size = size or PAGE_SIZE
    where = conditions(session, scope, params, checked=False)
    found = session.execute(_row_query(where).offset((max(number, 1) - 1) * size).limit(size + 1)).all()
    check_codes(session, matched=bool(found))
    return list(rows_of(found[:size])), len(found) > size


def count(session: Session, scope: access.Scope, params: Mapping[str, str]) -> int:
    """The number of rows matching, counted up to COUNT_CAP + 1 (more is shown as "COUNT_CAP+")."""
    where = conditions(session, scope, params)
    return session.scalar(select(func.count()).select_from(
        select(Case.id).where(*where).limit(COUNT_CAP + 1).subquery())) or 0


# ---------------------------------------------------------------------------------------------- city
# The city's 台账 (三级联动): every case of the city's counties, with the filters that mean the same in
# every county (registry codes are per county: a station, grid or deputy code would name several).
CITY_FILTERS = ("since", "until", "category", "source", "status", "overdue", "round", "rating", "q")


def city_conditions(session: Session, county_ids: list[int], params: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """The city's counties (or the one `county` code names) plus the `CITY_FILTERS` filled in."""
    found = [Case.county_id.in_(county_ids)]
    code = (params.get("county") or "").strip()
    if code:
        county_id = session.scalar(select(County.id).where(County.code == code, County.id.in_(county_ids)))
        if county_id is None:
            raise BadFilter("筛选条件无效：没有这个县", field="county")
        found.append(Case.county_id == county_id)
    for name in CITY_FILTERS:
        value = (params.get(name) or "").strip()
        if value:
            if "\x00" in value:
                raise BadFilter("筛选条件包含非法字符", field=name)
            found.append(FIELDS_BY_NAME[name].condition(session, value))
    return found


def city_page(session: Session, counties: Mapping[int, bool], params: Mapping[str, str], number: int = 1,
              size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of the city's 台账 over `counties` (id → whether it grants the city personal data):
    the console's rows, the 诉求人 masked as always and the text's phone numbers, ID numbers and house
    numbers masked where the county does not grant them. The session must see those counties' cases
    (an aggregate scope, `tenancy.city_aggregate_scope`)."""
    rows, total = _page(session, city_conditions(session, list(counties), params), number, size)
    for row in rows:
        if not counties.get(row["county_id"]):
            row["text"] = referrals.mask_text(row["text"])
    return rows, total


def all_rows(session: Session, scope: access.Scope, params: Mapping[str, str],
             batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every matching row, in ledger order, read `batch` at a time (the export streams these)."""
    where = conditions(session, scope, params)
    result = session.execute(_row_query(where).execution_options(yield_per=batch))
    for chunk in result.partitions(batch):
        yield from rows_of(chunk)


def row_of_case(session: Session, case: Case) -> dict[str, Any]:
    """The ledger row of one case (the case page shows it)."""
    return next(rows_of(session.execute(_row_query([Case.id == case.id])).all()))


def _row_query(where: list[ColumnElement[bool]], *extra: ColumnElement) -> Select:
    """The ledger's columns: the case row's own (诉求人 is its masked `resident_tag`), and the names of
    its grid, deputy and department by primary key. `rows_of` reads them in this order."""
    return (select(Case.id, Case.public_id, Case.number, Case.county_id, Case.source, Case.text, Case.category,
                   Case.handler_kind, Case.created_at, Case.accepted_at, Case.deadline, Case.closed_at,
                   Case.status, Case.round, Case.rating, Grid.name.label("grid_name"),
                   Deputy.name.label("deputy_name"), Department.name.label("department_name"),
                   Case.resident_tag, *extra)
            .select_from(Case)
            .outerjoin(Grid, Grid.id == Case.grid_id).outerjoin(Deputy, Deputy.id == Case.deputy_id)
            .outerjoin(Department, Department.id == Case.department_id)
            .where(*where).order_by(Case.created_at.desc(), Case.id.desc()))


def resident_label(tag: str | None) -> str:
    """诉求人, masked: residents are known only by a tag of their WeChat identity, never in clear
    (`liaison.case.service.resident_tag`)."""
    return f"群众（{tag}）" if tag else "群众"


_DONE = frozenset(figures.DONE_STATUSES)
_WORKING = frozenset(lifecycle.WORKING_STATUSES)


def rows_of(chunk) -> Iterator[dict[str, Any]]:
    """Ledger rows (dicts of display values) for rows of `_row_query`.

    The columns are unpacked by position (`_row_query`'s order): the page is 50 of these and the
    export 100,000, and a Row's attribute look-up by name costs more than the rest of the row."""
    now = utcnow()
    unrated = lifecycle.Status.UNRATED
    for row in chunk:
        (_id, public_id, number, county_id, source, text, category, handler_kind, created_at, accepted_at,
         deadline, closed_at, status, round_, rating, grid_name, deputy_name, department_name,
         resident_tag) = row[:19]
        done = status in _DONE
        yield {
            "public_id": public_id, "number": number, "county_id": county_id,
            "channel": CHANNEL_LABELS.get(source, "—"),
            "resident": resident_label(resident_tag),
            "text": text, "category": category or "—",
            "grid": grid_name or "—", "deputy": deputy_name or "—",
            "handler": (department_name if handler_kind == "department" and department_name
                        else deputy_name if handler_kind == "deputy" and deputy_name
                        else "联络工作室"),
            "created_at": created_at, "accepted_at": accepted_at, "deadline": deadline,
            "closed_at": closed_at if done else None,
            "on_time": (None if not done or deadline is None or closed_at is None
                        else closed_at <= deadline),
            "overdue": deadline is not None and deadline < now and status in _WORKING,
            "rating": ("未评价" if status == unrated
                       else RATING_LABELS.get(rating, "—") if rating else "—"),
            "round": round_, "status": STATUS_LABELS.get(status, status),
        }


def visible_case_by_number(session: Session, scope: access.Scope, number: str) -> Case:
    """A case in the caller's scope by its number (并单 names the target that way), else NotFound."""
    case_id = session.scalar(select(Case.id).where(Case.number == number.strip(), access.case_condition(scope)))
    if case_id is None:
        raise NotFound("case")
    return session.get(Case, case_id)


def rating_rows(session: Session, case: Case) -> list[Rating]:
    """Every rating of the case, every round, oldest first (the case page shows them)."""
    return list(session.scalars(select(Rating).where(Rating.case_id == case.id)
                                .order_by(Rating.round, Rating.id)))
