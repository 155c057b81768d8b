"""The suggestion lifecycle: the one table of what may happen to a 代表建议 in each status.

起草 → 审查 (the county's steps, e.g. 三审: 联络站初审 → 代表工委审核 → 主任会议审定) → 交办 (主办 + 协办)
→ 答复 (A/B/C) → 双满意测评 → 销号, or 二次办理 → 答复 again. Every status change goes through
`TRANSITIONS`; work that leaves the status as it is (测评, 延期, 重点督办 entries, 个性/共性) is in
`CASEWORK`. Anything not listed is refused with `IllegalTransition` and changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from liaison.core.errors import CONFLICT, DomainError


class Status:
    DRAFT = "draft"                # 起草中
    REVIEWING = "reviewing"        # 审查中 (at `review_step`)
    APPROVED = "approved"          # 已审定，待交办
    ASSIGNED = "assigned"          # 已交办，办理中
    ANSWERED = "answered"          # 已答复，待测评
    SECOND_ROUND = "second_round"  # 二次办理
    ARCHIVED = "archived"          # 已销号 (final)
    REJECTED = "rejected"          # 不予立案 (final)
    WITHDRAWN = "withdrawn"        # 已撤回 (final)


STATUS_LABELS = {
    Status.DRAFT: "起草中", Status.REVIEWING: "审查中", Status.APPROVED: "已审定待交办",
    Status.ASSIGNED: "办理中", Status.ANSWERED: "已答复待测评", Status.SECOND_ROUND: "二次办理",
    Status.ARCHIVED: "已销号", Status.REJECTED: "不予立案", Status.WITHDRAWN: "已撤回",
}
FINAL_STATUSES = frozenset({Status.ARCHIVED, Status.REJECTED, Status.WITHDRAWN})
# A department is working it: the reply limit, reminders and escalation apply.
HANDLING_STATUSES = frozenset({Status.ASSIGNED, Status.SECOND_ROUND})
# Handed to the departments (they see it from here on).
ASSIGNED_STATUSES = frozenset({Status.ASSIGNED, Status.ANSWERED, Status.SECOND_ROUND, Status.ARCHIVED})


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str | None  # None: the status stays
    label: str  # Chinese, shown on the timeline
    needs_reason: bool = False


def _t(action, sources, target, label, needs_reason=False) -> tuple[str, Transition]:
    return action, Transition(action, frozenset(sources), target, label, needs_reason)


S = Status
_ACTIVE = {S.APPROVED, S.ASSIGNED, S.ANSWERED, S.SECOND_ROUND}

TRANSITIONS: dict[str, Transition] = dict([
    _t("submit", {S.DRAFT}, S.REVIEWING, "提交审查"),
    _t("pass_step", {S.REVIEWING}, S.REVIEWING, "审查通过（进入下一审）"),
    _t("approve", {S.REVIEWING}, S.APPROVED, "审定通过"),
    _t("send_back", {S.REVIEWING}, S.DRAFT, "退回修改", needs_reason=True),
    _t("reject", {S.REVIEWING}, S.REJECTED, "不予立案", needs_reason=True),
    _t("withdraw", {S.DRAFT, S.REVIEWING}, S.WITHDRAWN, "撤回"),
    _t("assign", {S.APPROVED}, S.ASSIGNED, "交办"),
    _t("answer", {S.ASSIGNED, S.SECOND_ROUND}, S.ANSWERED, "答复"),
    _t("archive", {S.ANSWERED}, S.ARCHIVED, "双满意，销号"),
    _t("reopen", {S.ANSWERED}, S.SECOND_ROUND, "测评不满意，二次办理"),
])

CASEWORK: dict[str, Transition] = dict([
    _t("edit", {S.DRAFT}, None, "修改建议"),
    _t("rate", {S.ANSWERED}, None, "测评"),
    _t("extend", {S.ASSIGNED, S.SECOND_ROUND}, None, "延期", needs_reason=True),
    _t("set_nature", _ACTIVE, None, "确定个性/共性"),
    _t("supervise", _ACTIVE, None, "重点督办"),
    _t("complete_plan", {S.ANSWERED, S.SECOND_ROUND, S.ARCHIVED}, None, "列入计划事项办结"),
])

ACTIONS: dict[str, Transition] = {**TRANSITIONS, **CASEWORK}


class IllegalTransition(DomainError):
    """The action is not allowed from the suggestion's status (or lacks its reason)."""

    kind = CONFLICT
    code = "illegal_transition"

    def __init__(self, action: str, status: str, detail: str | None = None):
        detail = detail or f"action {action!r} is not allowed in status {status!r}"
        if "needs a reason" in detail:
            message = "请填写理由"
        else:
            message = f"建议当前状态（{STATUS_LABELS.get(status, status)}）不能执行该操作"
        super().__init__(message)
        self.args = (detail,)
        self.action, self.status = action, status


def check(action: str, status: str, reason: str | None = None) -> Transition:
    """The table's row for `action` from `status`, or IllegalTransition."""
    transition = ACTIONS.get(action)
    if transition is None:
        raise IllegalTransition(action, status, f"unknown action {action!r}")
    if status not in transition.sources:
        raise IllegalTransition(action, status)
    if transition.needs_reason and not (reason and reason.strip()):
        raise IllegalTransition(action, status, f"action {action!r} needs a reason")
    return transition


def allows(action: str, status: str) -> bool:
    transition = ACTIONS.get(action)
    return transition is not None and status in transition.sources


def allowed_actions(status: str) -> list[str]:
    return [name for name in ACTIONS if allows(name, status)]
