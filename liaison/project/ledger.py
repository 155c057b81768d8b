"""The 民生实事 project 台账 of a year and its XLSX export in the office's layout (like the suggestion
台账, `liaison.suggestion.ledger`): one row per chosen project with its lead department, 三色督办 light,
milestones, completion and 测评, the year's figures (`service.FIGURES`) below the rows."""
from __future__ import annotations

import io
from datetime import datetime

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.service import Principal
from liaison.project import access, lifecycle, service, timers
from liaison.project.models import LivelihoodProject

LAYOUT = ("序号", "项目名称", "年度", "牵头单位", "状态", "三色督办", "计划节点数", "已完成节点", "逾期未完成节点",
          "下一节点", "下一节点期限", "交办时间", "完成时间", "测评人次", "满意", "基本满意", "不满意", "满意率")


def _day(moment: datetime | None) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d") if moment is not None else ""


def projects_of(session: Session, principal: Principal, year: int) -> list[LivelihoodProject]:
    return list(session.scalars(select(LivelihoodProject).where(
        access.condition(principal), LivelihoodProject.year == year).order_by(LivelihoodProject.id)))


def row_values(session: Session, project: LivelihoodProject, now: datetime) -> list:
    milestones = timers.milestones_of(session, project)
    done = [m for m in milestones if m.done_at is not None]
    overdue = [m for m in milestones if m.done_at is None and now >= m.due_at]
    upcoming = next((m for m in sorted(milestones, key=lambda m: m.due_at) if m.done_at is None), None)
    counts = service.ratings_of(session, project)
    rated = sum(counts.values())
    satisfied = counts["satisfied"] + counts["basically_satisfied"]
    return [
        project.title, project.year, project.lead_department.name, lifecycle.STATUS_LABELS[project.status],
        "" if project.status == lifecycle.COMPLETED else lifecycle.COLOR_LABELS[project.color],
        len(milestones), len(done), len(overdue), upcoming.title if upcoming else "",
        _day(upcoming.due_at) if upcoming else "", _day(project.created_at), _day(project.completed_at),
        rated, counts["satisfied"], counts["basically_satisfied"], counts["unsatisfied"],
        f"{satisfied / rated:.1%}" if rated else "—",
    ]


def sheet_rows(session: Session, principal: Principal, year: int, now: datetime | None = None):
    """The export's rows after the header: the year's projects numbered from 1, a blank row, then the
    year's figures (`service.FIGURES`) with their definitions."""
    now = now or utcnow()
    for index, project in enumerate(projects_of(session, principal, year), start=1):
        yield [index, *row_values(session, project, now)]
    yield []
    values = service.figures(session, principal, year)
    for key, (label, definition) in service.FIGURES.items():
        value = values[key]
        shown = "—" if value is None else (f"{value:.1%}" if key.endswith("rate") else value)
        yield [label, shown, definition]


def export_xlsx(session: Session, principal: Principal, year: int, now: datetime | None = None) -> bytes:
    """The year's project 台账 in the office's layout (`LAYOUT`), figures below the rows."""
    now = now or utcnow()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(f"{year}年民生实事台账")
    sheet.append([f"{year}年民生实事项目推进台账"])
    sheet.append(list(LAYOUT))
    for row in sheet_rows(session, principal, year, now):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
