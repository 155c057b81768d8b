"""API of 代表建议: concentrations of cases, 问题清单 entries, drafting, review, 交办, 重点督办, 延期,
答复, 双满意 测评, the 台账 with its figures and its XLSX export. Views parse, call the domain
(`liaison.suggestion`), serialise; who sees what is `liaison.suggestion.access`."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from sqlalchemy import func, select

from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Deputy
from liaison.suggestion import access, ledger, lifecycle, timers
from liaison.suggestion import service as suggestions
from liaison.suggestion.models import ProblemEntry, Suggestion

from . import schemas as s
from .framework import Context, endpoint

DEPUTY, DEPARTMENT, STAFF = "deputy", "department", "staff"
ACCOUNTS = (DEPUTY, DEPARTMENT, STAFF)
WRITERS = (DEPUTY, STAFF)
CaseRefs = Field(default_factory=list, max_length=suggestions.MAX_LINKED_CASES,
                 description="关联诉求的编号或 id")
LongText = Field(min_length=1, max_length=5000)


# ---------------------------------------------------------------------------------------------- models
class ConcentrationQuery(s.Request):
    days: int = Field(default=90, ge=1, le=730, description="统计最近多少天")
    min_cases: int = Field(default=3, ge=2, le=1000, description="同类同网格至少多少件")


class ConcentrationOut(s.Out):
    kind: Literal["category_grid", "repeat_unsatisfied"]
    category: str | None
    grid: str | None
    count: int
    case_numbers: list[str]


class EntryIn(s.Request):
    title: str = Field(min_length=1, max_length=100)
    cases: list[str] = CaseRefs


class EntryCasesIn(s.Request):
    cases: list[str] = Field(min_length=1, max_length=suggestions.MAX_LINKED_CASES)


class ProblemEntryOut(s.Out):
    id: str
    title: str
    category: str | None
    status: str
    case_numbers: list[str]
    created_at: datetime


class SuggestionIn(s.Request):
    title: str = Field(min_length=1, max_length=100)
    problems: str = LongText
    proposals: str = LongText
    entry: str | None = Field(default=None, min_length=1, max_length=24, description="问题清单 id")
    cases: list[str] = CaseRefs
    cosigners: list[str] = Field(default_factory=list, max_length=50, description="附议代表编码")


class SuggestionReviewIn(s.Request):
    decision: Literal["pass", "send_back", "reject"]
    note: str | None = Field(default=None, max_length=500)


class AssignIn(s.Request):
    lead_department: str = s.Code
    co_departments: list[str] = Field(default_factory=list, max_length=20)
    nature: Literal["individual", "common"] = "individual"
    key_supervision: bool = False


class SupervisionIn(s.Request):
    kind: Literal["leader", "task_force", "meeting", "letter", "interview"]
    note: str = Field(min_length=1, max_length=1000)


class SuggestionExtensionIn(s.Request):
    months: int = Field(ge=1, le=6)
    reason: str = s.Reason


class AnswerIn(s.Request):
    category: Literal["A", "B", "C"]
    text: str = LongText


class SuggestionRatingIn(s.Request):
    value: s.RatingValue
    comment: str | None = Field(default=None, max_length=500)


class SuggestionNoteIn(s.Request):
    note: str = Field(min_length=1, max_length=1000)


class SuggestionListQuery(s.PageQuery):
    status: str | None = Field(default=None, max_length=200)


class LedgerQuery(s.Request):
    year: int | None = Field(default=None, ge=2000, le=2100)


class SuggestionEventOut(s.Out):
    at: datetime
    actor_kind: str
    action: str
    label: str
    detail: dict


class DepartmentRef(s.Out):
    code: str
    name: str
    role: Literal["lead", "co"]


class DeputyRef(s.Out):
    code: str
    name: str
    role: Literal["lead", "cosigner"]


class SuggestionOut(s.Out):
    id: str
    number: str
    title: str
    problems: str
    proposals: str
    status: str
    status_label: str
    review_step: str | None
    nature: str
    key_supervision: bool
    round: int
    deputies: list[DeputyRef]
    departments: list[DepartmentRef]
    case_numbers: list[str]
    assigned_at: datetime | None
    deadline: datetime | None
    overdue: bool
    answer_category: str | None
    answer_text: str | None
    ratings: dict[str, str]
    allowed_actions: list[str]
    timeline: list[SuggestionEventOut] | None = None


class SuggestionFigureOut(s.Out):
    key: str
    label: str
    definition: str
    value: float | int | None


class LedgerRowOut(s.Out):
    id: str
    number: str
    title: str
    status: str
    status_label: str
    nature: str
    answer_category: str | None
    round: int
    deadline: datetime | None
    cross_year: bool


class SuggestionLedgerOut(s.Out):
    year: int
    figures: list[SuggestionFigureOut]
    rows: list[LedgerRowOut]


class SuggestionFileOut(s.Out):
    filename: str
    content_type: str
    content_base64: str


# ---------------------------------------------------------------------------------------------- helpers
def _suggestion(ctx: Context, public_id: str, lock: bool = False) -> Suggestion:
    return access.get(ctx.session, ctx.principal, public_id, lock=lock)


def _visible(ctx: Context, public_id: str) -> None:
    _suggestion(ctx, public_id)


def _entry_visible(ctx: Context, public_id: str) -> None:
    access.get_entry(ctx.session, ctx.principal, public_id)


def _out(ctx: Context, suggestion: Suggestion, *, detail: bool = False) -> SuggestionOut:
    session = ctx.session
    codes = dict(session.execute(select(Deputy.id, Deputy.code)).all())
    names = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    step = suggestions.current_step(session, suggestion)
    given = suggestions.round_ratings(session, suggestion)
    ratings = {side: given[rater] for side, rater in (("deputy", f"deputy:{suggestion.lead_deputy_id}"),
                                                      ("committee", suggestions.COMMITTEE)) if rater in given}
    events = None
    if detail:
        events = [SuggestionEventOut(at=e.at, actor_kind=e.actor_kind, action=e.action,
                           label=(e.detail or {}).get("label", e.action),
                           detail={k: v for k, v in (e.detail or {}).items() if k != "label"})
                  for e in suggestions.timeline(session, suggestion)]
    return SuggestionOut(
        id=suggestion.public_id, number=suggestion.number, title=suggestion.title,
        problems=suggestion.problems, proposals=suggestion.proposals, status=suggestion.status,
        status_label=lifecycle.STATUS_LABELS[suggestion.status], review_step=step["label"] if step else None,
        nature=suggestion.nature, key_supervision=suggestion.key_supervision, round=suggestion.round,
        deputies=[DeputyRef(code=codes[d], name=names[d], role=role)
                  for d, role in suggestions.deputies_of(session, suggestion)],
        departments=[DepartmentRef(code=d.code, name=d.name, role=role)
                     for d, role in suggestions.departments_of(session, suggestion)],
        case_numbers=[c.number for c in suggestions.cases_of(session, suggestion)],
        assigned_at=suggestion.assigned_at, deadline=suggestion.deadline,
        overdue=timers.is_overdue(suggestion), answer_category=suggestion.answer_category,
        answer_text=suggestion.answer_text, ratings=ratings,
        allowed_actions=access.allowed_actions(session, ctx.principal, suggestion, step.get("by") if step else None),
        timeline=events)


def _entry_out(ctx: Context, entry: ProblemEntry) -> ProblemEntryOut:
    return ProblemEntryOut(id=entry.public_id, title=entry.title, category=entry.category, status=entry.status,
                    case_numbers=[c.number for c in suggestions.entry_cases(ctx.session, entry)],
                    created_at=entry.created_at)


# ------------------------------------------------------------------------------------ from cases to entries
@endpoint("GET", "/suggestion-concentrations", summary="诉求集中情况（同类同网格、反复不满意），供整理问题清单",
          roles=WRITERS, query=ConcentrationQuery, response=list[ConcentrationOut], tag="suggestions")
def list_concentrations(ctx: Context):
    now = utcnow()
    return suggestions.concentrations(ctx.session, ctx.principal, now - timedelta(days=ctx.query.days), now,
                                      min_cases=ctx.query.min_cases)


@endpoint("POST", "/problem-entries", summary="新建问题清单条目（可同时关联本人可见的诉求）", roles=WRITERS,
          body=EntryIn, response=ProblemEntryOut, status=201, tag="suggestions")
def create_problem_entry(ctx: Context):
    return _entry_out(ctx, suggestions.create_entry(ctx.session, ctx.principal, ctx.body.title, ctx.body.cases))


@endpoint("GET", "/problem-entries", summary="问题清单（县级工委：全部；其他：本人整理的）", roles=WRITERS,
          response=list[ProblemEntryOut], tag="suggestions")
def list_problem_entries(ctx: Context):
    rows = ctx.session.scalars(select(ProblemEntry).where(access.entry_condition(ctx.principal))
                               .order_by(ProblemEntry.id.desc()).limit(200))
    return [_entry_out(ctx, e) for e in rows]


@endpoint("POST", "/problem-entries/<public_id>/cases", summary="向问题清单条目添加诉求", roles=WRITERS,
          body=EntryCasesIn, response=ProblemEntryOut, visible=_entry_visible, tag="suggestions")
def add_problem_entry_cases(ctx: Context, public_id: str):
    entry = access.get_entry(ctx.session, ctx.principal, public_id)
    suggestions.add_entry_cases(ctx.session, ctx.principal, entry, ctx.body.cases)
    return _entry_out(ctx, entry)


# ---------------------------------------------------------------------------------------------- suggestions
@endpoint("POST", "/suggestions", summary="代表起草建议（本人领衔，可关联问题清单、诉求和附议代表）", roles=(DEPUTY,),
          body=SuggestionIn, response=SuggestionOut, status=201, tag="suggestions")
def create_suggestion(ctx: Context):
    body: SuggestionIn = ctx.body
    entry = access.get_entry(ctx.session, ctx.principal, body.entry) if body.entry else None
    suggestion = suggestions.draft(ctx.session, ctx.principal, title=body.title, problems=body.problems,
                                   proposals=body.proposals, case_refs=body.cases, entry=entry,
                                   cosigner_codes=body.cosigners)
    return _out(ctx, suggestion)


@endpoint("GET", "/suggestions", summary="建议列表（代表：本人领衔或附议；部门：交本部门办理；工委：辖区）",
          roles=ACCOUNTS, query=SuggestionListQuery, response=s.Page[SuggestionOut], tag="suggestions")
def list_suggestions(ctx: Context):
    q: SuggestionListQuery = ctx.query
    conditions = [access.condition(ctx.principal)]
    if q.status:
        conditions.append(Suggestion.status.in_([x.strip() for x in q.status.split(",") if x.strip()]))
    total = ctx.session.scalar(select(func.count()).select_from(Suggestion).where(*conditions)) or 0
    rows = ctx.session.scalars(select(Suggestion).where(*conditions).order_by(Suggestion.id.desc())
                               .offset((q.page - 1) * q.page_size).limit(q.page_size))
    return s.Page[SuggestionOut](items=[_out(ctx, x) for x in rows], page=q.page, page_size=q.page_size,
                                 total=total)


@endpoint("GET", "/suggestions/<public_id>", summary="建议详情与办理时间线", roles=ACCOUNTS,
          response=SuggestionOut, tag="suggestions")
def get_suggestion(ctx: Context, public_id: str):
    return _out(ctx, _suggestion(ctx, public_id), detail=True)


@endpoint("POST", "/suggestions/<public_id>/submit", summary="领衔代表提交审查", roles=(DEPUTY,),
          response=SuggestionOut, visible=_visible, tag="suggestions")
def submit_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.submit(ctx.session, ctx.principal, suggestion)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/review", summary="审查意见（通过 / 退回修改 / 不予立案），按本县审查环节",
          roles=(STAFF,), body=SuggestionReviewIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def review_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.review(ctx.session, ctx.principal, suggestion, ctx.body.decision, ctx.body.note)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/assign", summary="交办（主办单位、协办单位，个性/共性，重点督办）",
          roles=(STAFF,), body=AssignIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def assign_suggestion(ctx: Context, public_id: str):
    body: AssignIn = ctx.body
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.assign(ctx.session, ctx.principal, suggestion, lead_code=body.lead_department,
                       co_codes=body.co_departments, nature=body.nature, key_supervision=body.key_supervision)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/supervision", summary="重点督办记录（领衔领导、专班、协调会、督办函、约谈）",
          roles=(STAFF,), body=SupervisionIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def supervise_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.supervise(ctx.session, ctx.principal, suggestion, ctx.body.kind, ctx.body.note)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/extension", summary="批准延期答复（自交办起最长六个月）", roles=(STAFF,),
          body=SuggestionExtensionIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def extend_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.extend(ctx.session, ctx.principal, suggestion, ctx.body.months, ctx.body.reason)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/answer", summary="主办单位答复（A 已解决 / B 列入计划 / C 留作参考）",
          roles=(DEPARTMENT,), body=AnswerIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def answer_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.answer(ctx.session, ctx.principal, suggestion, ctx.body.category, ctx.body.text)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/rating", summary="双满意测评（提出建议的代表；县级工委代表常委会）",
          roles=WRITERS, body=SuggestionRatingIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def rate_suggestion(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.rate(ctx.session, ctx.principal, suggestion, ctx.body.value, ctx.body.comment)
    return _out(ctx, suggestion)


@endpoint("POST", "/suggestions/<public_id>/plan-completed", summary="登记 B 类或共性建议已落实（移出跨年度台账）",
          roles=(DEPARTMENT, STAFF), body=SuggestionNoteIn, response=SuggestionOut, visible=_visible, tag="suggestions")
def complete_suggestion_plan(ctx: Context, public_id: str):
    suggestion = _suggestion(ctx, public_id, lock=True)
    suggestions.complete_plan(ctx.session, ctx.principal, suggestion, ctx.body.note)
    return _out(ctx, suggestion)


# ---------------------------------------------------------------------------------------------- 台账
def _year(ctx: Context) -> int:
    return ctx.query.year or utcnow().astimezone(CHINA_TZ).year


@endpoint("GET", "/suggestion-ledger", summary="建议台账与指标（件数、办结率、双满意率、二次办理、跨年度）",
          roles=(STAFF,), query=LedgerQuery, response=SuggestionLedgerOut, tag="suggestions")
def suggestion_ledger(ctx: Context):
    book = ledger.ledger(ctx.session, ctx.principal, _year(ctx))
    values = ledger.figures(ctx.session, book)
    return SuggestionLedgerOut(
        year=book.year,
        figures=[SuggestionFigureOut(key=k, label=label, definition=d, value=values[k])
                 for k, (label, d) in ledger.FIGURES.items()],
        rows=[LedgerRowOut(id=x.public_id, number=x.number, title=x.title, status=x.status,
                           status_label=lifecycle.STATUS_LABELS[x.status], nature=x.nature,
                           answer_category=x.answer_category, round=x.round, deadline=x.deadline,
                           cross_year=carried) for x, carried in book.rows])


@endpoint("GET", "/suggestion-ledger/export", summary="导出建议台账（XLSX）", roles=(STAFF,), query=LedgerQuery,
          response=SuggestionFileOut, tag="suggestions")
def export_suggestion_ledger(ctx: Context):
    book = ledger.ledger(ctx.session, ctx.principal, _year(ctx))
    content = ledger.export_xlsx(ctx.session, book)
    return SuggestionFileOut(filename=f"代表建议台账-{book.year}.xlsx",
                   content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   content_base64=base64.b64encode(content).decode("ascii"))
