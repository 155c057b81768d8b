"""Who sees which suggestion and who may act on it, decided by relationship:

- deputy: the suggestions they lead (领衔) or cosign (附议), and the 问题清单 entries they made;
- department handler: suggestions handed to their department (主办 or 协办), once 交办;
- staff: county staff every suggestion of the county; station staff those whose lead deputy belongs
  to their station (and the entries they made);
- residents: none (they are told by message what a suggestion achieved).

A suggestion outside the caller's scope does not exist for them (`NotFound`); a visible one the caller
may not act on raises `Forbidden`.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from liaison.core.errors import FORBIDDEN, NOT_FOUND, DomainError
from liaison.people.models import Deputy
from liaison.people.service import DEPARTMENT, DEPUTY, STAFF, Principal
from liaison.suggestion import lifecycle
from liaison.suggestion.models import ProblemEntry, Suggestion, SuggestionDepartment, SuggestionDeputy


class NotFound(DomainError):
    kind = NOT_FOUND
    code = "not_found"

    def __init__(self, message: str = "建议不存在"):
        super().__init__(message)


class Forbidden(DomainError):
    kind = FORBIDDEN
    code = "forbidden"


def condition(principal: Principal) -> ColumnElement[bool]:
    """The SQL condition selecting the suggestions the caller may see."""
    account = principal.account
    if principal.role == DEPUTY and account.deputy_id is not None:
        return Suggestion.id.in_(select(SuggestionDeputy.suggestion_id).where(
            SuggestionDeputy.deputy_id == account.deputy_id))
    if principal.role == DEPARTMENT and account.department_id is not None:
        return Suggestion.status.in_(lifecycle.ASSIGNED_STATUSES) & Suggestion.id.in_(
            select(SuggestionDepartment.suggestion_id).where(
                SuggestionDepartment.department_id == account.department_id))
    if principal.role == STAFF:
        if account.station_id is None:
            return true()
        return Suggestion.lead_deputy_id.in_(select(Deputy.id).where(Deputy.station_id == account.station_id))
    return false()


def entry_condition(principal: Principal) -> ColumnElement[bool]:
    if principal.role == STAFF and principal.account.station_id is None:
        return true()
    if principal.role in (STAFF, DEPUTY):
        return ProblemEntry.created_by == principal.account.id
    return false()


def get(session: Session, principal: Principal, public_id: str, *, lock: bool = False) -> Suggestion:
    query = select(Suggestion).where(Suggestion.public_id == public_id, condition(principal))
    if lock:
        query = query.with_for_update()
    suggestion = session.scalar(query)
    if suggestion is None:
        raise NotFound()
    return suggestion


def get_entry(session: Session, principal: Principal, public_id: str) -> ProblemEntry:
    entry = session.scalar(select(ProblemEntry).where(ProblemEntry.public_id == public_id,
                                                      entry_condition(principal)))
    if entry is None:
        raise NotFound("问题清单不存在")
    return entry


def is_county_staff(principal: Principal) -> bool:
    return principal.role == STAFF and principal.account.station_id is None


def deputy_role(session: Session, principal: Principal, suggestion: Suggestion) -> str | None:
    """lead | cosigner | None for the calling deputy."""
    if principal.role != DEPUTY or principal.account.deputy_id is None:
        return None
    return session.scalar(select(SuggestionDeputy.role).where(
        SuggestionDeputy.suggestion_id == suggestion.id,
        SuggestionDeputy.deputy_id == principal.account.deputy_id))


def department_role(session: Session, principal: Principal, suggestion: Suggestion) -> str | None:
    if principal.role != DEPARTMENT or principal.account.department_id is None:
        return None
    return session.scalar(select(SuggestionDepartment.role).where(
        SuggestionDepartment.suggestion_id == suggestion.id,
        SuggestionDepartment.department_id == principal.account.department_id))


def _refusal(session: Session, principal: Principal, action: str, suggestion: Suggestion,
             step_by: str | None) -> str | None:
    if action in ("edit", "submit", "withdraw"):
        return None if deputy_role(session, principal, suggestion) == "lead" else "只有领衔代表可以执行此操作"
    if action == "review":
        if principal.role != STAFF:
            return "只有工委工作人员可以审查"
        if step_by == "county" and not is_county_staff(principal):
            return "本审查环节由县级代表工委办理"
        return None
    if action in ("assign", "supervise", "set_nature", "extend"):
        return None if is_county_staff(principal) else "只有县级代表工委可以执行此操作"
    if action == "answer":
        return None if department_role(session, principal, suggestion) == "lead" else "只有主办单位可以答复"
    if action == "complete_plan":
        if department_role(session, principal, suggestion) == "lead" or is_county_staff(principal):
            return None
        return "只有主办单位或县级代表工委可以登记办结"
    if action == "rate":
        if deputy_role(session, principal, suggestion) is not None or is_county_staff(principal):
            return None
        return "只有提出建议的代表和常委会可以测评"
    return "当前身份无权执行此操作"


def check(session: Session, principal: Principal, action: str, suggestion: Suggestion,
          step_by: str | None = None) -> None:
    reason = _refusal(session, principal, action, suggestion, step_by)
    if reason is not None:
        raise Forbidden(reason)


def allowed_actions(session: Session, principal: Principal, suggestion: Suggestion,
                    step_by: str | None = None) -> list[str]:
    """What this caller can do now: the role rules above and the lifecycle table."""
    names = ("edit", "submit", "withdraw", "review", "assign", "supervise", "set_nature", "extend",
             "answer", "rate", "complete_plan")
    table = {"review": "pass_step"}
    return [name for name in names
            if _refusal(session, principal, name, suggestion, step_by) is None
            and lifecycle.allows(table.get(name, name), suggestion.status)]
