"""Who may see and do what: the case scope of each role and the permission rules of the mini-program.

- resident: their own cases and the cases they follow (并单);
- deputy: cases in the grids they serve and cases they handle;
- department handler: cases currently with their department;
- staff: every case in their jurisdiction (the county, or one station's grids).

A case outside the caller's scope does not exist for them (`cases.NotFound`); a visible case the caller
may not act on raises `Forbidden`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from liaison.case import lifecycle
from liaison.case.models import Case, CaseFollower
from liaison.case.service import NotFound, lock_case
from liaison.core.clock import utcnow
from liaison.core.errors import FORBIDDEN, DomainError
from liaison.people.models import DeputyGrid
from liaison.people.service import DEPARTMENT, DEPUTY, RESIDENT, STAFF, Principal, staff_grid_ids


class Forbidden(DomainError):
    """The caller sees the case but may not perform this action on it (message in Chinese)."""

    kind = FORBIDDEN
    code = "forbidden"


# Which roles may attempt each mini-program action on a case. Every action is a row of the
# lifecycle table (`lifecycle.ACTIONS`), which alone says from which statuses it is allowed.
ACTION_ROLES: dict[str, frozenset[str]] = {
    "add_information": frozenset({RESIDENT}),
    "withdraw": frozenset({RESIDENT}),
    "rate": frozenset({RESIDENT}),
    "accept": frozenset({DEPUTY, DEPARTMENT}),
    "reply": frozenset({DEPUTY, DEPARTMENT}),
    "close": frozenset({DEPUTY, DEPARTMENT}),
    "request_information": frozenset({DEPUTY, DEPARTMENT}),
    "dispatch": frozenset({DEPUTY, STAFF}),
    "urge": frozenset({DEPUTY, STAFF}),
    "correct_category": frozenset({DEPUTY, STAFF}),
    "return": frozenset({DEPARTMENT}),
    "request_extension": frozenset({DEPARTMENT}),
    "reassign": frozenset({STAFF}),
    "merge": frozenset({STAFF}),
    "reject": frozenset({STAFF}),
    "conclude": frozenset({STAFF}),       # 工委裁定终结 after a second 不满意
    "return_visit": frozenset({STAFF}),   # 回访: a rating taken by phone or on a visit
}


@dataclass(frozen=True)
class Scope:
    """The caller and the grids they cover (computed once per request)."""

    principal: Principal
    grid_ids: tuple[int, ...] | None  # None: no grid limit (county staff)

    @property
    def role(self) -> str:
        return self.principal.role


def scope_of(session: Session, principal: Principal) -> Scope:
    """The caller's scope: a deputy's grids, a staff member's jurisdiction."""
    grid_ids: tuple[int, ...] | None = ()
    if principal.role == DEPUTY:
        grid_ids = tuple(session.scalars(select(DeputyGrid.grid_id).where(
            DeputyGrid.deputy_id == principal.account.deputy_id)))
    elif principal.role == STAFF:
        ids = staff_grid_ids(session, principal.account)
        grid_ids = None if ids is None else tuple(ids)
    return Scope(principal, grid_ids)


def case_condition(scope: Scope) -> ColumnElement[bool]:
    """The SQL condition selecting the cases the caller may see."""
    principal = scope.principal
    if principal.role == RESIDENT:
        rid = principal.resident.id
        return or_(Case.resident_id == rid,
                   Case.id.in_(select(CaseFollower.case_id).where(CaseFollower.resident_id == rid)))
    if principal.role == DEPUTY:
        conditions = [Case.deputy_id == principal.account.deputy_id]
        if scope.grid_ids:
            conditions.append(Case.grid_id.in_(scope.grid_ids))
        return or_(*conditions)
    if principal.role == DEPARTMENT:
        return Case.department_id == principal.account.department_id
    if principal.role == STAFF:
        if scope.grid_ids is None:
            return true()
        return Case.grid_id.in_(scope.grid_ids) if scope.grid_ids else false()
    return false()


def follows_only(scope: Scope, case: Case) -> bool:
    """The caller is a resident who follows (并单) someone else's case: they may see that it is being
    handled, its status and the handler's public replies, and rate it, but nothing the other resident
    wrote (text, location, photos, timeline)."""
    principal = scope.principal
    return principal.role == RESIDENT and case.resident_id != principal.resident.id
# The number residents are told (2026-000123); accepted wherever a case's public id is.
CASE_NUMBER = re.compile(r"^\d{4}-\d{6,}$")


def case_reference(ref: str) -> ColumnElement[bool]:
    """The condition naming a case by its public id or by its case number."""
    return Case.number == ref if CASE_NUMBER.match(ref) else Case.public_id == ref


def get_case(session: Session, scope: Scope, public_id: str, *, lock: bool = False) -> Case:
    """The case with this public id (or case number) if the caller may see it (locked for an action),
    else NotFound."""
    case_id = session.scalar(select(Case.id).where(case_reference(public_id), case_condition(scope)))
    if case_id is None:
        raise NotFound("case")
    return lock_case(session, case_id) if lock else session.get(Case, case_id)


def is_overdue(case: Case, now: datetime | None = None) -> bool:
    """Past its deadline while someone is still working it."""
    now = now or utcnow()
    return (case.deadline is not None and case.deadline < now
            and case.status in lifecycle.WORKING_STATUSES)


def list_cases(session: Session, scope: Scope, *, statuses: list[str] | None = None,
               overdue: bool | None = None, category: str | None = None, page: int = 1,
               page_size: int = 20) -> tuple[list[Case], int]:
    """One page of the caller's cases (newest first) and the total count."""
    conditions = [case_condition(scope)]
    if statuses:
        conditions.append(Case.status.in_(statuses))
    if category:
        conditions.append(Case.category == category)
    if overdue is not None:
        late = (Case.deadline < utcnow()) & Case.status.in_(lifecycle.WORKING_STATUSES)
        conditions.append(late if overdue else ~late | Case.deadline.is_(None))
    total = session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0
    rows = session.scalars(select(Case).where(*conditions)
                           .order_by(Case.created_at.desc(), Case.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


def _refusal(scope: Scope, action: str, case: Case) -> str | None:
    """Why the caller may not attempt `action` on this visible case (None: they may)."""
    principal = scope.principal
    if principal.role not in ACTION_ROLES.get(action, frozenset()):
        return "当前身份无权执行此操作"
    if principal.role == RESIDENT:
        if action in ("add_information", "withdraw") and case.resident_id != principal.resident.id:
            return "只有提出诉求的群众可以执行此操作"
        return None
    if principal.role == DEPUTY:
        # A grid's other (assisting) deputies see its cases, but acting needs the case handed to them.
        if case.deputy_id != principal.account.deputy_id:
            return "该诉求由其他代表负责办理"
        with_department = case.handler_kind == "department"
        if action == "urge":
            return None if with_department else "该诉求未派给部门，无需督办"
        if with_department:
            return "该诉求正由职能部门办理"
        return None
    if principal.role == DEPARTMENT:
        if case.handler_kind != "department" or case.department_id != principal.account.department_id:
            return "该诉求不在本部门办理中"
        return None
    return None  # staff: anything in their jurisdiction


def check(scope: Scope, action: str, case: Case) -> None:
    """Raise Forbidden unless the caller may attempt `action` on the (visible) case."""
    reason = _refusal(scope, action, case)
    if reason is not None:
        raise Forbidden(reason)


def allowed_actions(scope: Scope, case: Case) -> list[str]:
    """The actions this caller can take on the case now: the role and handler rules above, and the
    lifecycle table (the same check the services make before acting)."""
    return [action for action in ACTION_ROLES
            if _refusal(scope, action, case) is None
            and lifecycle.allows(action, case.status, case.handler_kind)]
