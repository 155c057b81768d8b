"""Who sees which 民生实事 project: the county's deputies and staff all of them (they are public works
the congress chose); a department the projects it leads; residents the completed ones (to rate).
Proposals (征集): staff all; a resident or deputy their own."""
from __future__ import annotations

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from liaison.core.errors import FORBIDDEN, NOT_FOUND, DomainError
from liaison.people.service import DEPARTMENT, DEPUTY, RESIDENT, STAFF, Principal
from liaison.project import lifecycle
from liaison.project.models import LivelihoodProject, ProjectProposal


class NotFound(DomainError):
    kind = NOT_FOUND
    code = "not_found"

    def __init__(self, message: str = "项目不存在"):
        super().__init__(message)


class Forbidden(DomainError):
    kind = FORBIDDEN
    code = "forbidden"


def condition(principal: Principal) -> ColumnElement[bool]:
    if principal.role in (DEPUTY, STAFF):
        return true()
    if principal.role == DEPARTMENT and principal.account.department_id is not None:
        return LivelihoodProject.lead_department_id == principal.account.department_id
    if principal.role == RESIDENT:
        return LivelihoodProject.status == lifecycle.COMPLETED
    return false()


def get(session: Session, principal: Principal, public_id: str) -> LivelihoodProject:
    project = session.scalar(select(LivelihoodProject).where(LivelihoodProject.public_id == public_id,
                                                             condition(principal)))
    if project is None:
        raise NotFound()
    return project


def proposal_condition(principal: Principal) -> ColumnElement[bool]:
    if principal.role == STAFF:
        return true()
    if principal.role == RESIDENT:
        return ProjectProposal.resident_id == principal.resident.id
    if principal.role == DEPUTY:
        return ProjectProposal.deputy_id == principal.account.deputy_id
    return false()


def get_proposal(session: Session, principal: Principal, public_id: str) -> ProjectProposal:
    proposal = session.scalar(select(ProjectProposal).where(ProjectProposal.public_id == public_id,
                                                            proposal_condition(principal)))
    if proposal is None:
        raise NotFound("征集项目不存在")
    return proposal


def is_county_staff(principal: Principal) -> bool:
    return principal.role == STAFF and principal.account.station_id is None


def is_lead_department(principal: Principal, project: LivelihoodProject) -> bool:
    return principal.role == DEPARTMENT and principal.account.department_id == project.lead_department_id
