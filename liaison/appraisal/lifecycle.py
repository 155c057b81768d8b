"""述职测评 status changes, one table.

    appraisal      open ──close──▶ closed
    rectification  open ──complete──▶ done   (the second 测评 is scheduled then)
"""
from __future__ import annotations

from liaison.core.errors import CONFLICT, DomainError

OPEN, CLOSED, DONE = "open", "closed", "done"
LABELS = {OPEN: "进行中", CLOSED: "已结束", DONE: "已整改"}
MOVES = {("Appraisal", "close"): ({OPEN}, CLOSED), ("Rectification", "complete"): ({OPEN}, DONE)}


class IllegalAppraisalMove(DomainError):
    kind = CONFLICT
    code = "illegal_transition"


def move(row, action: str) -> str:
    found = MOVES.get((type(row).__name__, action))
    if found is None or row.status not in found[0]:
        raise IllegalAppraisalMove(f"当前状态（{LABELS.get(row.status, row.status)}）不能执行该操作")
    row.status = found[1]
    return row.status
