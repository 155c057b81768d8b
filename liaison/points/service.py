"""履职积分: points derived from recorded events, never typed in.

The county's standard for a year (`PointsStandard`, versioned, as data) lists items; each names the
event `source` that earns it, the points per event (negative: a deduction) and a yearly cap. The
events are what the other domains recorded: cases accepted within the limit or late (case timeline),
督单 (urge by the deputy), ratings of the deputy's cases, duty shifts kept or missed and grid visits
(rota), 述职 surveys held and 民生实事 ballots cast (engagement), and offline activities reported by
the deputy that every step of the county's review chain approved. Corrections are audited
adjustments with a reason.

Two paths reach the same totals, and the tests hold them to it: `sync` adds to the stored ledger
the events it has not seen yet (the scheduler runs it), `recompute` derives the totals from the
events alone. Per item the total is the sum of its events clipped to the cap, so it does not depend
on the order events arrive in.
"""
from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import (
    String,
    case,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    values,
)
from sqlalchemy.orm import Session

from liaison.case.models import Case, CaseEvent, Rating
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.core.types import UTCDateTime
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement.models import ProjectBallot, Survey
from liaison.intake.models import WalkIn
from liaison.people import service as accounts
from liaison.people.models import Account, Deputy, Station
from liaison.people.service import DEPUTY, STAFF, Principal
from liaison.points import lifecycle
from liaison.points.models import (
    POINTS,
    ActivityReport,
    ActivityReview,
    PointsAdjustment,
    PointsEntry,
    PointsStandard,
)
from liaison.rota.models import DutyShift, GridVisit, ShiftAssignment

ADJUSTMENT = "adjustment"  # the ledger's item code of an audited adjustment
SOURCES = {
    "case_accepted_in_time": "按时受理群众诉求", "case_accepted_late": "超时受理群众诉求",
    "urge_done": "代表督单", "case_rated_satisfied": "所办诉求群众满意", "case_rated_unsatisfied": "所办诉求群众不满意",
    "shift_kept": "联络站值班", "shift_matter": "值班接待登记群众诉求", "shift_missed": "值班缺勤", "grid_visit": "下沉网格走访",
    "report_held": "向选民述职", "survey_participation": "参加民生实事票决", "activity": "线下履职活动（审核认定）",
}
STATION_STAFF, COUNTY_STAFF = "station_staff", "county_staff"
DEFAULT_CHAIN = [{"name": "联络站上报", "by": STATION_STAFF}, {"name": "乡镇人大审核", "by": STATION_STAFF},
                 {"name": "代表工委复核", "by": COUNTY_STAFF}, {"name": "主任会议确定", "by": COUNTY_STAFF}]
DEFAULT_GRADES = [{"grade": "优秀", "min": 60}, {"grade": "称职", "min": 30}, {"grade": "基本称职", "min": 15},
                  {"grade": "不称职", "min": None}]


def _item(code, category, name, source, points, cap):
    return {"code": code, "category": category, "name": name, "source": source, "points": points, "cap": cap}


# Modelled on the field's standards (6 大类 11 小项 plus bonus and deduction items).
DEFAULT_ITEMS = [
    _item("meeting", "参加会议", "参加人代会、常委会及代表小组会议", "activity", 3, 15),
    _item("training", "参加培训", "参加履职学习培训", "activity", 2, 10),
    _item("duty", "联系群众", "代表周三见进站接待", "shift_kept", 2, 24),
    _item("grid_visit", "联系群众", "下沉网格走访", "grid_visit", 0.5, 20),
    _item("case_accepted", "联系群众", "按时受理群众诉求", "case_accepted_in_time", 1, 20),
    _item("urge", "联系群众", "代表督单", "urge_done", 1, 10),
    _item("satisfied", "联系群众", "所办诉求群众满意", "case_rated_satisfied", 0.5, 10),
    _item("research", "履职活动", "开展调研视察、执法检查", "activity", 3, 12),
    _item("report", "履职活动", "向选民述职", "report_held", 5, 5),
    _item("vote", "履职活动", "参加民生实事项目票决", "survey_participation", 1, 3),
    _item("suggestion", "建言献策", "提出建议、批评和意见", "activity", 2, 10),
    _item("excellent_suggestion", "加分项", "优秀建议、重点督办建议", "activity", 5, 10),
    _item("missed_duty", "扣分项", "值班缺勤", "shift_missed", -2, 20),
    _item("late_accept", "扣分项", "诉求超时受理", "case_accepted_late", -0.5, 10),
    _item("unsatisfied", "扣分项", "所办诉求群众不满意", "case_rated_unsatisfied", -1, 10),
]


class PointsError(Refusal):
    """A points request refused (kind, code, Chinese message)."""


def _d(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    return (datetime.combine(date(year, 1, 1), time(0), tzinfo=CHINA_TZ),
            datetime.combine(date(year + 1, 1, 1), time(0), tzinfo=CHINA_TZ))


# ---------------------------------------------------------------------------------------------- standards
def validate_standard(items: list[dict], grades: list[dict], chain: list[dict]) -> None:
    codes = [i.get("code") for i in items]
    if not items or len(set(codes)) != len(codes) or ADJUSTMENT in codes or not all(codes):
        raise PointsError(INVALID, "invalid_items", "积分项目不能为空，编码不能重复", "items")
    for item in items:
        if item.get("source") not in SOURCES:
            raise PointsError(INVALID, "invalid_source", f"积分项目“{item.get('name')}”的来源无效", "items")
        try:
            points, cap = _d(item["points"]), item.get("cap")
            if points == 0 or (cap is not None and _d(cap) <= 0):
                raise ValueError
        except (KeyError, ValueError, ArithmeticError):
            raise PointsError(INVALID, "invalid_points", f"积分项目“{item.get('name')}”的分值或上限无效",
                              "items") from None
        if not (item.get("name") and item.get("category")):
            raise PointsError(INVALID, "invalid_items", "积分项目须有名称和类别", "items")
    if not grades or any(not g.get("grade") for g in grades):
        raise PointsError(INVALID, "invalid_grades", "请设置等次及分数线", "grades")
    if not chain or any(step.get("by") not in (STATION_STAFF, COUNTY_STAFF) or not step.get("name")
                        for step in chain):
        raise PointsError(INVALID, "invalid_chain", "审核流程无效", "review_chain")


def standard_for(session: Session, year: int) -> PointsStandard | None:
    """The version of the year's standard that applies: the newest active one."""
    return session.scalar(select(PointsStandard).where(PointsStandard.year == year, PointsStandard.active.is_(True))
                          .order_by(PointsStandard.version.desc()).limit(1))


def publish_standard(session: Session, principal: Principal | None, year: int, *, title: str,
                     items: list[dict], grades: list[dict] | None = None,
                     review_chain: list[dict] | None = None) -> PointsStandard:
    """A new version of the year's standard (county staff); the older versions stay, inactive, and the
    year's ledger is rebuilt under the new one."""
    if principal is not None and (principal.role != STAFF or principal.account.station_id is not None):
        raise PointsError(FORBIDDEN, "county_staff_only", "只有县级工委可以制定积分标准")
    grades = grades or DEFAULT_GRADES
    review_chain = review_chain or DEFAULT_CHAIN
    validate_standard(items, grades, review_chain)
    latest = session.scalar(select(func.max(PointsStandard.version)).where(PointsStandard.year == year)) or 0
    for older in session.scalars(select(PointsStandard).where(PointsStandard.year == year)):
        older.active = False
    standard = PointsStandard(year=year, version=latest + 1, title=title, items=items, grades=grades,
                              review_chain=review_chain, active=True,
                              created_by=principal.account.id if principal is not None else None)
    session.add(standard)
    session.flush()
    session.execute(delete(PointsEntry).where(PointsEntry.year == year))
    sync(session, year)
    return standard


# ---------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    ref: str
    at: datetime
    item_code: str | None = None  # set for activities: the item they were reported under


def collect_events(session: Session, year: int, deputy_ids: Iterable[int] | None = None
                   ) -> dict[int, dict[str, list[Event]]]:
    """Every recorded event of the year by deputy and source: the set `sync` and `recompute` read."""
    found: dict[int, dict[str, list[Event]]] = defaultdict(lambda: defaultdict(list))
    events = _event_rows(year, list(deputy_ids) if deputy_ids is not None else None)
    for deputy_id, source, item_code, ref, at in session.execute(
            select(events.c.deputy_id, events.c.source, events.c.item_code, events.c.ref, events.c.at)
            .join(Deputy, Deputy.id == events.c.deputy_id).where(*_in_scope(session, Deputy.county_id))
            .order_by(events.c.at, events.c.ref)):
        found[deputy_id][source].append(Event(ref, at, item_code))
    return found


# ---------------------------------------------------------------------------------------------- two paths
def _event_rows(year: int, deputy_ids: list[int] | None):
    """Every recorded event of the year as one set: (deputy_id, source, item_code, ref, at), the same
    events `collect_events` reads (`item_code` only for activities)."""
    start, end = _year_bounds(year)

    def only(column):
        return [column.in_(deputy_ids)] if deputy_ids is not None else []

    def ref(prefix: str, column):
        return (literal(prefix + ":") + cast(column, String)).label("ref")

    none = null().cast(String(32)).label("item_code")
    accepted_in_time = case((Case.accept_deadline.is_(None) | (CaseEvent.at <= Case.accept_deadline),
                             literal("case_accepted_in_time")), else_=literal("case_accepted_late"))
    kept = ShiftAssignment.status == "checked_in"
    parts = [
        select(CaseEvent.actor_id.label("deputy_id"), accepted_in_time.label("source"), none,
               ref("case_event", CaseEvent.id), CaseEvent.at.label("at"))
        .join(Case, Case.id == CaseEvent.case_id)
        .where(CaseEvent.action == "accept", CaseEvent.actor_kind == DEPUTY, CaseEvent.at >= start,
               CaseEvent.at < end, *only(CaseEvent.actor_id)),
        select(CaseEvent.actor_id, literal("urge_done"), none, ref("case_event", CaseEvent.id), CaseEvent.at)
        .where(CaseEvent.action == "urge", CaseEvent.actor_kind == DEPUTY, CaseEvent.at >= start,
               CaseEvent.at < end, *only(CaseEvent.actor_id)),
        select(Case.deputy_id, case((Rating.value == "unsatisfied", literal("case_rated_unsatisfied")),
                                    else_=literal("case_rated_satisfied")), none, ref("rating", Rating.id),
               Rating.created_at)
        .join(Case, Case.id == Rating.case_id)
        .where(Case.deputy_id.is_not(None), Case.handler_kind == DEPUTY, Rating.created_at >= start,
               Rating.created_at < end, *only(Case.deputy_id)),
        select(ShiftAssignment.deputy_id, case((kept, literal("shift_kept")), else_=literal("shift_missed")), none,
               ref("assignment", ShiftAssignment.id),
               case((kept, func.coalesce(ShiftAssignment.checked_in_at, DutyShift.ends_at)), else_=DutyShift.ends_at))
        .join(DutyShift, DutyShift.id == ShiftAssignment.shift_id)
        .where(ShiftAssignment.deputy_id.is_not(None), ShiftAssignment.status.in_(("checked_in", "missed")),
               DutyShift.ends_at >= start, DutyShift.ends_at < end, *only(ShiftAssignment.deputy_id)),
        select(Account.deputy_id, literal("shift_matter"), none, ref("walk_in", WalkIn.id), WalkIn.created_at)
        .join(Account, Account.id == WalkIn.registered_by)
        .join(ShiftAssignment, (ShiftAssignment.shift_id == WalkIn.shift_id)
              & (ShiftAssignment.deputy_id == Account.deputy_id))
        .where(Account.deputy_id.is_not(None), ShiftAssignment.status == "checked_in",
               WalkIn.created_at >= start, WalkIn.created_at < end, *only(Account.deputy_id)),
        select(GridVisit.deputy_id, literal("grid_visit"), none, ref("visit", GridVisit.id), GridVisit.visited_at)
        .where(GridVisit.visited_at >= start, GridVisit.visited_at < end, *only(GridVisit.deputy_id)),
        select(Survey.deputy_id, literal("report_held"), none, ref("survey", Survey.id), Survey.created_at)
        .where(Survey.kind == "report", Survey.deputy_id.is_not(None), Survey.created_at >= start,
               Survey.created_at < end, *only(Survey.deputy_id)),
        select(ProjectBallot.deputy_id, literal("survey_participation"), none, ref("ballot", ProjectBallot.id),
               ProjectBallot.created_at)
        .where(ProjectBallot.created_at >= start, ProjectBallot.created_at < end, *only(ProjectBallot.deputy_id)),
        select(ActivityReport.deputy_id, literal("activity"), ActivityReport.item_code,
               ref("activity", ActivityReport.id), ActivityReport.decided_at)
        .where(ActivityReport.status == lifecycle.APPROVED, ActivityReport.year == year,
               *only(ActivityReport.deputy_id)),
    ]
    return union_all(*parts).subquery("events")


def _items_table(standard: PointsStandard):
    """The standard's items as rows (code, source, points, cap) the events join to."""
    rows = [(i["code"], i["source"], _d(i["points"]), _d(i["cap"]) if i.get("cap") is not None else None)
            for i in standard.items]
    return values(column("code", String), column("source", String), column("points", POINTS),
                  column("cap", POINTS), name="items").data(rows)


def _item_events(standard: PointsStandard, year: int, deputy_ids: list[int] | None):
    """(events, items, the join condition): each event under the items its source earns."""
    events, items = _event_rows(year, deputy_ids), _items_table(standard)
    on = (items.c.source == events.c.source) & (
        (items.c.source != "activity") | (items.c.code == events.c.item_code))
    return events, items, on


def recompute(session: Session, year: int, deputy_ids: Iterable[int] | None = None
              ) -> dict[int, dict[str, Decimal]]:
    """Per deputy and item, the year's points derived from the events alone (nothing stored is read):
    one aggregate over the events, each item's count times its points clipped to its cap."""
    standard = standard_for(session, year)
    if standard is None:
        return {}
    deputy_ids = list(deputy_ids) if deputy_ids is not None else None
    events, items, on = _item_events(standard, year, deputy_ids)
    raw = items.c.points * func.count()
    capped = case((items.c.cap.is_(None), raw), (items.c.points > 0, func.least(raw, items.c.cap)),
                  else_=func.greatest(raw, -items.c.cap))
    totals: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for deputy_id, code, value in session.execute(
            select(events.c.deputy_id, items.c.code, capped)
            .select_from(events.join(items, on).join(Deputy, Deputy.id == events.c.deputy_id))
            .where(*_in_scope(session, Deputy.county_id))
            .group_by(events.c.deputy_id, items.c.code, items.c.points, items.c.cap)):
        totals[deputy_id][code] = _d(value)
    for deputy_id, value in session.execute(
            select(PointsAdjustment.deputy_id, func.sum(PointsAdjustment.points)).where(
                PointsAdjustment.year == year,
                *([PointsAdjustment.deputy_id.in_(deputy_ids)] if deputy_ids is not None else []))
            .group_by(PointsAdjustment.deputy_id)):
        totals[deputy_id][ADJUSTMENT] = _d(value)
    return dict(totals)


def _in_scope(session: Session, column) -> list:
    """The tenant condition on a county column, for the SELECT inside an INSERT … FROM SELECT (which
    the session's criteria do not reach; PostgreSQL's row-level security does as well)."""
    scope = tenant.of(session)
    return [] if scope.every_county else [column.in_(sorted(scope.county_ids))]


def sync(session: Session, year: int, deputy_ids: Iterable[int] | None = None) -> int:
    """Add to the ledger every event not in it yet (within each item's cap); returns lines added.

    One INSERT … SELECT: the events not in the ledger, numbered per deputy and item in the order they
    happened, each worth its points while the item's stored sum plus those before it stays within the
    cap (what adding them one by one gives); then the adjustments not in it yet."""
    standard = standard_for(session, year)
    if standard is None:
        return 0
    deputy_ids = list(deputy_ids) if deputy_ids is not None else None
    events, items, on = _item_events(standard, year, deputy_ids)
    stored = (select(PointsEntry.deputy_id, PointsEntry.item_code, func.sum(PointsEntry.points).label("total"))
              .where(PointsEntry.year == year,
                     *([PointsEntry.deputy_id.in_(deputy_ids)] if deputy_ids is not None else []))
              .group_by(PointsEntry.deputy_id, PointsEntry.item_code).subquery("stored"))
    seen = select(PointsEntry.id).where(PointsEntry.deputy_id == events.c.deputy_id, PointsEntry.year == year,
                                        PointsEntry.item_code == items.c.code,
                                        PointsEntry.source_ref == events.c.ref).exists()
    turn = func.row_number().over(partition_by=(events.c.deputy_id, items.c.code),
                                  order_by=(events.c.at, events.c.ref.collate("C")))
    fresh = (select(events.c.deputy_id, items.c.code.label("item_code"), items.c.points, items.c.cap,
                    events.c.ref, events.c.at, Deputy.county_id,
                    func.coalesce(stored.c.total, 0).label("before"), turn.label("turn"))
             .select_from(events.join(items, on).join(Deputy, Deputy.id == events.c.deputy_id)
                          .outerjoin(stored, (stored.c.deputy_id == events.c.deputy_id)
                                     & (stored.c.item_code == items.c.code)))
             .where(~seen, *_in_scope(session, Deputy.county_id)).subquery("fresh"))
    room = fresh.c.cap - fresh.c.before - (fresh.c.turn - 1) * fresh.c.points
    worth = case((fresh.c.cap.is_(None), fresh.c.points),
                 (fresh.c.points > 0, func.greatest(0, func.least(fresh.c.points, room))),
                 else_=func.least(0, func.greatest(fresh.c.points, -fresh.c.cap - fresh.c.before
                                                   - (fresh.c.turn - 1) * fresh.c.points)))
    now = utcnow()
    lines = select(fresh.c.deputy_id, literal(year), literal(standard.id), fresh.c.item_code, worth,
                   fresh.c.ref, fresh.c.at, literal(now, UTCDateTime()), fresh.c.county_id).where(worth != 0)
    columns = ["deputy_id", "year", "standard_id", "item_code", "points", "source_ref", "occurred_at",
               "created_at", "county_id"]
    counted = {"preserve_rowcount": True}  # the database's own count of the rows an INSERT … SELECT added
    added = session.execute(insert(PointsEntry.__table__).from_select(columns, lines),
                            execution_options=counted).rowcount
    adjusted = (select(PointsAdjustment.deputy_id, literal(year), literal(standard.id), literal(ADJUSTMENT),
                       PointsAdjustment.points, literal("adjustment:") + cast(PointsAdjustment.id, String),
                       PointsAdjustment.created_at, literal(now, UTCDateTime()), PointsAdjustment.county_id)
                .where(PointsAdjustment.year == year, *_in_scope(session, PointsAdjustment.county_id),
                       *([PointsAdjustment.deputy_id.in_(deputy_ids)] if deputy_ids is not None else []),
                       ~select(PointsEntry.id).where(
                           PointsEntry.deputy_id == PointsAdjustment.deputy_id, PointsEntry.year == year,
                           PointsEntry.item_code == ADJUSTMENT,
                           PointsEntry.source_ref == literal("adjustment:") + cast(PointsAdjustment.id, String))
                       .exists()))
    added += session.execute(insert(PointsEntry.__table__).from_select(columns, adjusted),
                             execution_options=counted).rowcount
    return added


def ledger_totals(session: Session, year: int, deputy_ids: Iterable[int] | None = None
                  ) -> dict[int, dict[str, Decimal]]:
    """Per deputy and item, the sums of the stored ledger."""
    query = select(PointsEntry.deputy_id, PointsEntry.item_code, func.sum(PointsEntry.points)).where(
        PointsEntry.year == year).group_by(PointsEntry.deputy_id, PointsEntry.item_code)
    if deputy_ids is not None:
        query = query.where(PointsEntry.deputy_id.in_(list(deputy_ids)))
    totals: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for deputy_id, item_code, total in session.execute(query):
        totals[deputy_id][item_code] = _d(total)
    return dict(totals)


# ---------------------------------------------------------------------------------------------- activities
def report_activity(session: Session, principal: Principal, *, item_code: str, title: str,
                    happened_on: date, evidence: str, photo_media_ids: list[str] | None = None) -> ActivityReport:
    """A deputy reports an offline activity with evidence; it waits for the review chain."""
    if principal.role != DEPUTY:
        raise PointsError(FORBIDDEN, "forbidden", "只有代表可以申报履职活动")
    if happened_on > utcnow().astimezone(CHINA_TZ).date():
        raise PointsError(INVALID, "in_the_future", "活动日期不能晚于今天", "happened_on")
    standard = standard_for(session, happened_on.year)
    if standard is None:
        raise PointsError(CONFLICT, "no_standard", f"{happened_on.year}年度积分标准尚未制定")
    item = next((i for i in standard.items if i["code"] == item_code and i["source"] == "activity"), None)
    if item is None:
        raise PointsError(INVALID, "invalid_item", "该项目不能申报（系统自动记分的项目无需申报）", "item_code")
    if not (evidence or "").strip():
        raise PointsError(INVALID, "evidence_required", "请填写活动情况作为佐证", "evidence")
    report = ActivityReport(deputy_id=principal.account.deputy_id, standard_id=standard.id, year=happened_on.year,
                            item_code=item_code, title=title.strip()[:100], happened_on=happened_on,
                            evidence=evidence.strip()[:2000], photo_media_ids=photo_media_ids or [],
                            chain=list(standard.review_chain), step=0, status=lifecycle.PENDING)
    session.add(report)
    session.flush()
    return report


def _deputy_station(session: Session, deputy_id: int) -> int | None:
    return session.scalar(select(Deputy.station_id).where(Deputy.id == deputy_id))


def _staff_sees_deputy(session: Session, principal: Principal, deputy_id: int) -> bool:
    station_id = principal.account.station_id
    if station_id is None:
        return True
    return session.scalar(accounts.station_deputy_ids(station_id).where(Deputy.id == deputy_id)) is not None


def report_visible(session: Session, principal: Principal, report: ActivityReport) -> bool:
    if principal.role == DEPUTY:
        return report.deputy_id == principal.account.deputy_id
    return principal.role == STAFF and _staff_sees_deputy(session, principal, report.deputy_id)


def get_report(session: Session, principal: Principal, public_id: str) -> ActivityReport:
    report = session.scalar(select(ActivityReport).where(ActivityReport.public_id == public_id))
    if report is None or not report_visible(session, principal, report):
        raise PointsError(NOT_FOUND, "not_found", "履职活动不存在")
    return report


def reports_for(session: Session, principal: Principal, status: str | None = None) -> list[ActivityReport]:
    query = select(ActivityReport).order_by(ActivityReport.id.desc()).limit(500)
    if status:
        query = query.where(ActivityReport.status == status)
    if principal.role == DEPUTY:
        query = query.where(ActivityReport.deputy_id == principal.account.deputy_id)
    elif principal.role == STAFF:
        if principal.account.station_id is not None:
            query = query.where(ActivityReport.deputy_id.in_(accounts.station_deputy_ids(principal.account.station_id)))
    else:
        raise PointsError(FORBIDDEN, "forbidden", "无权查看履职活动")
    return list(session.scalars(query))


def review(session: Session, principal: Principal, report: ActivityReport, approve: bool,
           note: str | None = None, now: datetime | None = None) -> ActivityReport:
    """One step of the review chain decides. Station steps are for the deputy's station's staff (or
    county staff), county steps for county staff; nobody decides two steps of one report. The last
    approval makes it count (the ledger takes it at the next sync, done here at once)."""
    if principal.role != STAFF:
        raise PointsError(FORBIDDEN, "forbidden", "只有工委可以审核履职活动")
    if report.status != lifecycle.PENDING:
        lifecycle.move(report, "reject")  # raises: decided already
    step = report.chain[report.step]
    account = principal.account
    if step["by"] == COUNTY_STAFF and account.station_id is not None:
        raise PointsError(FORBIDDEN, "county_step", f"“{step['name']}”由县级工委审核")
    if account.id in {r.account_id for r in report.reviews}:
        raise PointsError(CONFLICT, "already_reviewed", "同一人不能审核同一活动的两个环节")
    if not approve and not (note or "").strip():
        raise PointsError(INVALID, "reason_required", "不通过时请写明原因", "note")
    now = now or utcnow()
    session.add(ActivityReview(report_id=report.id, step=report.step, step_name=step["name"],
                               decision="approve" if approve else "reject", account_id=account.id,
                               note=(note or "").strip()[:200] or None, decided_at=now))
    if not approve:
        lifecycle.move(report, "reject")
        report.decided_at = now
    elif report.step + 1 < len(report.chain):
        lifecycle.move(report, "approve_step")
        report.step += 1
    else:
        lifecycle.move(report, "approve_last")
        report.decided_at = now
    session.flush()
    session.expire(report, ["reviews"])
    if report.status == lifecycle.APPROVED:
        sync(session, report.year, [report.deputy_id])
    return report


# ---------------------------------------------------------------------------------------------- adjustments
def adjust(session: Session, principal: Principal, deputy_code: str, year: int, points, reason: str) -> PointsAdjustment:
    """An audited correction by county staff: its own ledger line with the reason."""
    if principal.role != STAFF or principal.account.station_id is not None:
        raise PointsError(FORBIDDEN, "county_staff_only", "只有县级工委可以调整积分")
    if not (reason or "").strip():
        raise PointsError(INVALID, "reason_required", "请填写调整原因", "reason")
    value = _d(points)
    if value == 0 or abs(value) > 100:
        raise PointsError(INVALID, "invalid_points", "调整分值应在 -100 至 100 之间且不为 0", "points")
    deputy = session.scalar(select(Deputy).where(Deputy.code == deputy_code))
    if deputy is None:
        raise PointsError(INVALID, "unknown_deputy", "代表不存在", "deputy_code")
    if standard_for(session, year) is None:
        raise PointsError(CONFLICT, "no_standard", f"{year}年度积分标准尚未制定")
    adjustment = PointsAdjustment(deputy_id=deputy.id, year=year, points=value, reason=reason.strip()[:200],
                                  account_id=principal.account.id)
    session.add(adjustment)
    session.flush()
    sync(session, year, [deputy.id])
    return adjustment


# ---------------------------------------------------------------------------------------------- reading
def grade_for(standard: PointsStandard, total: Decimal) -> str:
    for grade in standard.grades:
        if grade.get("min") is None or total >= _d(grade["min"]):
            return grade["grade"]
    return standard.grades[-1]["grade"]


def _deputies_in_scope(session: Session, principal: Principal) -> list[Deputy]:
    query = select(Deputy).order_by(Deputy.code)
    if principal.role == DEPUTY:
        query = query.where(Deputy.id == principal.account.deputy_id)
    elif principal.role == STAFF:
        if principal.account.station_id is not None:
            query = query.where(Deputy.id.in_(accounts.station_deputy_ids(principal.account.station_id)))
    else:
        raise PointsError(FORBIDDEN, "forbidden", "无权查看履职积分")
    return list(session.scalars(query))


def ledger(session: Session, principal: Principal, year: int, deputy_code: str | None = None
           ) -> tuple[Deputy, list[PointsEntry], Decimal]:
    """A deputy's ledger: every line with its source event (a deputy reads only their own)."""
    if principal.role == DEPUTY:
        deputy = session.get(Deputy, principal.account.deputy_id)
    else:
        deputy = session.scalar(select(Deputy).where(Deputy.code == (deputy_code or "")))
        if principal.role != STAFF or deputy is None or not _staff_sees_deputy(session, principal, deputy.id):
            raise PointsError(NOT_FOUND, "not_found", "代表不存在")
    entries = list(session.scalars(select(PointsEntry).where(PointsEntry.deputy_id == deputy.id,
                                                             PointsEntry.year == year)
                                   .order_by(PointsEntry.occurred_at, PointsEntry.id)))
    return deputy, entries, sum((_d(e.points) for e in entries), Decimal(0))


@dataclass(frozen=True)
class Standing:
    rank: int
    deputy: Deputy
    station: str
    total: Decimal
    grade: str
    by_category: dict[str, Decimal]


def publication(session: Session, principal: Principal, year: int) -> list[Standing]:
    """公示: every deputy in scope with their total, rank and grade by the county's thresholds."""
    standard = standard_for(session, year)
    if standard is None:
        return []  # no standard for the year yet: nothing to publish
    deputies = _deputies_in_scope(session, principal) if principal.role == STAFF else \
        list(session.scalars(select(Deputy).order_by(Deputy.code)))
    totals = ledger_totals(session, year, [d.id for d in deputies])
    category = {i["code"]: i["category"] for i in standard.items} | {ADJUSTMENT: "调整"}
    stations = dict(session.execute(select(Station.id, Station.name)).all())
    rows = []
    for deputy in deputies:
        items = totals.get(deputy.id, {})
        by_category: dict[str, Decimal] = defaultdict(Decimal)
        for code, value in items.items():
            by_category[category.get(code, code)] += value
        total = sum(items.values(), Decimal(0))
        rows.append((deputy, total, dict(by_category)))
    rows.sort(key=lambda r: (-r[1], r[0].code))
    return [Standing(rank, deputy, stations.get(deputy.station_id, ""), total, grade_for(standard, total), cats)
            for rank, (deputy, total, cats) in enumerate(rows, start=1)]


def export_sheets(session: Session, principal: Principal, year: int
                  ) -> list[tuple[str, list[str], Iterable[list[Any]]]]:
    """The 公示 list and every ledger line as (sheet title, header, rows): one sheet each."""
    standings = publication(session, principal, year)
    standard = standard_for(session, year)
    names = {i["code"]: i["name"] for i in (standard.items if standard else [])} | {ADJUSTMENT: "积分调整"}
    categories = list(dict.fromkeys(i["category"] for i in (standard.items if standard else []))) + ["调整"]
    ids = {s.deputy.id: s.deputy for s in standings}

    def ranked():
        for s in standings:
            yield [s.rank, s.deputy.code, s.deputy.name, s.station] + [
                float(s.by_category.get(c, 0)) for c in categories] + [float(s.total), s.grade]

    def lines():
        for entry in session.scalars(select(PointsEntry).where(PointsEntry.year == year,
                                                               PointsEntry.deputy_id.in_(list(ids)))
                                     .order_by(PointsEntry.deputy_id, PointsEntry.occurred_at, PointsEntry.id)):
            deputy = ids[entry.deputy_id]
            yield [deputy.code, deputy.name, names.get(entry.item_code, entry.item_code), float(entry.points),
                   source_label(entry.source_ref), entry.source_ref,
                   entry.occurred_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")]

    return [(f"{year}年度履职积分公示", ["排名", "代表编码", "姓名", "联络站", *categories, "积分", "等次"], ranked()),
            ("积分明细", ["代表编码", "姓名", "项目", "积分", "来源", "来源编号", "时间"], lines())]


def export_xlsx(session: Session, principal: Principal, year: int) -> bytes:
    """The 公示 list and every ledger line, as an XLSX workbook."""
    from openpyxl import Workbook  # heavy; only the export needs it

    book = Workbook(write_only=True)
    for title, header, rows in export_sheets(session, principal, year):
        sheet = book.create_sheet(title)
        sheet.append(header)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def standards_of(session: Session, year: int) -> list[PointsStandard]:
    """Every version of the year's standard, newest first (the record of what applied when)."""
    return list(session.scalars(select(PointsStandard).where(PointsStandard.year == year)
                                .order_by(PointsStandard.version.desc())))


def adjustments_for(session: Session, deputy: Deputy, year: int) -> list[PointsAdjustment]:
    """A deputy's audited adjustments of the year, oldest first."""
    return list(session.scalars(select(PointsAdjustment).where(PointsAdjustment.deputy_id == deputy.id,
                                                               PointsAdjustment.year == year)
                                .order_by(PointsAdjustment.id)))


def source_label(ref: str) -> str:
    """What a ledger line's source is, in Chinese."""
    kind = ref.split(":", 1)[0]
    return {"case_event": "诉求办理记录", "rating": "群众评价", "assignment": "值班记录", "walk_in": "值班接待登记", "visit": "网格走访",
            "survey": "述职评议", "ballot": "民生实事票决", "activity": "履职活动申报", "adjustment": "积分调整"
            }.get(kind, kind)


def describe(item_code: str, standard: PointsStandard | None) -> dict[str, Any]:
    if item_code == ADJUSTMENT or standard is None:
        return {"name": "积分调整", "category": "调整"}
    item = next((i for i in standard.items if i["code"] == item_code), None)
    return {"name": item["name"], "category": item["category"]} if item else {"name": item_code, "category": ""}
