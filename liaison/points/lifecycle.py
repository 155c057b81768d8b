"""An offline activity report's status, one table.

    pending ──approve_step──▶ pending (the next step of the review chain decides)
    pending ──approve_last──▶ approved (every step approved: it counts)
    pending ──reject──▶ rejected (any step; it never counts)

Every write of `ActivityReport.status` goes through `move`; anything else is refused (a conflict).
"""
from __future__ import annotations

from dataclasses import dataclass

from liaison.core.errors import CONFLICT, DomainError

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
LABELS = {PENDING: "审核中", APPROVED: "已认定", REJECTED: "未通过"}


@dataclass(frozen=True)
class Move:
    action: str
    sources: frozenset[str]
    target: str


MOVES = {m.action: m for m in (
    Move("approve_step", frozenset({PENDING}), PENDING),
    Move("approve_last", frozenset({PENDING}), APPROVED),
    Move("reject", frozenset({PENDING}), REJECTED),
)}


class IllegalReviewMove(DomainError):
    kind = CONFLICT
    code = "illegal_transition"


def move(report, action: str) -> str:
    found = MOVES.get(action)
    if found is None or report.status not in found.sources:
        raise IllegalReviewMove(f"该活动已{LABELS.get(report.status, report.status)}，不能再审核")
    report.status = found.target
    return report.status
