"""代表建议 services: from residents' cases to a 问题清单 entry, the deputy's draft, the county's review
steps, 交办 to a lead and co-handling departments, 重点督办, the 答复 (A/B/C), the 双满意 测评 with
二次办理, and telling the linked residents once what the suggestion achieved.

Every status change goes through `_transition` (the lifecycle table, a timeline entry, the timer);
every message to a person is a notice or an outbox row written in the caller's transaction.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.case import access as case_access
from liaison.case.models import Case, CaseFollower, Rating
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, INVALID, DomainError
from liaison.core.types import Actor
from liaison.core.workcalendar import CHINA_TZ
from liaison.messaging import outbox
from liaison.people.models import Department, Deputy, Grid
from liaison.people.service import DEPUTY, STAFF, Principal
from liaison.suggestion import access, lifecycle, timers
from liaison.suggestion.lifecycle import Status
from liaison.suggestion.models import (
    ProblemEntry,
    ProblemEntryCase,
    Suggestion,
    SuggestionCase,
    SuggestionDepartment,
    SuggestionDeputy,
    SuggestionEvent,
    SuggestionRating,
)

RATING_VALUES = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
ANSWER_CATEGORIES = {"A": "已解决或基本解决", "B": "列入计划逐步解决", "C": "因条件限制留作参考"}
NATURES = {"individual": "个性", "common": "共性"}
SUPERVISION_KINDS = {"leader": "确定领衔督办领导", "task_force": "成立督办专班", "meeting": "召开协调会",
                     "letter": "发出督办函", "interview": "约谈"}
COMMITTEE = "committee"
MAX_LINKED_CASES = 200


def _invalid(message: str, field: str | None = None, code: str = "invalid") -> DomainError:
    return DomainError(message, kind=INVALID, code=code, field=field)


def _actor(principal: Principal) -> Actor:
    if principal.role == STAFF:
        return Actor(STAFF, principal.account.id)
    return principal.actor()


def _event(session: Session, suggestion: Suggestion, actor: Actor, action: str, before: str | None,
           after: str | None, **detail: Any) -> SuggestionEvent:
    entry = SuggestionEvent(suggestion_id=suggestion.id, actor_kind=actor.kind, actor_id=actor.id,
                            action=action, from_status=before, to_status=after, detail=detail, at=utcnow())
    session.add(entry)
    return entry


def _transition(session: Session, suggestion: Suggestion, action: str, actor: Actor, *,
                reason: str | None = None, **detail: Any) -> SuggestionEvent:
    transition = lifecycle.check(action, suggestion.status, reason)
    before = suggestion.status
    if transition.target is not None:
        suggestion.status = transition.target
    suggestion.updated_at = utcnow()
    if reason:
        detail["reason"] = reason.strip()
    entry = _event(session, suggestion, actor, action, before, suggestion.status, label=transition.label,
                   **detail)
    timers.schedule(suggestion, timers.policy(session))
    return entry


def record(session: Session, suggestion: Suggestion, actor: Actor, action: str, *,
           reason: str | None = None, **detail: Any) -> SuggestionEvent:
    """Casework that leaves the status as it is (the lifecycle's CASEWORK rows)."""
    return _transition(session, suggestion, action, actor, reason=reason, **detail)


# ------------------------------------------------------------------------------- from cases to an entry
def concentrations(session: Session, principal: Principal, since: datetime, until: datetime, *,
                   min_cases: int = 3) -> list[dict[str, Any]]:
    """Where cases concentrate in the caller's scope: the same category in the same grid over the
    period (at least `min_cases`), and cases rated 不满意 in the period or in a second round (反复不满意)."""
    scope = case_access.scope_of(session, principal)
    visible = case_access.case_condition(scope)
    in_period = (visible, Case.created_at >= since, Case.created_at < until, Case.merged_into_id.is_(None),
                 Case.category.is_not(None), Case.grid_id.is_not(None))
    groups = session.execute(
        select(Case.category, Case.grid_id, func.count()).where(*in_period)
        .group_by(Case.category, Case.grid_id).having(func.count() >= min_cases)
        .order_by(func.count().desc())).all()
    grid_names = dict(session.execute(select(Grid.id, Grid.name)).all())
    found = []
    for category, grid_id, count in groups:
        numbers = session.scalars(select(Case.number).where(
            *in_period, Case.category == category, Case.grid_id == grid_id).order_by(Case.number)).all()
        found.append({"kind": "category_grid", "category": category, "grid": grid_names.get(grid_id),
                      "count": count, "case_numbers": list(numbers)})
    repeat = session.scalars(
        select(Case.number).join(Rating, Rating.case_id == Case.id)
        .where(visible, Rating.value == "unsatisfied", Rating.created_at >= since, Rating.created_at < until)
        .distinct()).all()
    reopened = session.scalars(select(Case.number).where(visible, Case.round >= 2,
                                                          Case.updated_at >= since)).all()
    numbers = sorted(set(repeat) | set(reopened))
    if numbers:
        found.append({"kind": "repeat_unsatisfied", "category": None, "grid": None, "count": len(numbers),
                      "case_numbers": numbers})
    return found


def _visible_cases(session: Session, principal: Principal, refs: Iterable[str]) -> list[Case]:
    refs = list(dict.fromkeys(r.strip() for r in refs if r and r.strip()))
    if not refs:
        raise _invalid("请至少选择一件诉求", "cases")
    if len(refs) > MAX_LINKED_CASES:
        raise _invalid(f"一次最多关联 {MAX_LINKED_CASES} 件诉求", "cases")
    scope = case_access.scope_of(session, principal)
    found = []
    for ref in refs:
        case = session.scalar(select(Case).where(case_access.case_reference(ref),
                                                 case_access.case_condition(scope)))
        if case is None:
            raise DomainError(f"诉求 {ref} 不存在", kind=INVALID, code="unknown_case", field="cases")
        found.append(case)
    return found


def create_entry(session: Session, principal: Principal, title: str,
                 case_refs: Iterable[str] = ()) -> ProblemEntry:
    """A 问题清单 entry (staff or a deputy), with the cases the caller may see; more may be added."""
    if principal.role not in (STAFF, DEPUTY):
        raise access.Forbidden("只有工委工作人员和代表可以整理问题清单")
    title = (title or "").strip()
    if not title:
        raise _invalid("请填写问题标题", "title")
    entry = ProblemEntry(title=title[:100], created_by=principal.account.id)
    session.add(entry)
    session.flush()
    refs = list(case_refs)
    if refs:
        add_entry_cases(session, principal, entry, refs)
    return entry


def add_entry_cases(session: Session, principal: Principal, entry: ProblemEntry,
                    case_refs: Iterable[str]) -> list[Case]:
    """Put more cases (that the caller may see) on an open entry; its category and grid follow them."""
    if entry.status != "open":
        raise DomainError("该问题已起草为建议，不能再添加诉求", kind=CONFLICT, code="entry_drafted")
    found = _visible_cases(session, principal, case_refs)
    have = set(session.scalars(select(ProblemEntryCase.case_id).where(ProblemEntryCase.entry_id == entry.id)))
    session.add_all(ProblemEntryCase(entry_id=entry.id, case_id=c.id) for c in found if c.id not in have)
    session.flush()
    linked = entry_cases(session, entry)
    categories = {c.category for c in linked}
    grids = {c.grid_id for c in linked}
    entry.category = categories.pop() if len(categories) == 1 else None
    entry.grid_id = grids.pop() if len(grids) == 1 else None
    return linked


def entry_cases(session: Session, entry: ProblemEntry) -> list[Case]:
    return list(session.scalars(select(Case).join(ProblemEntryCase, ProblemEntryCase.case_id == Case.id)
                                .where(ProblemEntryCase.entry_id == entry.id).order_by(Case.id)))


# ------------------------------------------------------------------------------------------------ draft
def _next_number(session: Session, now: datetime) -> str:
    year = now.astimezone(CHINA_TZ).year
    last = session.scalar(select(func.max(Suggestion.number)).where(Suggestion.number.like(f"{year}-%")))
    return f"{year}-{int(last[5:]) + 1 if last else 1:04d}"


def draft(session: Session, principal: Principal, *, title: str, problems: str, proposals: str,
          case_refs: Iterable[str] = (), entry: ProblemEntry | None = None,
          cosigner_codes: Iterable[str] = ()) -> Suggestion:
    """A deputy drafts a suggestion (they are its lead deputy) from an entry and/or cases they see."""
    if principal.role != DEPUTY or principal.account.deputy_id is None:
        raise access.Forbidden("只有代表可以起草建议")
    title, problems, proposals = (title or "").strip(), (problems or "").strip(), (proposals or "").strip()
    for value, name, label in ((title, "title", "标题"), (problems, "problems", "问题"),
                               (proposals, "proposals", "建议")):
        if not value:
            raise _invalid(f"请填写{label}", name)
    if entry is not None and entry.status != "open":
        raise DomainError("该问题已起草为建议", kind=CONFLICT, code="entry_drafted")
    cases = entry_cases(session, entry) if entry is not None else []
    refs = list(case_refs)
    if refs:
        cases += [c for c in _visible_cases(session, principal, refs) if c.id not in {x.id for x in cases}]
    lead = principal.account.deputy_id
    cosigners = []
    for code in dict.fromkeys(c.strip() for c in cosigner_codes if c and c.strip()):
        deputy = session.scalar(select(Deputy).where(Deputy.code == code))
        if deputy is None:
            raise DomainError(f"代表 {code} 不存在", kind=INVALID, code="unknown_deputy", field="cosigners")
        if deputy.id != lead:
            cosigners.append(deputy)
    now = utcnow()
    suggestion = Suggestion(number=_next_number(session, now), entry_id=entry.id if entry else None,
                            title=title[:100], problems=problems, proposals=proposals, lead_deputy_id=lead,
                            status=Status.DRAFT, review_step=0, round=1, escalation_level=0)
    for _attempt in range(5):  # two drafts may take the same number at once: take the next one
        try:
            with session.begin_nested():
                session.add(suggestion)
                session.flush()
            break
        except IntegrityError:
            suggestion.number = _next_number(session, now)
    else:
        raise DomainError("建议编号分配冲突，请重试", kind=CONFLICT, code="number_conflict")
    session.add(SuggestionDeputy(suggestion_id=suggestion.id, deputy_id=lead, role="lead"))
    session.add_all(SuggestionDeputy(suggestion_id=suggestion.id, deputy_id=d.id, role="cosigner")
                    for d in cosigners)
    session.add_all(SuggestionCase(suggestion_id=suggestion.id, case_id=c.id) for c in cases)
    if entry is not None:
        entry.status = "drafted"
    _event(session, suggestion, _actor(principal), "draft", None, Status.DRAFT, label="起草建议",
           cases=[c.number for c in cases], cosigners=[d.code for d in cosigners])
    session.flush()
    return suggestion


def deputies_of(session: Session, suggestion: Suggestion) -> list[tuple[int, str]]:
    return list(session.execute(select(SuggestionDeputy.deputy_id, SuggestionDeputy.role).where(
        SuggestionDeputy.suggestion_id == suggestion.id).order_by(SuggestionDeputy.role.desc(),
                                                                  SuggestionDeputy.deputy_id)).all())


def cases_of(session: Session, suggestion: Suggestion) -> list[Case]:
    return list(session.scalars(select(Case).join(SuggestionCase, SuggestionCase.case_id == Case.id)
                                .where(SuggestionCase.suggestion_id == suggestion.id).order_by(Case.id)))


def departments_of(session: Session, suggestion: Suggestion) -> list[tuple[Department, str]]:
    rows = session.execute(select(Department, SuggestionDepartment.role)
                           .join(SuggestionDepartment, SuggestionDepartment.department_id == Department.id)
                           .where(SuggestionDepartment.suggestion_id == suggestion.id)).all()
    return sorted(((d, r) for d, r in rows), key=lambda item: (item[1] != "lead", item[0].id))


def timeline(session: Session, suggestion: Suggestion) -> list[SuggestionEvent]:
    return list(session.scalars(select(SuggestionEvent).where(SuggestionEvent.suggestion_id == suggestion.id)
                                .order_by(SuggestionEvent.id)))


def edit(session: Session, principal: Principal, suggestion: Suggestion, *, title: str | None = None,
         problems: str | None = None, proposals: str | None = None) -> Suggestion:
    access.check(session, principal, "edit", suggestion)
    changes = {}
    for name, value in (("title", title), ("problems", problems), ("proposals", proposals)):
        if value is not None:
            if not value.strip():
                raise _invalid("内容不能为空", name)
            setattr(suggestion, name, value.strip()[:100] if name == "title" else value.strip())
            changes[name] = True
    record(session, suggestion, _actor(principal), "edit", fields=sorted(changes))
    return suggestion


# ----------------------------------------------------------------------------------------------- review
def review_steps(session: Session) -> list[dict[str, str]]:
    return list(timers.policy(session).review_steps)


def current_step(session: Session, suggestion: Suggestion) -> dict[str, str] | None:
    if suggestion.status != Status.REVIEWING:
        return None
    steps = review_steps(session)
    return steps[min(suggestion.review_step, len(steps) - 1)]


def submit(session: Session, principal: Principal, suggestion: Suggestion) -> SuggestionEvent:
    access.check(session, principal, "submit", suggestion)
    lifecycle.check("submit", suggestion.status)
    suggestion.review_step = 0
    entry = _transition(session, suggestion, "submit", _actor(principal), step=review_steps(session)[0]["code"])
    step = current_step(session, suggestion)
    timers.tell_staff(session, suggestion, f"suggestion_review:{suggestion.id}:{entry_key(session, entry)}",
                      f"代表建议 {suggestion.number}《{suggestion.title}》待{step['label']}。",
                      county_only=step.get("by") == "county")
    return entry


def entry_key(session: Session, entry: SuggestionEvent) -> int:
    if entry.id is None:
        session.flush()
    return entry.id


def review(session: Session, principal: Principal, suggestion: Suggestion, decision: str,
           note: str | None = None) -> SuggestionEvent:
    """One review step's decision: pass (to the next step, or 审定 at the last), send_back (退回修改)
    or reject (不予立案). Each decision is a timeline entry naming the step."""
    step = current_step(session, suggestion)
    if step is None:
        raise lifecycle.IllegalTransition("pass_step", suggestion.status)
    access.check(session, principal, "review", suggestion, step.get("by"))
    steps = review_steps(session)
    detail = {"step": step["code"], "step_label": step["label"], "decision": decision}
    actor = _actor(principal)
    if decision == "pass":
        if suggestion.review_step + 1 >= len(steps):
            entry = _transition(session, suggestion, "approve", actor, note=note, **detail)
            timers.tell_staff(session, suggestion, f"suggestion_approved:{suggestion.id}",
                              f"代表建议 {suggestion.number}《{suggestion.title}》已审定，待交办。", county_only=True)
        else:
            entry = _transition(session, suggestion, "pass_step", actor, note=note, **detail)
            suggestion.review_step += 1
            following = steps[suggestion.review_step]
            timers.tell_staff(session, suggestion,
                              f"suggestion_review:{suggestion.id}:{entry_key(session, entry)}",
                              f"代表建议 {suggestion.number}《{suggestion.title}》待{following['label']}。",
                              county_only=following.get("by") == "county")
        return entry
    if decision == "send_back":
        entry = _transition(session, suggestion, "send_back", actor, reason=note, **detail)
    elif decision == "reject":
        entry = _transition(session, suggestion, "reject", actor, reason=note, **detail)
    else:
        raise _invalid("审查意见应为 通过 / 退回修改 / 不予立案", "decision")
    suggestion.review_step = 0
    text = (f"您领衔的建议《{suggestion.title}》在{step['label']}环节被"
            f"{'退回修改' if decision == 'send_back' else '决定不予立案'}：{note.strip()}")
    timers.tell_deputies(session, suggestion, f"suggestion_review_result:{entry_key(session, entry)}", text,
                         [suggestion.lead_deputy_id])
    return entry


def withdraw(session: Session, principal: Principal, suggestion: Suggestion) -> SuggestionEvent:
    access.check(session, principal, "withdraw", suggestion)
    return _transition(session, suggestion, "withdraw", _actor(principal))


# --------------------------------------------------------------------------------------------- 交办
def _department(session: Session, code: str, field: str) -> Department:
    department = session.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise DomainError(f"承办单位 {code} 不存在", kind=INVALID, code="unknown_department", field=field)
    return department


def assign(session: Session, principal: Principal, suggestion: Suggestion, *, lead_code: str,
           co_codes: Iterable[str] = (), nature: str = "individual", key_supervision: bool = False,
           now: datetime | None = None) -> SuggestionEvent:
    """集中交办: a lead department (主办) and co-handlers (协办), each told; the reply limit starts."""
    access.check(session, principal, "assign", suggestion)
    lifecycle.check("assign", suggestion.status)
    if nature not in NATURES:
        raise _invalid("建议性质应为 个性 或 共性", "nature")
    lead = _department(session, lead_code, "lead_department")
    co = [_department(session, code, "co_departments") for code in dict.fromkeys(co_codes)]
    co = [d for d in co if d.id != lead.id]
    now = now or utcnow()
    rules = timers.policy(session)
    session.add(SuggestionDepartment(suggestion_id=suggestion.id, department_id=lead.id, role="lead"))
    session.add_all(SuggestionDepartment(suggestion_id=suggestion.id, department_id=d.id, role="co") for d in co)
    suggestion.assigned_at, suggestion.nature = now, nature
    suggestion.key_supervision = bool(key_supervision)
    suggestion.deadline = timers.add_months(now, int(rules.reply_months))
    entry = _transition(session, suggestion, "assign", _actor(principal), lead=lead.name,
                        co=[d.name for d in co], nature=nature, key_supervision=bool(key_supervision),
                        deadline=suggestion.deadline.isoformat())
    session.flush()
    due = timers.local_day(suggestion.deadline)
    timers.tell_departments(
        session, suggestion, f"suggestion_assigned:{suggestion.id}",
        f"交办代表建议 {suggestion.number}《{suggestion.title}》，请于{due}前答复代表（主办单位负责答复，"
        f"协办单位向主办单位提供协办意见）。")
    others = [d.name for d in co]
    timers.tell_deputies(session, suggestion, f"suggestion_assigned:{suggestion.id}",
                         f"您的建议《{suggestion.title}》已交{lead.name}主办"
                         + (f"、{'、'.join(others)}协办" if others else "") + f"，答复期限{due}。",
                         [d for d, _ in deputies_of(session, suggestion)])
    return entry


def set_nature(session: Session, principal: Principal, suggestion: Suggestion, nature: str) -> SuggestionEvent:
    """County staff mark an active suggestion 个性 (closed within the year) or 共性 (tracked across
    years); the timeline keeps the earlier nature."""
    access.check(session, principal, "set_nature", suggestion)
    if nature not in NATURES:
        raise _invalid("建议性质应为 个性 或 共性", "nature")
    # `previous`, not `before`: `before` is `_event`'s positional from-status (a TypeError once).
    entry = record(session, suggestion, _actor(principal), "set_nature", nature=nature,
                   nature_label=NATURES[nature], previous=suggestion.nature)
    suggestion.nature = nature
    return entry


def supervise(session: Session, principal: Principal, suggestion: Suggestion, kind: str,
              note: str) -> SuggestionEvent:
    """重点督办: a leading official, a task force, a meeting, a 督办函 or a 约谈, on the timeline; a
    督办函 or 约谈 is also sent to the lead department."""
    access.check(session, principal, "supervise", suggestion)
    if kind not in SUPERVISION_KINDS:
        raise _invalid("督办方式无效", "kind")
    if not (note or "").strip():
        raise _invalid("请填写督办内容", "note")
    suggestion.key_supervision = True
    entry = record(session, suggestion, _actor(principal), "supervise", kind=kind,
                   kind_label=SUPERVISION_KINDS[kind], note=note.strip())
    if kind in ("letter", "interview", "meeting"):
        timers.tell_departments(session, suggestion, f"suggestion_supervise:{entry_key(session, entry)}",
                                f"【重点督办·{SUPERVISION_KINDS[kind]}】代表建议 {suggestion.number}"
                                f"《{suggestion.title}》：{note.strip()}", lead_only=kind != "meeting")
    return entry


def extend(session: Session, principal: Principal, suggestion: Suggestion, months: int,
           reason: str) -> SuggestionEvent:
    """An approved extension: the limit moves by `months`, never beyond the county's maximum."""
    access.check(session, principal, "extend", suggestion)
    lifecycle.check("extend", suggestion.status, reason)
    if not 1 <= months <= 6:
        raise _invalid("延期月数应为 1 至 6", "months")
    rules = timers.policy(session)
    latest = timers.add_months(suggestion.assigned_at, int(rules.max_reply_months))
    new_deadline = timers.add_months(suggestion.deadline, months)
    if suggestion.round == 1 and new_deadline > latest:
        raise DomainError(f"答复期限自交办起最长 {rules.max_reply_months} 个月（至{timers.local_day(latest)}）",
                          kind=CONFLICT, code="beyond_legal_limit", field="months")
    old = suggestion.deadline
    suggestion.deadline, suggestion.extended = new_deadline, True
    suggestion.escalation_level, suggestion.reminded_for = 0, None
    entry = record(session, suggestion, _actor(principal), "extend", reason=reason,
                   old_deadline=old.isoformat(), new_deadline=new_deadline.isoformat())
    timers.tell_departments(session, suggestion, f"suggestion_extended:{entry_key(session, entry)}",
                            f"代表建议 {suggestion.number} 答复期限延至{timers.local_day(new_deadline)}。")
    return entry


# ------------------------------------------------------------------------------------------ 答复, 测评
def answer(session: Session, principal: Principal, suggestion: Suggestion, category: str,
           text: str) -> SuggestionEvent:
    """The lead department's 答复 with its category; the deputies and the committee are asked to rate."""
    access.check(session, principal, "answer", suggestion)
    if category not in ANSWER_CATEGORIES:
        raise _invalid("答复类别应为 A、B 或 C", "category")
    if not (text or "").strip():
        raise _invalid("请填写答复内容", "text")
    now = utcnow()
    suggestion.answer_category, suggestion.answer_text, suggestion.answered_at = category, text.strip(), now
    entry = _transition(session, suggestion, "answer", _actor(principal), category=category,
                        category_label=ANSWER_CATEGORIES[category], text=text.strip(), round=suggestion.round,
                        on_time=suggestion.deadline is None or now <= suggestion.deadline)
    key = f"suggestion_answered:{suggestion.id}:{suggestion.round}"
    message = (f"您的建议《{suggestion.title}》已答复（{category}类：{ANSWER_CATEGORIES[category]}），"
               "请在小程序中测评（满意 / 基本满意 / 不满意）。")
    timers.tell_deputies(session, suggestion, key, message, [d for d, _ in deputies_of(session, suggestion)])
    timers.tell_staff(session, suggestion, key,
                      f"代表建议 {suggestion.number} 已答复（{category}类），请常委会测评。", county_only=True)
    return entry


def rate(session: Session, principal: Principal, suggestion: Suggestion, value: str,
         comment: str | None = None) -> SuggestionRating:
    """A proposing deputy's or the standing committee's 测评 of this round's answer. Once the lead
    deputy and the committee have both rated: both satisfied closes it (销号), else 二次办理."""
    access.check(session, principal, "rate", suggestion)
    lifecycle.check("rate", suggestion.status)
    if value not in RATING_VALUES:
        raise _invalid("测评应为 满意、基本满意 或 不满意", "value")
    rater = f"deputy:{principal.account.deputy_id}" if principal.role == DEPUTY else COMMITTEE
    row = SuggestionRating(suggestion_id=suggestion.id, round=suggestion.round, rater=rater,
                           account_id=principal.account.id, value=value, comment=(comment or "").strip() or None)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise DomainError("本轮已测评", kind=CONFLICT, code="already_rated") from None
    record(session, suggestion, _actor(principal), "rate", rater=rater, value=value,
           value_label=RATING_VALUES[value], round=suggestion.round)
    _decide(session, suggestion)
    return row


def round_ratings(session: Session, suggestion: Suggestion, round_: int | None = None) -> dict[str, str]:
    return dict(session.execute(select(SuggestionRating.rater, SuggestionRating.value).where(
        SuggestionRating.suggestion_id == suggestion.id,
        SuggestionRating.round == (round_ or suggestion.round))).all())


def is_satisfied(value: str | None, rules: timers.Policy) -> bool:
    if value == "satisfied":
        return True
    return value == "basically_satisfied" and not rules.second_round_on_basic


def _decide(session: Session, suggestion: Suggestion) -> None:
    ratings = round_ratings(session, suggestion)
    deputy_value = ratings.get(f"deputy:{suggestion.lead_deputy_id}")
    committee_value = ratings.get(COMMITTEE)
    if deputy_value is None or committee_value is None:
        return
    rules = timers.policy(session)
    verdict = {"deputy": deputy_value, "committee": committee_value}
    if is_satisfied(deputy_value, rules) and is_satisfied(committee_value, rules):
        suggestion.closed_at = utcnow()
        _transition(session, suggestion, "archive", Actor.system(), **verdict)
        _tell_residents(session, suggestion)
        return
    now = utcnow()
    suggestion.round += 1
    suggestion.deadline = timers.add_months(now, int(rules.second_round_months))
    suggestion.escalation_level, suggestion.reminded_for = 0, None
    entry = _transition(session, suggestion, "reopen", Actor.system(), deadline=suggestion.deadline.isoformat(),
                        round=suggestion.round, **verdict)
    timers.tell_departments(
        session, suggestion, f"suggestion_second_round:{suggestion.id}:{suggestion.round}",
        f"代表建议 {suggestion.number}《{suggestion.title}》测评未达双满意，请二次办理，"
        f"于{timers.local_day(suggestion.deadline)}前重新答复。")
    timers.tell_staff(session, suggestion, f"suggestion_second_round:{entry_key(session, entry)}",
                      f"代表建议 {suggestion.number} 进入二次办理。", county_only=True)


def _tell_residents(session: Session, suggestion: Suggestion) -> int:
    """Each resident behind a linked case (and its followers) is told once what the suggestion achieved."""
    residents: list[int] = []
    case_of: dict[int, Case] = {}
    for case in cases_of(session, suggestion):
        for resident_id in [case.resident_id, *session.scalars(select(CaseFollower.resident_id).where(
                CaseFollower.case_id == case.id))]:
            if resident_id not in case_of:
                residents.append(resident_id)
                case_of[resident_id] = case
    lead = session.get(Deputy, suggestion.lead_deputy_id)
    departments = "、".join(d.name for d, role in departments_of(session, suggestion) if role == "lead")
    outcome = ANSWER_CATEGORIES.get(suggestion.answer_category or "", "")
    told = 0
    for resident_id in residents:
        case = case_of[resident_id]
        text = (f"您反映的诉求（{case.number}）已由{lead.name}代表整理成代表建议《{suggestion.title}》，"
                f"交{departments}办理，结果：{outcome}。{(suggestion.answer_text or '')[:120]}")
        if outbox.add(session, "resident_text", f"suggestion:{suggestion.id}:outcome:resident:{resident_id}",
                      {"text": text, "case_number": case.number}, case_id=case.id, resident_id=resident_id):
            told += 1
    return told


def complete_plan(session: Session, principal: Principal, suggestion: Suggestion, note: str) -> SuggestionEvent:
    """A B answer's plan (or a 共性 problem) is carried out: it leaves the cross-year 台账."""
    access.check(session, principal, "complete_plan", suggestion)
    if suggestion.answer_category != "B" and suggestion.nature != "common":
        raise DomainError("只有 B 类（列入计划逐步解决）答复和共性建议需要登记落实", kind=CONFLICT,
                          code="not_planned")
    if suggestion.plan_completed_at is not None:
        raise DomainError("已登记落实", kind=CONFLICT, code="already_completed")
    if not (note or "").strip():
        raise _invalid("请填写落实情况", "note")
    suggestion.plan_completed_at = utcnow()
    return record(session, suggestion, _actor(principal), "complete_plan", note=note.strip())
