"""The case lifecycle as one explicit transition table.

群众点单 → 代表接单 → 派单 → 部门办单 → 代表督单 → 群众评单. Every status change of a case goes through
`TRANSITIONS`; anything not listed is refused with `IllegalTransition` and changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from liaison.core.errors import CONFLICT, DomainError


class Status:
    SUBMITTED = "submitted"      # 已提交: just received
    ASSIGNED = "assigned"        # 已分派: routed to a deputy or department, not yet accepted
    ACCEPTED = "accepted"        # 已受理
    REPLIED = "replied"          # 已答复 (handler has answered, work may go on)
    TRANSFERRED = "transferred"  # 已派单/转办: sent to a department, awaiting its acceptance
    RETURNED = "returned"        # 已退单: a department sent it back to the deputy
    CLOSED = "closed"            # 已办结: awaiting the resident's rating
    REOPENED = "reopened"        # 二次办理: rated 不满意, back with the handler
    ARCHIVED = "archived"        # 已销号: rated 满意/基本满意 (final)
    UNRATED = "unrated"          # 未评价: no rating after the reminder (final, not counted as satisfied)
    MERGED = "merged"            # 已并单 into another case (final)
    REJECTED = "rejected"        # 不予受理 (final)
    WITHDRAWN = "withdrawn"      # 已撤回 by the resident (final)


STATUS_LABELS = {
    Status.SUBMITTED: "已提交", Status.ASSIGNED: "待受理", Status.ACCEPTED: "办理中",
    Status.REPLIED: "已答复", Status.TRANSFERRED: "已派单", Status.RETURNED: "已退单",
    Status.CLOSED: "已办结待评价", Status.REOPENED: "二次办理", Status.ARCHIVED: "已销号",
    Status.UNRATED: "已办结（未评价）", Status.MERGED: "已并单", Status.REJECTED: "不予受理",
    Status.WITHDRAWN: "已撤回",
}

FINAL_STATUSES = frozenset({Status.ARCHIVED, Status.UNRATED, Status.MERGED, Status.REJECTED,
                            Status.WITHDRAWN})
OPEN_STATUSES = frozenset(set(STATUS_LABELS) - FINAL_STATUSES - {Status.CLOSED})
# A handler is still working the case (deadlines and escalation apply).
WORKING_STATUSES = OPEN_STATUSES


@dataclass(frozen=True)
class Transition:
    """One row of the table: an action allowed from `sources` that leads to `target`."""

    action: str
    sources: frozenset[str]
    target: str
    label: str  # Chinese, shown on the timeline
    needs_reason: bool = False


def _t(action, sources, target, label, needs_reason=False) -> tuple[str, Transition]:
    return action, Transition(action, frozenset(sources), target, label, needs_reason)


S = Status
_HANDLING = {S.ASSIGNED, S.ACCEPTED, S.REPLIED, S.RETURNED, S.REOPENED}

TRANSITIONS: dict[str, Transition] = dict([
    _t("assign", {S.SUBMITTED}, S.ASSIGNED, "分派"),
    _t("accept", {S.ASSIGNED, S.TRANSFERRED, S.RETURNED, S.REOPENED}, S.ACCEPTED, "受理"),
    _t("reply", {S.ACCEPTED, S.REPLIED}, S.REPLIED, "答复"),
    _t("dispatch", _HANDLING, S.TRANSFERRED, "派单"),
    _t("return", {S.TRANSFERRED, S.ACCEPTED, S.REPLIED}, S.RETURNED, "退单", needs_reason=True),
    _t("reassign", {S.ASSIGNED, S.ACCEPTED, S.RETURNED, S.REOPENED, S.TRANSFERRED}, S.ASSIGNED, "改派"),
    _t("close", {S.ACCEPTED, S.REPLIED}, S.CLOSED, "办结"),
    _t("rate_satisfied", {S.CLOSED}, S.ARCHIVED, "评价并销号"),
    _t("rate_unsatisfied", {S.CLOSED}, S.REOPENED, "不满意，二次办理"),
    _t("expire_rating", {S.CLOSED}, S.UNRATED, "未评价"),
    _t("merge", {S.SUBMITTED, S.ASSIGNED}, S.MERGED, "并单"),
    _t("reject", {S.SUBMITTED, S.ASSIGNED, S.ACCEPTED, S.RETURNED}, S.REJECTED, "不予受理",
       needs_reason=True),
    _t("withdraw", OPEN_STATUSES, S.WITHDRAWN, "撤回"),
])


class IllegalTransition(DomainError):
    """The action is not allowed from the case's current status (or lacks its reason).

    `str()` is the detail for logs; `message` what the caller is told (Chinese, with the status's label).
    """

    kind = CONFLICT
    code = "illegal_transition"

    def __init__(self, action: str, status: str, detail: str | None = None):
        detail = detail or f"action {action!r} is not allowed in status {status!r}"
        if "already rated" in detail:
            message = "本轮已评价"
        else:
            message = f"当前状态（{STATUS_LABELS.get(status, status)}）不能执行该操作"
        super().__init__(message)
        self.args = (detail,)
        self.action, self.status = action, status


def check(action: str, status: str, reason: str | None = None) -> Transition:
    """Return the transition for `action` from `status`, or raise IllegalTransition."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise IllegalTransition(action, status, f"unknown action {action!r}")
    if status not in transition.sources:
        raise IllegalTransition(action, status)
    if transition.needs_reason and not (reason and reason.strip()):
        raise IllegalTransition(action, status, f"action {action!r} needs a reason")
    return transition


def allowed_actions(status: str) -> list[str]:
    """The actions the table allows from `status` (for handlers' UIs)."""
    return [name for name, t in TRANSITIONS.items() if status in t.sources]
