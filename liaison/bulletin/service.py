"""通报 and 整改: generate a bulletin for a period and scope from the office's figures
(`liaison.console.service.FIGURES`, over exactly the 台账 rows `liaison.console.ledger` selects),
publish it to the scope's staff, and open one 整改 item per unit and figure under the threshold.

Who may do what (county staff see the county, station staff their station, as in the 台账):
- generate / publish: staff; station staff only for their own station;
- see a bulletin: staff whose scope covers it (station staff also see the county's published ones);
- see a 整改 item: the staff managing its bulletin, the station it names, the deputy it names;
- respond (the unit's written answer): the unit's own console account (its station's staff, the
  deputy), or the managing staff entering a department's written answer;
- verify (close) or send back: the staff managing the bulletin.
Anything else is refused with a `DomainError` (`not_found` when the caller may not see it at all).
"""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from liaison.bulletin import lifecycle
from liaison.bulletin.models import Bulletin, Rectification
from liaison.case import access, notices
from liaison.case.timers import local_day
from liaison.console import ledger
from liaison.console import service as figures
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, DomainError
from liaison.core.workcalendar import CHINA_TZ, add_working_days
from liaison.people.models import Account, Department, Deputy, Station
from liaison.people.service import DEPUTY, STAFF

THRESHOLD = 0.9
RECTIFY_WORKING_DAYS = 10
# The figures a bulletin judges units by (each under the threshold opens a 整改 item).
JUDGED = ("closed_rate", "satisfaction_rate", "on_time_rate")
# The figures a bulletin shows per unit.
SHOWN = ("received", "closed_rate", "on_time_rate", "satisfaction_rate", "unrated", "overdue")
DIMENSIONS = {"station": "联络站", "department": "承办单位", "deputy": "代表"}
UNIT_MODELS = {"station": Station, "department": Department, "deputy": Deputy}
OVERDUE_LISTED = 100
MAX_RESPONSE = 2000
MAX_NOTE = 500
PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")
QUARTER_NAMES = "一二三四"


class BulletinError(DomainError):
    """A refusal of the bulletin services (message in Chinese)."""


def _not_found(what: str = "通报") -> BulletinError:
    return BulletinError(f"{what}不存在或不在您的辖区内", code="not_found", kind=NOT_FOUND)


# ---------------------------------------------------------------------------------------------- periods
@dataclass(frozen=True)
class Period:
    key: str      # 2026-03 or 2026-Q1
    since: date
    until: date   # inclusive
    label: str    # 2026年3月 / 2026年第一季度

    def next(self) -> Period:
        return parse_period(_next_key(self.key))


def _next_key(key: str) -> str:
    year, _, rest = key.partition("-")
    if rest.startswith("Q"):
        quarter = int(rest[1:])
        return f"{int(year) + 1}-Q1" if quarter == 4 else f"{year}-Q{quarter + 1}"
    month = int(rest)
    return f"{int(year) + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"


def parse_period(value: str) -> Period:
    """`2026-03` (a month) or `2026-Q1` (a quarter)."""
    found = PERIOD.match((value or "").strip())
    if not found:
        raise BulletinError("期间格式应为 2026-03（月度）或 2026-Q1（季度）", code="bad_period", kind=INVALID,
                            field="period")
    year, month, quarter = int(found.group(1)), found.group(2), found.group(3)
    if month:
        m = int(month)
        return Period(f"{year}-{m:02d}", date(year, m, 1), date(year, m, monthrange(year, m)[1]),
                      f"{year}年{m}月")
    q = int(quarter)
    first, last = 3 * q - 2, 3 * q
    return Period(f"{year}-Q{q}", date(year, first, 1), date(year, last, monthrange(year, last)[1]),
                  f"{year}年第{QUARTER_NAMES[q - 1]}季度")


# ---------------------------------------------------------------------------------------------- who may
def _staff_station(scope: access.Scope) -> int | None:
    return scope.principal.account.station_id


def _require_staff(scope: access.Scope) -> None:
    if scope.role != STAFF:
        raise BulletinError("只有工委账号可以编发通报", code="forbidden", kind=FORBIDDEN)


def bulletin_condition(scope: access.Scope) -> ColumnElement[bool]:
    """The bulletins the caller may see."""
    if scope.role != STAFF:
        return false()
    station_id = _staff_station(scope)
    if station_id is None:
        return true()
    return or_(Bulletin.station_id == station_id,
               and_(Bulletin.station_id.is_(None), Bulletin.published_at.is_not(None)))


def manages(scope: access.Scope, bulletin_station_id: int | None) -> bool:
    """Whether the caller issues and verifies for a bulletin of this station (None: the county's)."""
    if scope.role != STAFF:
        return False
    station_id = _staff_station(scope)
    return station_id is None or station_id == bulletin_station_id


def rectification_condition(scope: access.Scope) -> ColumnElement[bool]:
    """The 整改 items the caller may see (only of published bulletins: items exist from then on)."""
    account = scope.principal.account
    if scope.role == STAFF:
        if account.station_id is None:
            return true()
        return or_(Rectification.station_id == account.station_id,
                   and_(Rectification.unit_kind == "station", Rectification.unit_id == account.station_id))
    if scope.role == DEPUTY and account.deputy_id is not None:
        return and_(Rectification.unit_kind == "deputy", Rectification.unit_id == account.deputy_id)
    return false()


def _is_unit(scope: access.Scope, item: Rectification) -> bool:
    account = scope.principal.account
    if scope.role == STAFF and item.unit_kind == "station":
        return account.station_id == item.unit_id
    if scope.role == DEPUTY and item.unit_kind == "deputy":
        return account.deputy_id == item.unit_id
    return False


def may_respond(scope: access.Scope, item: Rectification) -> bool:
    return _is_unit(scope, item) or manages(scope, item.station_id)


def may_verify(scope: access.Scope, item: Rectification) -> bool:
    return manages(scope, item.station_id) and not _is_unit(scope, item)


# ---------------------------------------------------------------------------------------------- 通报
def _group_rows(groups: list[figures.Group]) -> list[dict[str, Any]]:
    return [{"code": g.key, "label": g.label,
             "figures": {name: g.figures[name] for name in SHOWN},
             "counts": {name: list(g.counts[name]) for name in SHOWN}}
            for g in groups if g.key is not None]


def compute(session: Session, scope: access.Scope, period: Period, station: Station | None,
            threshold: float = THRESHOLD) -> dict[str, Any]:
    """The bulletin's content for the period and scope: totals, per station/department/deputy, the
    满意率 ranking of each, the units under the threshold, the overdue cases."""
    params = {"since": period.since.isoformat(), "until": period.until.isoformat()}
    if station is not None:
        params["station"] = station.code
    where = ledger.conditions(session, scope, params)
    total, _ = figures.statistics(session, scope, where, None)
    content: dict[str, Any] = {
        "params": params,
        "total": {name: total.figures[name] for name in SHOWN},
        "total_counts": {name: list(total.counts[name]) for name in SHOWN},
        "groups": {}, "ranking": {}, "below": [],
    }
    for dimension in DIMENSIONS:
        _all, groups = figures.statistics(session, scope, where, dimension)
        content["groups"][dimension] = _group_rows(groups)
        content["ranking"][dimension] = [
            {"code": g.key, "label": g.label, "value": g.figures["satisfaction_rate"]}
            for g in figures.ranking(groups, "satisfaction_rate")
            if g.key is not None and g.figures["satisfaction_rate"] is not None]
        for g in groups:
            if g.key is None:
                continue
            for name in JUDGED:
                value = g.figures[name]
                if value is not None and value < threshold:
                    content["below"].append({"dimension": dimension, "code": g.key, "label": g.label,
                                             "figure": name, "value": value,
                                             "counts": list(g.counts[name])})
    rows, _capped_total = ledger.page(session, scope, {**params, "overdue": "yes"}, 1, OVERDUE_LISTED)
    content["overdue_total"] = total.figures["overdue"]  # exact (the ledger's count stops at its cap)
    content["overdue"] = [{"number": r["number"], "public_id": r["public_id"], "text": r["text"][:60],
                           "handler": r["handler"], "grid": r["grid"], "deadline": local_day(r["deadline"])}
                          for r in rows]
    return content


def scope_name(session: Session, station: Station | None) -> str:
    return station.name if station is not None else "全县"


def generate(session: Session, scope: access.Scope, period_key: str, station_code: str | None = None, *,
             threshold: float = THRESHOLD, now: datetime | None = None) -> Bulletin:
    """Compute and store a bulletin (a draft until `publish`). Station staff generate for their
    own station only; county staff for the county or any station."""
    _require_staff(scope)
    period = parse_period(period_key)
    own = _staff_station(scope)
    station = None
    if station_code:
        station = session.scalar(select(Station).where(Station.code == station_code.strip()))
        if station is None:
            raise BulletinError("联络站不存在", code="bad_station", kind=INVALID, field="station")
    if own is not None:
        if station is not None and station.id != own:
            raise BulletinError("只能编发本站的通报", code="forbidden", kind=FORBIDDEN, field="station")
        station = session.get(Station, own)
    if not 0 < threshold <= 1:
        raise BulletinError("达标线应在 0 到 100% 之间", code="bad_threshold", kind=INVALID, field="threshold")
    content = compute(session, scope, period, station, threshold)
    bulletin = Bulletin(period=period.key, since=period.since, until=period.until,
                        station_id=station.id if station else None,
                        title=f"{scope_name(session, station)}{period.label}群众诉求办理情况通报",
                        threshold=threshold, content=content, created_by_id=scope.principal.account.id,
                        created_at=now or utcnow())
    session.add(bulletin)
    session.flush()
    return bulletin


def list_bulletins(session: Session, scope: access.Scope) -> list[Bulletin]:
    _require_staff(scope)
    return list(session.scalars(select(Bulletin).where(bulletin_condition(scope))
                                .order_by(Bulletin.created_at.desc(), Bulletin.id.desc())))


def get_bulletin(session: Session, scope: access.Scope, public_id: str) -> Bulletin:
    found = session.scalar(select(Bulletin).where(Bulletin.public_id == public_id, bulletin_condition(scope)))
    if found is None:
        raise _not_found()
    return found


def _unit_id(session: Session, dimension: str, code: str) -> int | None:
    model = UNIT_MODELS[dimension]
    return session.scalar(select(model.id).where(model.code == code))


def publish(session: Session, scope: access.Scope, bulletin: Bulletin, *,
            working_days: int = RECTIFY_WORKING_DAYS, now: datetime | None = None) -> list[Rectification]:
    """Publish: tell the scope's staff, open a 整改 item per unit and figure under the threshold
    (deadline `working_days` working days on) and tell each unit. Once only."""
    now = now or utcnow()
    if not manages(scope, bulletin.station_id):
        raise BulletinError("只有编发单位可以发布此通报", code="forbidden", kind=FORBIDDEN)
    if bulletin.published_at is not None:
        raise BulletinError("该通报已发布", code="already_published", kind=CONFLICT)
    if not 1 <= working_days <= 60:
        raise BulletinError("整改期限应为 1–60 个工作日", code="bad_deadline", kind=INVALID, field="working_days")
    bulletin.published_at = now
    deadline = add_working_days(now, working_days)
    items = []
    for entry in bulletin.content.get("below", []):
        unit_id = _unit_id(session, entry["dimension"], entry["code"])
        if unit_id is None:  # removed from the registry since
            continue
        item = Rectification(bulletin_id=bulletin.id, unit_kind=entry["dimension"], unit_id=unit_id,
                             unit_label=entry["label"], station_id=bulletin.station_id, figure=entry["figure"],
                             value=entry["value"], threshold=bulletin.threshold, deadline=deadline,
                             status=lifecycle.OPEN, created_at=now,
                             history=[_history(now, "open", scope, "通报发布，列入整改")])
        session.add(item)
        items.append(item)
    session.flush()
    staff = select(Account.id).where(Account.role == STAFF, Account.active.is_(True))
    if bulletin.station_id is not None:
        staff = staff.where(or_(Account.station_id.is_(None), Account.station_id == bulletin.station_id))
    for account_id in session.scalars(staff):
        notices.notify(session, None, f"bulletin:{bulletin.id}:staff:{account_id}",
                       f"《{bulletin.title}》已发布，请在办公台“通报”中查看。", account_id=account_id,
                       detail={"bulletin": bulletin.public_id})
    for item in items:
        _tell_unit(session, item)
    return items


def _tell_unit(session: Session, item: Rectification) -> None:
    figure = figures.FIGURES[item.figure]
    text = (f"{item.unit_label}：{item.bulletin.title}中，您的{figure.label}为 {item.value * 100:.1f}%，"
            f"低于 {item.threshold * 100:.0f}%。请于 {local_day(item.deadline)} 前在办公台“整改”中"
            f"报送整改情况（书面材料可交工委代为录入）。")
    key = f"rectification:{item.id}"
    detail = {"rectification": item.public_id}
    if item.unit_kind == "department":
        notices.notify(session, None, key, text, department_id=item.unit_id, detail=detail)
    elif item.unit_kind == "deputy":
        notices.notify(session, None, key, text, deputy_id=item.unit_id, detail=detail)
    else:
        for account_id in session.scalars(select(Account.id).where(
                Account.role == STAFF, Account.active.is_(True), Account.station_id == item.unit_id)):
            notices.notify(session, None, f"{key}:staff:{account_id}", text, account_id=account_id,
                           detail=detail)


# ---------------------------------------------------------------------------------------------- 整改
def _history(now: datetime, action: str, scope: access.Scope, note: str | None) -> dict[str, Any]:
    return {"at": now.isoformat(), "action": action, "by": scope.principal.account.name, "note": note or ""}


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """超期: past the deadline and not closed (as `lifecycle.is_overdue`)."""
    return and_(Rectification.status != lifecycle.CLOSED, Rectification.deadline < now)


def list_rectifications(session: Session, scope: access.Scope, *, status: str | None = None,
                        overdue: bool | None = None, bulletin: Bulletin | None = None,
                        now: datetime | None = None) -> list[Rectification]:
    query = select(Rectification).where(rectification_condition(scope))
    if status:
        if status not in lifecycle.STATUS_LABELS:
            raise BulletinError("筛选条件无效", code="bad_filter", kind=INVALID, field="status")
        query = query.where(Rectification.status == status)
    if overdue is not None:
        late = overdue_condition(now or utcnow())
        query = query.where(late if overdue else ~late)
    if bulletin is not None:
        query = query.where(Rectification.bulletin_id == bulletin.id)
    return list(session.scalars(query.order_by(Rectification.deadline, Rectification.id)))


def get_rectification(session: Session, scope: access.Scope, public_id: str, *,
                      lock: bool = False) -> Rectification:
    query = select(Rectification).where(Rectification.public_id == public_id, rectification_condition(scope))
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise _not_found("整改事项")
    return found


def _move(item: Rectification, action: str, scope: access.Scope, note: str | None, now: datetime) -> None:
    transition = lifecycle.check(action, item.status)
    item.status = transition.target
    item.history = [*(item.history or []), _history(now, action, scope, note)]


def _text(value: str | None, limit: int, field: str, required: bool) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise BulletinError("请填写内容", code="required", kind=INVALID, field=field)
    if len(value) > limit or "\x00" in value:
        raise BulletinError(f"内容不超过 {limit} 字", code="too_long", kind=INVALID, field=field)
    return value or None


def respond(session: Session, scope: access.Scope, item: Rectification, response: str, *,
            now: datetime | None = None) -> None:
    """The unit's written answer: what it did about the figure."""
    now = now or utcnow()
    if not may_respond(scope, item):
        raise BulletinError("只有被通报单位或工委可以报送整改情况", code="forbidden", kind=FORBIDDEN)
    text = _text(response, MAX_RESPONSE, "response", True)
    _move(item, "respond", scope, text, now)
    item.response, item.responded_at, item.responded_by_id = text, now, scope.principal.account.id
    session.flush()


def verify(session: Session, scope: access.Scope, item: Rectification, note: str | None = None, *,
           now: datetime | None = None) -> None:
    """Staff checked the answer: the item is closed (销号)."""
    now = now or utcnow()
    if not may_verify(scope, item):
        raise BulletinError("只有编发通报的工委可以核实销号", code="forbidden", kind=FORBIDDEN)
    text = _text(note, MAX_NOTE, "note", False)
    _move(item, "verify", scope, text, now)
    item.review_note, item.verified_at, item.verified_by_id = text, now, scope.principal.account.id
    session.flush()


def send_back(session: Session, scope: access.Scope, item: Rectification, note: str, *,
              now: datetime | None = None) -> None:
    """Staff found the answer wanting: back to the unit, with the reason (told to the unit)."""
    now = now or utcnow()
    if not may_verify(scope, item):
        raise BulletinError("只有编发通报的工委可以退回", code="forbidden", kind=FORBIDDEN)
    text = _text(note, MAX_NOTE, "note", True)
    _move(item, "send_back", scope, text, now)
    item.review_note = text
    session.flush()
    figure = figures.FIGURES[item.figure]
    reply = f"{item.unit_label}：{figure.label}整改情况被退回，理由：{text}。请于 {local_day(item.deadline)} 前重新报送。"
    key = f"rectification:{item.id}:back:{len(item.history)}"
    if item.unit_kind == "department":
        notices.notify(session, None, key, reply, department_id=item.unit_id)
    elif item.unit_kind == "deputy":
        notices.notify(session, None, key, reply, deputy_id=item.unit_id)


def next_period_value(session: Session, scope: access.Scope, item: Rectification) -> tuple[str, float | None]:
    """The unit's same figure in the following period (shown beside the item): (period label, value)."""
    following = parse_period(item.bulletin.period).next()
    model = UNIT_MODELS[item.unit_kind]
    code = session.scalar(select(model.code).where(model.id == item.unit_id))
    params = {"since": following.since.isoformat(), "until": following.until.isoformat(), item.unit_kind: code}
    if item.bulletin.station_id is not None and item.unit_kind != "station":
        station_code = session.scalar(select(Station.code).where(Station.id == item.bulletin.station_id))
        params["station"] = station_code
    try:
        where = ledger.conditions(session, scope, params)
    except ledger.BadFilter:
        return following.label, None
    total, _ = figures.statistics(session, scope, where, None)
    return following.label, total.figures[item.figure]


def is_overdue(item: Rectification, now: datetime | None = None) -> bool:
    return lifecycle.is_overdue(item.status, item.deadline, now or utcnow())


def default_period(now: datetime | None = None) -> str:
    """The month before today (China time): the usual monthly 通报."""
    today = local_day_date(now or utcnow())
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year}-{last.month:02d}"


def local_day_date(moment: datetime) -> date:
    return moment.astimezone(CHINA_TZ).date()
