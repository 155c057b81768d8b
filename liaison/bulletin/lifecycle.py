"""The 整改 lifecycle: the one table of what may happen to a rectification item in each status.

待整改 (open) → the unit writes what it did → 待核实 (responded) → staff verify it → 已销号 (closed), or
send it back → 待整改 again. Anything not in `TRANSITIONS` is refused with `IllegalRectification`.
Overdue is not a status: an item past its deadline and not closed is overdue (`is_overdue`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from liaison.core.errors import CONFLICT, DomainError

OPEN = "open"
RESPONDED = "responded"
CLOSED = "closed"

STATUS_LABELS = {OPEN: "待整改", RESPONDED: "已反馈待核实", CLOSED: "已核实销号"}


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    label: str  # Chinese, shown in the item's history


TRANSITIONS: dict[str, Transition] = {t.action: t for t in [
    Transition("respond", frozenset({OPEN}), RESPONDED, "单位反馈整改情况"),
    Transition("verify", frozenset({RESPONDED}), CLOSED, "工委核实销号"),
    Transition("send_back", frozenset({RESPONDED}), OPEN, "退回重新整改"),
]}


class IllegalRectification(DomainError):
    kind = CONFLICT
    code = "illegal_transition"


def check(action: str, status: str) -> Transition:
    """The table's row for `action` from `status`, or IllegalRectification."""
    transition = TRANSITIONS.get(action)
    if transition is None or status not in transition.sources:
        raise IllegalRectification(f"当前状态（{STATUS_LABELS.get(status, status)}）不能执行该操作")
    return transition


def allows(action: str, status: str) -> bool:
    transition = TRANSITIONS.get(action)
    return transition is not None and status in transition.sources


def is_overdue(status: str, deadline: datetime, now: datetime) -> bool:
    return status != CLOSED and deadline < now
