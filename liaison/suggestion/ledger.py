"""The suggestion 台账 of a year: the suggestions assigned (交办) that year, and the cross-year ones
carried from earlier years; its figures, each defined once (`FIGURES`); and its XLSX export.

A suggestion is *finished* once archived (销号) and, if its answer was B (列入计划逐步解决) or it is
共性 (tracked across years), once its plan is registered as carried out (`complete_plan`). An
unfinished suggestion assigned in an earlier year stays on every later year's 台账 (跨年度).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from openpyxl import Workbook
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Department, Deputy
from liaison.people.service import Principal
from liaison.suggestion import access, lifecycle, service, timers
from liaison.suggestion.lifecycle import Status
from liaison.suggestion.models import Suggestion, SuggestionDepartment

FIGURES = {
    "total": ("件数", "当年交办的建议件数（不含跨年度结转）"),
    "closure_rate": ("办结率", "已销号 / 当年交办"),
    "double_satisfaction_rate": ("双满意率", "代表与常委会均满意而销号的 / 已完成测评的"),
    "second_round": ("二次办理件数", "当年交办、进入过二次办理的件数"),
    "cross_year": ("跨年度", "往年交办、尚未完成（未销号，或 B 类、共性未登记落实）的件数"),
    "overdue": ("超期未答复", "已过答复期限仍在办理中的件数（含跨年度）"),
}
LAYOUT = ("序号", "编号", "标题", "领衔代表", "附议代表", "主办单位", "协办单位", "性质", "重点督办", "交办时间",
          "答复期限", "答复时间", "答复类别", "代表测评", "常委会测评", "轮次", "状态", "跨年度")


def needs_follow_up(suggestion: Suggestion) -> bool:
    return suggestion.answer_category == "B" or suggestion.nature == "common"


def finished(suggestion: Suggestion) -> bool:
    return suggestion.status == Status.ARCHIVED and (
        not needs_follow_up(suggestion) or suggestion.plan_completed_at is not None)


def _year_start(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=CHINA_TZ)


@dataclass
class Ledger:
    year: int
    current: list[Suggestion]   # assigned in the year
    carried: list[Suggestion]   # assigned earlier, not finished

    @property
    def rows(self) -> list[tuple[Suggestion, bool]]:
        return [(s, False) for s in self.current] + [(s, True) for s in self.carried]


def ledger(session: Session, principal: Principal, year: int) -> Ledger:
    start, end = _year_start(year), _year_start(year + 1)
    visible = access.condition(principal)
    current = list(session.scalars(select(Suggestion).where(
        visible, Suggestion.assigned_at >= start, Suggestion.assigned_at < end).order_by(Suggestion.number)))
    earlier = session.scalars(select(Suggestion).where(
        visible, Suggestion.assigned_at < start,
        or_(Suggestion.status != Status.ARCHIVED,
            and_(or_(Suggestion.answer_category == "B", Suggestion.nature == "common"),
                 Suggestion.plan_completed_at.is_(None)))).order_by(Suggestion.number))
    return Ledger(year, current, [s for s in earlier if not finished(s)])


def figures(session: Session, book: Ledger) -> dict[str, float | int | None]:
    current = book.current
    total = len(current)
    archived = [s for s in current if s.status == Status.ARCHIVED]
    rated = [s for s in current if _completed_rating_rounds(session, s) > 0]
    now = utcnow()
    return {
        "total": total,
        "closure_rate": round(len(archived) / total, 4) if total else None,
        "double_satisfaction_rate": round(len(archived) / len(rated), 4) if rated else None,
        "second_round": sum(1 for s in current if s.round >= 2),
        "cross_year": len(book.carried),
        "overdue": sum(1 for s, _ in book.rows if timers.is_overdue(s, now)),
    }


def _completed_rating_rounds(session: Session, suggestion: Suggestion) -> int:
    done = 0
    for round_ in range(1, suggestion.round + 1):
        ratings = service.round_ratings(session, suggestion, round_)
        if f"deputy:{suggestion.lead_deputy_id}" in ratings and service.COMMITTEE in ratings:
            done += 1
    return done


def _names(session: Session, ids) -> str:
    if not ids:
        return ""
    return "、".join(session.scalars(select(Deputy.name).where(Deputy.id.in_(ids)).order_by(Deputy.id)))


def row_values(session: Session, suggestion: Suggestion, carried: bool) -> list:
    deputies = service.deputies_of(session, suggestion)
    departments = service.departments_of(session, suggestion)
    last = service.round_ratings(session, suggestion)
    if not last and suggestion.round > 1:
        last = service.round_ratings(session, suggestion, suggestion.round - 1)
    label = service.RATING_VALUES.get
    return [
        suggestion.number, suggestion.title,
        _names(session, [d for d, role in deputies if role == "lead"]),
        _names(session, [d for d, role in deputies if role == "cosigner"]),
        "、".join(d.name for d, role in departments if role == "lead"),
        "、".join(d.name for d, role in departments if role == "co"),
        service.NATURES.get(suggestion.nature, ""), "是" if suggestion.key_supervision else "否",
        timers.local_day(suggestion.assigned_at), timers.local_day(suggestion.deadline),
        timers.local_day(suggestion.answered_at) if suggestion.answered_at else "",
        suggestion.answer_category or "",
        label(last.get(f"deputy:{suggestion.lead_deputy_id}", ""), ""),
        label(last.get(service.COMMITTEE, ""), ""),
        suggestion.round, lifecycle.STATUS_LABELS[suggestion.status], "是" if carried else "",
    ]


class BadFilter(DomainError):
    """A 台账 filter that names no status, nature or department."""

    kind = INVALID
    code = "bad_filter"


def filtered(session: Session, book: Ledger, *, status: str | None = None, nature: str | None = None,
             department: str | None = None, carried: bool | None = None) -> list[tuple[Suggestion, bool]]:
    """The 台账's rows narrowed by status, nature (个性/共性), a handling department's code (主办 or
    协办) and 跨年度; a value that names nothing is `BadFilter`. The figures stay the whole year's."""
    if status and status not in lifecycle.STATUS_LABELS:
        raise BadFilter("状态筛选条件无效", field="status")
    if nature and nature not in service.NATURES:
        raise BadFilter("性质筛选条件无效", field="nature")
    handled: set[int] | None = None
    if department:
        department_id = session.scalar(select(Department.id).where(Department.code == department))
        if department_id is None:
            raise BadFilter("承办单位筛选条件无效", field="department")
        handled = set(session.scalars(select(SuggestionDepartment.suggestion_id).where(
            SuggestionDepartment.department_id == department_id)))
    return [(item, is_carried) for item, is_carried in book.rows
            if (not status or item.status == status) and (not nature or item.nature == nature)
            and (handled is None or item.id in handled) and (carried is None or is_carried == carried)]


def sheet_rows(session: Session, book: Ledger, rows: list[tuple[Suggestion, bool]] | None = None):
    """The export's rows after the header: the (given or all) suggestions numbered from 1, a blank
    row, then the year's figures with their definitions."""
    for index, (suggestion, carried) in enumerate(book.rows if rows is None else rows, start=1):
        yield [index, *row_values(session, suggestion, carried)]
    yield []
    values = figures(session, book)
    for key, (label, definition) in FIGURES.items():
        value = values[key]
        shown = "—" if value is None else (f"{value:.1%}" if key.endswith("rate") else value)
        yield [label, shown, definition]


def export_xlsx(session: Session, book: Ledger) -> bytes:
    """The 台账 in the office's layout (`LAYOUT`), figures below the rows."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(f"{book.year}年代表建议台账")
    sheet.append([f"{book.year}年代表建议办理台账"])
    sheet.append(list(LAYOUT))
    for row in sheet_rows(session, book):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def year_of(moment: datetime) -> int:
    return moment.astimezone(CHINA_TZ).year

