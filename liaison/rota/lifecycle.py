"""The rota's status changes, one table: what may happen to a shift, an assignment and a swap.

    shift       planned ──keep──▶ kept | ──miss──▶ missed | ──cancel──▶ cancelled
    assignment  on_duty ──check_in──▶ checked_in | ──miss──▶ missed | ──swap──▶ swapped
    swap        requested ──approve──▶ approved | ──reject──▶ rejected | ──withdraw──▶ withdrawn

Every write of a rota status goes through `move`; anything not listed is refused with
`IllegalRotaMove` (a conflict) and changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from liaison.core.errors import CONFLICT, DomainError

PLANNED, KEPT, MISSED, CANCELLED = "planned", "kept", "missed", "cancelled"
ON_DUTY, CHECKED_IN, SWAPPED = "on_duty", "checked_in", "swapped"
REQUESTED, APPROVED, REJECTED, WITHDRAWN = "requested", "approved", "rejected", "withdrawn"

LABELS = {PLANNED: "待值班", KEPT: "已值班", MISSED: "缺勤", CANCELLED: "已取消", ON_DUTY: "待签到",
          CHECKED_IN: "已签到", SWAPPED: "已换班", REQUESTED: "待审批", APPROVED: "已同意",
          REJECTED: "已驳回", WITHDRAWN: "已撤回"}


@dataclass(frozen=True)
class Move:
    entity: str  # shift | assignment | swap
    action: str
    sources: frozenset[str]
    target: str


def _m(entity: str, action: str, sources: set[str], target: str) -> tuple[tuple[str, str], Move]:
    return (entity, action), Move(entity, action, frozenset(sources), target)


MOVES: dict[tuple[str, str], Move] = dict([
    _m("shift", "keep", {PLANNED}, KEPT),            # at least one person on duty checked in
    _m("shift", "miss", {PLANNED}, MISSED),          # the shift ended and nobody checked in
    _m("shift", "cancel", {PLANNED}, CANCELLED),     # staff: an exception (the station closed)
    _m("assignment", "check_in", {ON_DUTY}, CHECKED_IN),
    _m("assignment", "miss", {ON_DUTY}, MISSED),
    _m("assignment", "swap", {ON_DUTY}, SWAPPED),
    _m("swap", "approve", {REQUESTED}, APPROVED),
    _m("swap", "reject", {REQUESTED}, REJECTED),
    _m("swap", "withdraw", {REQUESTED}, WITHDRAWN),
])
ENTITIES = {"DutyShift": "shift", "ShiftAssignment": "assignment", "ShiftSwap": "swap"}


class IllegalRotaMove(DomainError):
    kind = CONFLICT
    code = "illegal_transition"


def allows(entity: str, action: str, status: str) -> bool:
    move_ = MOVES.get((entity, action))
    return move_ is not None and status in move_.sources


def move(row, action: str) -> str:
    """Apply `action` to a shift, assignment or swap row; returns the new status."""
    entity = ENTITIES[type(row).__name__]
    found = MOVES.get((entity, action))
    if found is None or row.status not in found.sources:
        raise IllegalRotaMove(f"当前状态（{LABELS.get(row.status, row.status)}）不能执行该操作")
    row.status = found.target
    return row.status
