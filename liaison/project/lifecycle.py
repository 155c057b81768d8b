"""The 民生实事 project lifecycle: planned (计划) → in_progress (实施中) → completed (已完成, then 测评).
Status changes go through `TRANSITIONS`; milestone work and 测评 are `CASEWORK` (the status stays)."""
from __future__ import annotations

from dataclasses import dataclass

from liaison.core.errors import CONFLICT, DomainError

PLANNED, IN_PROGRESS, COMPLETED = "planned", "in_progress", "completed"
STATUS_LABELS = {PLANNED: "计划中", IN_PROGRESS: "实施中", COMPLETED: "已完成"}
COLOR_LABELS = {"green": "绿灯（按计划推进）", "yellow": "黄灯（节点临近未完成）", "red": "红灯（节点逾期未完成）"}


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str | None
    label: str


def _t(action, sources, target, label):
    return action, Transition(action, frozenset(sources), target, label)


TRANSITIONS = dict([
    _t("start", {PLANNED}, IN_PROGRESS, "开工实施"),
    _t("complete", {IN_PROGRESS}, COMPLETED, "完成"),
])
CASEWORK = dict([
    _t("add_milestone", {PLANNED, IN_PROGRESS}, None, "新增计划节点"),
    _t("report_progress", {IN_PROGRESS}, None, "报告节点完成"),
    _t("rate", {COMPLETED}, None, "完成测评"),
])
ACTIONS = {**TRANSITIONS, **CASEWORK}


class IllegalTransition(DomainError):
    kind = CONFLICT
    code = "illegal_transition"

    def __init__(self, action: str, status: str):
        super().__init__(f"项目当前状态（{STATUS_LABELS.get(status, status)}）不能执行该操作")
        self.args = (f"action {action!r} is not allowed in status {status!r}",)


def check(action: str, status: str) -> Transition:
    transition = ACTIONS.get(action)
    if transition is None or status not in transition.sources:
        raise IllegalTransition(action, status)
    return transition
