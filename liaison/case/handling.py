"""Casework done in the mini-program beyond the lifecycle transitions: submitting with photos and a
location, asking the resident for information, urging a department (督办), extension requests (延期),
category corrections kept for the classifier. Handlers are told through `case.notices`.

Status changes still go only through `case.service` (and so through the lifecycle table).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifiers import get_classifier
from liaison.case import lifecycle, notices, timers
from liaison.case import service as cases
from liaison.case.lifecycle import IllegalTransition
from liaison.case.models import Case, ClassifierCorrection, ExtensionRequest
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.core.workcalendar import add_working_days
from liaison.messaging import outbox
from liaison.messaging.texts import say
from liaison.people.models import Department, Grid, Resident

MAX_EXTENSION_DAYS = 30


def submit_case(session: Session, resident: Resident, text: str, *, photos: list[str] | None = None,
                location: dict[str, Any] | None = None, grid: Grid | None = None) -> Case:
    """A resident's submission from the mini-program: `cases.open_case` plus photos and location."""
    case = cases.open_case(session, resident, text, channel="miniprogram", grid=grid)
    if location:
        case.location = location
    if photos:
        cases.record_event(session, case, Actor("resident", resident.id), "attach", photos=photos)
    return case


def add_information(session: Session, case: Case, resident: Resident, text: str,
                    photos: list[str] | None = None):
    """The resident adds to their own open case; an unaccepted case is classified again."""
    if case.resident_id != resident.id:
        raise cases.NotFound("case")
    entry = cases.add_information(session, case, Actor("resident", resident.id), text, reroute=True)
    if photos:
        cases.record_event(session, case, Actor("resident", resident.id), "attach", photos=photos)
    return entry


def request_information(session: Session, case: Case, actor: Actor, question: str):
    """Ask the resident for more information: a timeline entry and a message to the resident."""
    question = question.strip()
    if not question:
        raise ValueError("question is empty")
    lifecycle.check_case("request_information", case)
    entry = cases.record_event(session, case, actor, "request_information", question=question)
    # Only the resident who raised the case can answer; followers (并单) are not asked about it.
    session.flush()  # the entry's id keys the outbox row
    outbox.add(session, "resident_text", f"event:{entry.id}:resident:{case.resident_id}",
               {"text": say("information_requested", number=case.number, question=question),
                "case_number": case.number}, case_id=case.id, resident_id=case.resident_id)
    return entry


def urge(session: Session, case: Case, actor: Actor, note: str | None = None):
    """督办: press the department handling the case; a timeline entry and a notice to the department."""
    lifecycle.check_case("urge", case)  # also: only while a department handles it
    department = session.get(Department, case.department_id)
    entry = cases.record_event(session, case, actor, "urge", department=department.name,
                               note=note, deadline=case.deadline.isoformat() if case.deadline else None)
    session.flush()  # the entry's id keys the notice: every urge is told once, a retry is not
    text = f"诉求 {case.number} 被督办，请抓紧办理" + (f"：{note}" if note else "。")
    notices.notify(session, case, f"urge:{case.id}:{entry.id}", text, department_id=case.department_id,
                   detail={"event_id": entry.id})
    return entry


def request_extension(session: Session, case: Case, actor: Actor, account_id: int, working_days: int,
                      reason: str) -> ExtensionRequest:
    """A department asks for `working_days` more (needs staff approval); one open request per case."""
    reason = reason.strip()
    if not reason:
        raise ValueError("reason is empty")
    if not 1 <= working_days <= MAX_EXTENSION_DAYS:
        raise ValueError("working_days out of range")
    lifecycle.check_case("request_extension", case, reason)
    pending = session.scalar(select(ExtensionRequest.id).where(
        ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending"))
    if pending is not None:
        raise IllegalTransition("request_extension", case.status, "已有待审批的延期申请")
    request = ExtensionRequest(case_id=case.id, department_id=case.department_id,
                               requested_by=account_id, working_days=working_days, reason=reason,
                               old_deadline=case.deadline)
    session.add(request)
    session.flush()
    cases.record_event(session, case, actor, "extension_requested", working_days=working_days,
                       reason=reason, request=request.public_id)
    return request


def decide_extension(session: Session, request: ExtensionRequest, actor: Actor, account_id: int, *,
                     approve: bool, note: str | None = None) -> ExtensionRequest:
    """Staff approve (the deadline moves by the working days asked) or reject an extension request."""
    if request.status != "pending":
        raise IllegalTransition("decide_extension", request.status, "该延期申请已处理")
    case = cases.lock_case(session, request.case_id)
    request.status = "approved" if approve else "rejected"
    request.decided_by, request.decided_at, request.decision_note = account_id, utcnow(), note
    if approve:
        base = case.deadline if case.deadline and case.deadline > utcnow() else utcnow()
        request.old_deadline = case.deadline
        case.deadline = add_working_days(base, request.working_days)
        request.new_deadline = case.deadline
        timers.schedule(case)
        cases.record_event(session, case, actor, "extension_approved", working_days=request.working_days,
                           deadline=case.deadline.isoformat(), note=note, request=request.public_id)
        text = f"诉求 {case.number} 的延期申请已批准，新的办理时限为 {timers.local_day(case.deadline)}。"
    else:
        cases.record_event(session, case, actor, "extension_rejected", note=note,
                           request=request.public_id)
        text = f"诉求 {case.number} 的延期申请未获批准" + (f"：{note}" if note else "。")
    if request.department_id is not None:
        notices.notify(session, case, f"extension_{request.status}:{request.id}", text,
                       department_id=request.department_id)
    session.flush()
    return request


def correct_category(session: Session, case: Case, actor: Actor, category: str,
                     reason: str | None = None):
    """Correct a case's category (its handler and status stay) and keep the pair for the classifier."""
    old = case.category
    entry = cases.recategorize(session, case, actor, category, reason)
    session.add(ClassifierCorrection(case_id=case.id, text=case.text, old_category=old,
                                     new_category=category, actor_kind=actor.kind, actor_id=actor.id))
    session.flush()
    return entry


def known_categories() -> tuple[str, ...]:
    """The categories the classifier knows (a correction must name one of them)."""
    return tuple(get_classifier().labels)

