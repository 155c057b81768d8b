"""Console pages of 代表建议: the cross-year 台账 with its figures, filters and XLSX export; a
suggestion's page (linked cases by number and status only, the timeline, the 双满意 ratings) with
the actions the caller may take now; the 问题清单 from concentrated cases and drafting from it.

Who sees and may do what is `liaison.suggestion.access`, what may happen in which status
`liaison.suggestion.lifecycle`; a form is shown only when both allow it, and a POST is checked again
by the domain (a refused one changes nothing).
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from flask import Response, flash, g, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from liaison.case import access as case_access
from liaison.case.lifecycle import STATUS_LABELS as CASE_STATUS_LABELS
from liaison.case.models import Case
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.errors import DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Account, Department, Deputy
from liaison.people.service import DEPARTMENT, DEPUTY, STAFF, Principal
from liaison.suggestion import access, ledger, lifecycle, timers
from liaison.suggestion import service as suggestions
from liaison.suggestion.models import ProblemEntry, Suggestion, SuggestionRating

from . import export
from . import suggestion_forms as sforms
from .views import DESK_PAGES, _error_message, _error_status, bp, signed_in

# The actions on a suggestion's page: the form, the button, what is said when done.
ACTIONS: dict[str, tuple[type | None, str, str]] = {
    "submit": (None, "提交审查", "已提交审查"),
    "withdraw": (None, "撤回建议", "已撤回"),
    "review": (sforms.SuggestionReviewForm, "提交审查意见", "已记录审查意见"),
    "assign": (sforms.AssignForm, "交办", "已交办，主办和协办单位已收到通知"),
    "set_nature": (sforms.NatureForm, "确定性质", "已确定个性/共性"),
    "supervise": (sforms.SuperviseForm, "记录重点督办", "已记录重点督办"),
    "extend": (sforms.ExtendForm, "批准延期", "已延期"),
    "answer": (sforms.AnswerForm, "答复", "已答复，代表和常委会将进行测评"),
    "rate": (sforms.SuggestionRateForm, "提交测评", "已记录测评"),
    "complete_plan": (sforms.NoteForm, "登记已落实", "已登记落实，移出跨年度台账"),
}
DETAIL_LABELS = {"step_label": "环节", "note": "意见", "reason": "理由", "lead": "主办", "co": "协办",
                 "nature_label": "性质", "category_label": "答复类别", "text": "答复", "value_label": "测评",
                 "kind_label": "督办方式", "cosigners": "附议代表", "cases": "关联诉求", "round": "轮次",
                 "deputy": "代表测评", "committee": "常委会测评"}
# A department handler's account sees these pages too (the suggestions handed to its department).
DESK_PAGES.update({"console.suggestions_page", "console.export_suggestions", "console.suggestion_page",
                   "console.suggestion_action"})
CASE_REFS = re.compile(r"[\s,，;；、]+")


def _refused(error: Exception):
    return render_template("console/error.html", title="无法办理", message=_error_message(error)), \
        _error_status(error)


def _first_error(form) -> str:
    return next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")


def _this_year() -> int:
    return utcnow().astimezone(CHINA_TZ).year


def _year(value: str | None) -> int:
    if not value:
        return _this_year()
    if not value.isdigit() or not 2000 <= int(value) <= 2100:
        raise ledger.BadFilter("年度无效", field="year")
    return int(value)


def _ledger_params() -> dict[str, Any]:
    args = request.args
    carried = {"yes": True, "no": False, "": None}.get(args.get("carried", ""), "bad")
    if carried == "bad":
        raise ledger.BadFilter("跨年度筛选条件无效", field="carried")
    return {"status": args.get("status") or None, "nature": args.get("nature") or None,
            "department": args.get("department") or None, "carried": carried}


def _departments(session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))


# ---------------------------------------------------------------------------------------------- 台账
@bp.get("/suggestions")
@signed_in
def suggestions_page(session):
    try:
        year = _year(request.args.get("year"))
        params = _ledger_params()
        book = ledger.ledger(session, g.principal, year)
        rows = ledger.filtered(session, book, **params)
    except DomainError as error:
        return render_template("console/error.html", title="筛选条件无效", message=_error_message(error)), 400
    values = ledger.figures(session, book)
    shown = [(item, carried, ledger.row_values(session, item, carried)) for item, carried in rows]
    return render_template(
        "console/suggestions.html", year=year, rows=shown, layout=ledger.LAYOUT, figures=ledger.FIGURES,
        values=values, statuses=lifecycle.STATUS_LABELS, natures=suggestions.NATURES,
        departments=_departments(session), args=request.args, now=utcnow(), is_overdue=timers.is_overdue,
        years=range(_this_year() + 1, _this_year() - 6, -1))


@bp.get("/suggestions/export.xlsx")
@signed_in
def export_suggestions(session):
    try:
        year = _year(request.args.get("year"))
        params = _ledger_params()
        ledger.filtered(session, ledger.ledger(session, g.principal, year), **params)  # refuse before streaming
    except DomainError as error:
        return render_template("console/error.html", title="筛选条件无效", message=_error_message(error)), 400
    account_id, county_scope = g.principal.account.id, g.county_scope

    def chunks():
        # The export outlives the request's unit of work: its own session, the same account and county.
        with tenant.use(county_scope), db.session_scope() as reading:
            account = reading.get(Account, account_id)
            principal = Principal(account.role, account=account)
            book = ledger.ledger(reading, principal, year)
            rows = ledger.filtered(reading, book, **params)
            yield from export.stream_workbook(
                f"{year}年代表建议台账", ledger.LAYOUT, ledger.sheet_rows(reading, book, rows),
                title=f"{year}年代表建议办理台账", widths=[6, 11, 40, 10, 16, 18, 22, 6, 8, 11, 11, 11, 8, 10, 10,
                                                          6, 12, 7])

    response = Response(stream_with_context(chunks()), mimetype=export.XLSX_MIME)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"suggestions-{year}.xlsx\"; filename*=UTF-8''{quote(f'代表建议台账-{year}.xlsx')}")
    return response


# ---------------------------------------------------------------------------------------------- 建议
def _step_by(session, suggestion: Suggestion) -> str | None:
    step = suggestions.current_step(session, suggestion)
    return step.get("by") if step else None


def _rater(principal: Principal) -> str:
    return f"deputy:{principal.account.deputy_id}" if principal.role == DEPUTY else suggestions.COMMITTEE


def _allowed(session, suggestion: Suggestion) -> list[str]:
    """The actions to offer: the domain's, less what this caller has already done this round."""
    allowed = access.allowed_actions(session, g.principal, suggestion, _step_by(session, suggestion))
    if "rate" in allowed and _rater(g.principal) in suggestions.round_ratings(session, suggestion):
        allowed.remove("rate")
    if "complete_plan" in allowed and (suggestion.plan_completed_at is not None
                                       or not ledger.needs_follow_up(suggestion)):
        allowed.remove("complete_plan")
    return [name for name in allowed if name in ACTIONS]


def _form(session, action: str, suggestion: Suggestion):
    form_class = ACTIONS[action][0]
    if form_class is None:
        from .forms import PlainForm

        return PlainForm(prefix=action)
    form = form_class(prefix=action)
    if action == "assign":
        choices = [(d.code, d.name) for d in _departments(session)]
        form.lead.choices = [("", "（请选择）")] + choices
        form.co.choices = choices
    if action == "set_nature" and not form.nature.data:
        form.nature.data = suggestion.nature
    return form


def _actor_label(session, kind: str, actor_id: int | None) -> str:
    if kind == "system":
        return "系统"
    if kind == STAFF and actor_id:
        account = session.get(Account, actor_id)
        return f"工委 {account.name}" if account else "工委"
    if kind == DEPUTY and actor_id:
        deputy = session.get(Deputy, actor_id)
        return f"代表 {deputy.name}" if deputy else "代表"
    if kind == DEPARTMENT and actor_id:
        department = session.get(Department, actor_id)
        return department.name if department else "承办单位"
    return kind


def _timeline(session, suggestion: Suggestion) -> list[dict[str, Any]]:
    rating_label = suggestions.RATING_VALUES.get
    out = []
    for event in suggestions.timeline(session, suggestion):
        detail = event.detail or {}
        shown = []
        for key, label in DETAIL_LABELS.items():
            value = detail.get(key)
            if value in (None, "", []):
                continue
            if key in ("deputy", "committee"):
                value = rating_label(value, value)
            if isinstance(value, list):
                value = "、".join(str(v) for v in value)
            shown.append((label, value))
        label = detail.get("label") or lifecycle.ACTIONS.get(event.action, None)
        out.append({"at": event.at, "actor": _actor_label(session, event.actor_kind, event.actor_id),
                    "label": label.label if isinstance(label, lifecycle.Transition) else (label or event.action),
                    "status": lifecycle.STATUS_LABELS.get(event.to_status, "")
                    if event.to_status != event.from_status else "", "detail": shown})
    return out


def _linked_cases(session, suggestion: Suggestion) -> list[dict[str, Any]]:
    """Number, category and status of each linked case: nothing about the residents. Linked to the
    case's page only where the caller may see that case."""
    linked = suggestions.cases_of(session, suggestion)
    visible = set()
    if linked and g.principal.role in (STAFF, DEPUTY, DEPARTMENT):
        visible = set(session.scalars(select(Case.id).where(Case.id.in_([c.id for c in linked]),
                                                             case_access.case_condition(g.scope))))
    return [{"number": c.number, "category": c.category or "—",
             "status": CASE_STATUS_LABELS.get(c.status, c.status),
             "public_id": c.public_id if c.id in visible else None} for c in linked]


def _ratings(session, suggestion: Suggestion) -> list[dict[str, Any]]:
    names = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    rows = session.scalars(select(SuggestionRating).where(SuggestionRating.suggestion_id == suggestion.id)
                           .order_by(SuggestionRating.round, SuggestionRating.id))
    out = []
    for row in rows:
        if row.rater == suggestions.COMMITTEE:
            who = "常委会"
        else:
            deputy_id = int(row.rater.split(":", 1)[1])
            who = f"代表 {names.get(deputy_id, '')}" + ("（领衔）" if deputy_id == suggestion.lead_deputy_id else "")
        out.append({"round": row.round, "who": who, "value": suggestions.RATING_VALUES.get(row.value, row.value),
                    "comment": row.comment, "at": row.created_at})
    return out


def _render(session, suggestion: Suggestion, *, status: int = 200, error: str | None = None,
            failed: dict[str, Any] | None = None):
    allowed = _allowed(session, suggestion)
    action_forms = {name: _form(session, name, suggestion) for name in allowed}
    action_forms.update({k: v for k, v in (failed or {}).items() if k in action_forms})
    names = dict(session.execute(select(Deputy.id, Deputy.name)).all())
    step = suggestions.current_step(session, suggestion)
    return render_template(
        "console/suggestion.html", s=suggestion, status_label=lifecycle.STATUS_LABELS[suggestion.status],
        step=step, steps=suggestions.review_steps(session), overdue=timers.is_overdue(suggestion),
        deputies=[(names.get(d, ""), role) for d, role in suggestions.deputies_of(session, suggestion)],
        departments=suggestions.departments_of(session, suggestion), cases=_linked_cases(session, suggestion),
        timeline=_timeline(session, suggestion), ratings=_ratings(session, suggestion), forms=action_forms,
        actions=ACTIONS, natures=suggestions.NATURES, categories=suggestions.ANSWER_CATEGORIES,
        follow_up=ledger.needs_follow_up(suggestion), error=error,
        rater_label="常委会测评（县级工委代为录入）" if g.principal.role == STAFF else "代表测评"), status


@bp.get("/suggestions/<public_id>")
@signed_in
def suggestion_page(session, public_id: str):
    try:
        suggestion = access.get(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    return _render(session, suggestion)


@bp.post("/suggestions/<public_id>/<action>")
@signed_in
def suggestion_action(session, public_id: str, action: str):
    if action not in ACTIONS:
        return render_template("console/error.html", title="页面不存在", message="没有这项操作。"), 404
    try:
        suggestion = access.get(session, g.principal, public_id, lock=True)
    except DomainError as error:
        return _refused(error)
    form = _form(session, action, suggestion)
    if not form.validate():
        return _render(session, suggestion, status=422, error=_first_error(form), failed={action: form})
    try:
        with session.begin_nested():  # a refusal leaves the suggestion as it was
            _perform(session, action, suggestion, form)
    except DomainError as error:
        session.expire_all()
        return _render(session, suggestion, status=_error_status(error), error=_error_message(error),
                       failed={action: form})
    flash(ACTIONS[action][2], "info")
    return redirect(url_for("console.suggestion_page", public_id=suggestion.public_id), 303)


def _perform(session, action: str, suggestion: Suggestion, form) -> None:
    principal = g.principal
    if action == "submit":
        suggestions.submit(session, principal, suggestion)
    elif action == "withdraw":
        suggestions.withdraw(session, principal, suggestion)
    elif action == "review":
        suggestions.review(session, principal, suggestion, form.decision.data, (form.note.data or "").strip() or None)
    elif action == "assign":
        suggestions.assign(session, principal, suggestion, lead_code=form.lead.data, co_codes=form.co.data or [],
                           nature=form.nature.data, key_supervision=bool(form.key_supervision.data))
    elif action == "set_nature":
        suggestions.set_nature(session, principal, suggestion, form.nature.data)
    elif action == "supervise":
        suggestions.supervise(session, principal, suggestion, form.kind.data, form.note.data)
    elif action == "extend":
        suggestions.extend(session, principal, suggestion, form.months.data, form.reason.data)
    elif action == "answer":
        suggestions.answer(session, principal, suggestion, form.category.data, form.text.data)
    elif action == "rate":
        suggestions.rate(session, principal, suggestion, form.value.data, form.comment.data)
    elif action == "complete_plan":
        suggestions.complete_plan(session, principal, suggestion, form.note.data)


# ------------------------------------------------------------------------------------------ 问题清单
WRITERS = (STAFF, DEPUTY)


def _no_entries():
    return render_template("console/error.html", title="无权访问",
                           message="问题清单由工委工作人员和代表整理。"), 403


def _problems_page(session, form, *, status: int = 200, error: str | None = None):
    try:
        days = max(1, min(int(request.args.get("days", "90")), 730))
    except ValueError:
        days = 90
    now = utcnow()
    found = suggestions.concentrations(session, g.principal, now - timedelta(days=days), now)
    entries = list(session.scalars(select(ProblemEntry).where(access.entry_condition(g.principal))
                                   .order_by(ProblemEntry.id.desc()).limit(200)))
    counts = {e.id: len(suggestions.entry_cases(session, e)) for e in entries}
    return render_template("console/problems.html", groups=found, entries=entries, counts=counts, form=form,
                           days=days, error=error), status


@bp.get("/problems")
@signed_in
def problems_page(session):
    if g.principal.role not in WRITERS:
        return _no_entries()
    return _problems_page(session, sforms.EntryForm(prefix="entry"))


@bp.post("/problems")
@signed_in
def create_problem(session):
    if g.principal.role not in WRITERS:
        return _no_entries()
    form = sforms.EntryForm(prefix="entry")
    if not form.validate():
        return _problems_page(session, form, status=422, error=_first_error(form))
    refs = [r for r in CASE_REFS.split(form.cases.data or "") if r]
    try:
        with session.begin_nested():
            entry = suggestions.create_entry(session, g.principal, form.title.data, refs)
    except DomainError as error:
        return _problems_page(session, form, status=_error_status(error), error=_error_message(error))
    flash("已列入问题清单", "info")
    return redirect(url_for("console.problem_page", public_id=entry.public_id), 303)


def _render_entry(session, entry: ProblemEntry, *, status: int = 200, error: str | None = None, form=None):
    linked = suggestions.entry_cases(session, entry)
    drafted = session.scalar(select(Suggestion).where(Suggestion.entry_id == entry.id, access.condition(g.principal)))
    can_draft = g.principal.role == DEPUTY and entry.status == "open"
    if can_draft and form is None:
        form = sforms.DraftForm(prefix="draft")
        if not form.title.data:
            form.title.data = f"关于{entry.title}的建议"
    return render_template("console/problem.html", entry=entry, drafted=drafted, form=form if can_draft else None,
                           cases=[{"number": c.number, "category": c.category or "—",
                                   "status": CASE_STATUS_LABELS.get(c.status, c.status), "public_id": c.public_id}
                                  for c in linked], error=error), status


@bp.get("/problems/<public_id>")
@signed_in
def problem_page(session, public_id: str):
    if g.principal.role not in WRITERS:
        return _no_entries()
    try:
        entry = access.get_entry(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    return _render_entry(session, entry)


@bp.post("/problems/<public_id>/draft")
@signed_in
def draft_suggestion(session, public_id: str):
    if g.principal.role not in WRITERS:
        return _no_entries()
    try:
        entry = access.get_entry(session, g.principal, public_id)
    except DomainError as error:
        return _refused(error)
    form = sforms.DraftForm(prefix="draft")
    if g.principal.role != DEPUTY:
        return _render_entry(session, entry, status=403, error="建议由代表起草（领衔）。")
    if not form.validate():
        return _render_entry(session, entry, status=422, error=_first_error(form), form=form)
    cosigners = [c for c in CASE_REFS.split(form.cosigners.data or "") if c]
    try:
        with session.begin_nested():
            suggestion = suggestions.draft(session, g.principal, title=form.title.data, problems=form.problems.data,
                                           proposals=form.proposals.data, entry=entry, cosigner_codes=cosigners)
    except DomainError as error:
        session.expire_all()
        return _render_entry(session, entry, status=_error_status(error), error=_error_message(error), form=form)
    flash(f"已起草建议 {suggestion.number}，核对后请提交审查", "info")
    return redirect(url_for("console.suggestion_page", public_id=suggestion.public_id), 303)
