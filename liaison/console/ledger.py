"""The 台账 (ledger): every case in the caller's scope, narrowed by filters, one page at a time or
all of it row by row for the export.

Each filter is one `FilterField` in `FILTER_FIELDS`: a name (the query parameter), a Chinese label, a
widget, its choices, and the SQL condition it adds. A new dimension (grid kind, channel, 回访) is one
more entry; the page, the export and the statistics drill-down pick it up without other changes.
The caller's scope (`liaison.case.access.case_condition`) is always AND-ed in: no filter widens it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from liaison.case import access, lifecycle, referrals
from liaison.case.lifecycle import STATUS_LABELS
from liaison.case.models import Case, CaseEvent, Rating
from liaison.case.service import RATING_VALUES, NotFound
from liaison.console import service as figures
from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import GRID_KINDS, Department, Deputy, DeputyGrid, Grid, Resident, Station
from liaison.tenancy.models import County
from liaison.wechat.privacy import mask

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


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter("日期格式应为 YYYY-MM-DD", field=name) from None


def local_day_start(day: date) -> datetime:
    """Midnight of a China-time day, as the UTC instant stored times compare with."""
    return datetime.combine(day, time(0), tzinfo=CHINA_TZ)


def _by_code(model, column):
    def condition(session: Session, value: str) -> ColumnElement[bool]:
        if value == NONE_VALUE:
            return column.is_(None)
        row_id = session.scalar(select(model.id).where(model.code == value))
        if row_id is None:
            raise BadFilter("筛选条件无效", field=model.__tablename__)
        return column == row_id
    return condition


def _grid_kind(_session: Session, value: str) -> ColumnElement[bool]:
    """社区 / 企业 / 产业链 (issue 15: statistics split by grid kind)."""
    if value == NONE_VALUE:
        return Case.grid_id.is_(None)
    if value not in GRID_KINDS:
        raise BadFilter("筛选条件无效", field="grid_kind")
    return Case.grid_id.in_(select(Grid.id).where(Grid.kind == value))


def _station(session: Session, value: str) -> ColumnElement[bool]:
    if value == NONE_VALUE:
        return or_(Case.grid_id.is_(None),
                   Case.grid_id.in_(select(Grid.id).where(Grid.station_id.is_(None))))
    station_id = session.scalar(select(Station.id).where(Station.code == value))
    if station_id is None:
        raise BadFilter("筛选条件无效", field="station")
    return Case.grid_id.in_(select(Grid.id).where(Grid.station_id == station_id))


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


def _source(_session: Session, value: str) -> ColumnElement[bool]:
    if value not in CHANNEL_LABELS:
        raise BadFilter("筛选条件无效", field="source")
    return figures.source_of() == value


def _category_choices(session: Session, _scope: access.Scope) -> list[tuple[str, str]]:
    names = session.scalars(select(Case.category).where(Case.category.is_not(None))
                            .distinct().order_by(Case.category))
    return [(n, n) for n in names]


FILTER_FIELDS: list[FilterField] = [
    FilterField("since", "受理日期自", "date",
                lambda _s, v: Case.created_at >= local_day_start(_day(v, "since"))),
    FilterField("until", "至", "date",
                lambda _s, v: Case.created_at < local_day_start(_day(v, "until") + timedelta(days=1))),
    FilterField("station", "联络站", "select", _station, _station_choices),
    FilterField("grid", "网格", "select", _by_code(Grid, Case.grid_id), _grid_choices),
    FilterField("grid_kind", "网格类型", "select", _grid_kind, lambda _s, _c: list(GRID_KINDS.items())),
    FilterField("deputy", "代表", "select", _by_code(Deputy, Case.deputy_id), _deputy_choices),
    FilterField("department", "承办单位", "select", _by_code(Department, Case.department_id),
                _department_choices),
    FilterField("category", "类别", "select", lambda _s, v: Case.category == v, _category_choices),
    FilterField("source", "来源", "select", _source, lambda _s, _c: list(CHANNEL_LABELS.items())),
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


def conditions(session: Session, scope: access.Scope, params: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """The scope plus one condition per filled-in filter (unknown parameters are ignored)."""
    found = [access.case_condition(scope)]
    for field in FILTER_FIELDS:
        value = (params.get(field.name) or "").strip()
        if value:
            if "\x00" in value:
                raise BadFilter("筛选条件包含非法字符", field=field.name)
            found.append(field.condition(session, value))
    return found


def active_filters(params: Mapping[str, str]) -> dict[str, str]:
    """The filled-in filters, to carry into links (export, pages)."""
    return {f.name: params[f.name].strip() for f in FILTER_FIELDS if (params.get(f.name) or "").strip()}


def page(session: Session, scope: access.Scope, params: Mapping[str, str], number: int = 1,
         size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of ledger rows (newest first) and the number of rows matching, counted up to
    COUNT_CAP + 1 (more is shown as "COUNT_CAP+": counting a million rows to print one number would
    cost more than the page; the statistics and the export count everything)."""
    return _page(session, conditions(session, scope, params), number, size)


def _page(session: Session, where: list[ColumnElement[bool]], number: int,
          size: int) -> tuple[list[dict[str, Any]], int]:
    matching = select(Case.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(matching)) or 0
    query = _row_query(where).offset((max(number, 1) - 1) * size).limit(size)
    return list(rows_of(session, session.execute(query).all())), total


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
        yield from rows_of(session, chunk)


def _row_query(where: list[ColumnElement[bool]]) -> Select:
    return (select(Case, figures.accepted_at().label("accepted_at"),
                   figures.latest_rating().label("rating"))
            .where(*where).order_by(Case.created_at.desc(), Case.id.desc()))


def _names(session: Session, model, ids: set[int]) -> dict[int, Any]:
    ids = {i for i in ids if i is not None}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}


def resident_label(resident: Resident | None) -> str:
    """诉求人, masked: residents are known only by their WeChat identity, never shown in clear."""
    if resident is None:
        return "群众"
    tag = mask(resident.oa_openid or resident.mp_openid or resident.public_id)
    return f"群众（{tag[4:10]}）"


def rows_of(session: Session, chunk) -> Iterator[dict[str, Any]]:
    """Ledger rows (dicts of display values) for (case, accepted_at, rating) tuples."""
    now = utcnow()
    cases = [row[0] for row in chunk]
    grids = _names(session, Grid, {c.grid_id for c in cases})
    deputies = _names(session, Deputy, {c.deputy_id for c in cases})
    departments = _names(session, Department, {c.department_id for c in cases})
    residents = _names(session, Resident, {c.resident_id for c in cases})
    channels = dict(session.execute(select(CaseEvent.case_id, CaseEvent.detail).where(
        CaseEvent.case_id.in_([c.id for c in cases]), CaseEvent.action == "submit")).all()) if cases else {}
    for case, accepted, rating in chunk:
        grid = grids.get(case.grid_id)
        department = departments.get(case.department_id)
        deputy = deputies.get(case.deputy_id)
        done = case.status in figures.DONE_STATUSES
        yield {
            "public_id": case.public_id, "number": case.number, "county_id": case.county_id,
            "channel": CHANNEL_LABELS.get((channels.get(case.id) or {}).get("channel"), "—"),
            "resident": resident_label(residents.get(case.resident_id)),
            "text": case.text, "category": case.category or "—",
            "grid": grid.name if grid else "—", "deputy": deputy.name if deputy else "—",
            "handler": (department.name if case.handler_kind == "department" and department
                        else deputy.name if case.handler_kind == "deputy" and deputy else "联络工作室"),
            "created_at": case.created_at, "accepted_at": accepted, "deadline": case.deadline,
            "closed_at": case.closed_at if done else None,
            "on_time": (None if not done or case.deadline is None or case.closed_at is None
                        else case.closed_at <= case.deadline),
            "overdue": access.is_overdue(case, now),
            "rating": ("未评价" if case.status == lifecycle.Status.UNRATED
                       else RATING_LABELS.get(rating, "—") if rating else "—"),
            "round": case.round, "status": STATUS_LABELS.get(case.status, case.status),
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
