"""The case lifecycle: the one table of what may happen to a case in each status.

群众点单 → 代表接单 → 派单 → 部门办单 → 代表督单 → 群众评单. Every status change of a case goes through
`TRANSITIONS`; the casework that leaves the status as it is (改类, 督办, asking for or adding
information, asking for an extension, rating) is listed in `CASEWORK`. The services check an action
with `check` before doing it and the mini-program's `access.allowed_actions` asks `allows`, both on
`ACTIONS`, so what the API accepts and what the mini-program offers cannot disagree. Anything not
listed is refused with `IllegalTransition` and changes nothing.
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
    RULING = "ruling"            # 待裁定: 不满意 again after the second round, staff rule on it
    CONCLUDED = "concluded"      # 已终结: staff ruled with a written reason, recorded as unsatisfied (final)


STATUS_LABELS = {
    Status.SUBMITTED: "已提交", Status.ASSIGNED: "待受理", Status.ACCEPTED: "办理中",
    Status.REPLIED: "已答复", Status.TRANSFERRED: "已派单", Status.RETURNED: "已退单",
    Status.CLOSED: "已办结待评价", Status.REOPENED: "二次办理", Status.ARCHIVED: "已销号",
    Status.UNRATED: "已办结（未评价）", Status.MERGED: "已并单", Status.REJECTED: "不予受理",
    Status.WITHDRAWN: "已撤回", Status.RULING: "待工委裁定", Status.CONCLUDED: "已终结",
}

FINAL_STATUSES = frozenset({Status.ARCHIVED, Status.UNRATED, Status.MERGED, Status.REJECTED,
                            Status.WITHDRAWN, Status.CONCLUDED})
# 待裁定 is neither worked (no deadline, no escalation) nor final: staff owe a ruling.
OPEN_STATUSES = frozenset(set(STATUS_LABELS) - FINAL_STATUSES - {Status.CLOSED, Status.RULING})
# A handler is still working the case (deadlines and escalation apply).
WORKING_STATUSES = OPEN_STATUSES


@dataclass(frozen=True)
class Transition:
    """One row of the table: an action allowed from `sources` that leads to `target` (None: the
    status stays), optionally only while the case is with one of `handler_kinds`."""

    action: str
    sources: frozenset[str]
    target: str | None
    label: str  # Chinese, shown on the timeline
    needs_reason: bool = False
    handler_kinds: frozenset[str] | None = None  # None: whoever handles it


def _t(action, sources, target, label, needs_reason=False, handler_kinds=None) -> tuple[str, Transition]:
    return action, Transition(action, frozenset(sources), target, label, needs_reason,
                              frozenset(handler_kinds) if handler_kinds is not None else None)


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
    _t("rate_basically_reopen", {S.CLOSED}, S.REOPENED, "基本满意，二次办理"),
    _t("rate_unsatisfied_again", {S.CLOSED}, S.RULING, "再次不满意，提请工委裁定"),
    _t("conclude", {S.RULING}, S.CONCLUDED, "工委裁定终结", needs_reason=True),
    _t("expire_rating", {S.CLOSED}, S.UNRATED, "未评价"),
    _t("merge", {S.SUBMITTED, S.ASSIGNED}, S.MERGED, "并单", needs_reason=True),
    _t("reject", {S.SUBMITTED, S.ASSIGNED, S.ACCEPTED, S.RETURNED}, S.REJECTED, "不予受理",
       needs_reason=True),
    _t("withdraw", OPEN_STATUSES, S.WITHDRAWN, "撤回"),
])


# Casework that leaves the status as it is. 改类 is allowed on any case still being worked
# (including 已答复: the handler answered but the case is not closed), never once it is closed.
_DEPARTMENT = {"department"}
CASEWORK: dict[str, Transition] = dict([
    _t("correct_category", WORKING_STATUSES, None, "更正分类"),
    _t("urge", WORKING_STATUSES, None, "督办", handler_kinds=_DEPARTMENT),
    _t("request_information", WORKING_STATUSES, None, "请群众补充信息"),
    _t("request_extension", WORKING_STATUSES, None, "申请延期", needs_reason=True,
       handler_kinds=_DEPARTMENT),
    _t("add_information", OPEN_STATUSES, None, "补充信息"),
    _t("rate", {S.CLOSED}, None, "评价"),  # the resident's rating decides rate_satisfied/unsatisfied
    _t("return_visit", {S.CLOSED}, None, "回访"),  # staff record a rating taken by phone/visit
    # 三级联动: the case stays with its handler (deputy, department) while the city weighs in; the
    # hand-up's own status moves through REFERRAL_TRANSITIONS below.
    _t("hand_up", WORKING_STATUSES | {S.RULING}, None, "上报市级协调", needs_reason=True),
    _t("city_answer", set(STATUS_LABELS), None, "市级答复/批示", needs_reason=True),
    _t("hand_down", set(STATUS_LABELS), None, "市级交回县级办理"),
])

# Everything that may happen to a case, by action name.
ACTIONS: dict[str, Transition] = {**TRANSITIONS, **CASEWORK}



class ReferralStatus:
    AT_CITY = "at_city"      # 待市级答复: handed up, the city has not answered yet
    ANSWERED = "answered"    # 市级已答复: the city answered or instructed, still with the city
    RETURNED = "returned"    # 已交回县级 (final for this hand-up; the county may hand it up again)


REFERRAL_LABELS = {ReferralStatus.AT_CITY: "待市级答复", ReferralStatus.ANSWERED: "市级已答复",
                   ReferralStatus.RETURNED: "已交回县级"}
R = ReferralStatus
# A hand-up's own table: (sources, target). `None` as a source is "no open hand-up".
REFERRAL_TRANSITIONS: dict[str, tuple[frozenset, str]] = {
    "hand_up": (frozenset({None, R.RETURNED}), R.AT_CITY),
    "city_answer": (frozenset({R.AT_CITY, R.ANSWERED}), R.ANSWERED),
    "hand_down": (frozenset({R.AT_CITY, R.ANSWERED}), R.RETURNED),
}


def check_referral(action: str, referral_status: str | None) -> str:
    """The hand-up's next status for `action`, or IllegalTransition (the message names the status)."""
    sources, target = REFERRAL_TRANSITIONS[action]
    if referral_status not in sources:
        label = REFERRAL_LABELS.get(referral_status, "未上报市级")
        raise IllegalTransition(action, referral_status or "none", message=f"上报状态（{label}）不能执行该操作")
    return target


# Why an action is refused though the status allows it (Chinese, may be shown to the person acting).
HANDLER_REFUSALS = {"urge": "只能督办已派单给部门的诉求", "request_extension": "只有承办部门可以申请延期"}


class IllegalTransition(DomainError):
    """The action is not allowed from the case's current status (or lacks its reason).

    `str()` is the detail for logs; `message` what the caller is told (Chinese, with the status's label).
    """

    kind = CONFLICT
    code = "illegal_transition"

    def __init__(self, action: str, status: str, detail: str | None = None, *, message: str | None = None):
        detail = detail or f"action {action!r} is not allowed in status {status!r}"
        if message is None and "already rated" in detail:
            message = "本轮已评价"
        elif message is None:
            message = f"当前状态（{STATUS_LABELS.get(status, status)}）不能执行该操作"
        super().__init__(message)
        self.args = (detail,)
        self.action, self.status = action, status


def check(action: str, status: str, reason: str | None = None, *,
          handler_kind: str | None = None) -> Transition:
    """Return the table's row for `action` from `status`, or raise IllegalTransition.

    A row limited to some handlers (督办 only while a department handles the case) also needs the
    case's `handler_kind`."""
    transition = ACTIONS.get(action)
    if transition is None:
        raise IllegalTransition(action, status, f"unknown action {action!r}")
    if status not in transition.sources:
        raise IllegalTransition(action, status)
    if transition.handler_kinds is not None and handler_kind not in transition.handler_kinds:
        raise IllegalTransition(action, status, f"action {action!r} needs another handler",
                                message=HANDLER_REFUSALS.get(action))
    if transition.needs_reason and not (reason and reason.strip()):
        raise IllegalTransition(action, status, f"action {action!r} needs a reason")
    return transition


def check_case(action: str, case, reason: str | None = None) -> Transition:
    """`check` for a case: its status and its handler."""
    return check(action, case.status, reason, handler_kind=case.handler_kind)


def allows(action: str, status: str, handler_kind: str | None = None) -> bool:
    """Whether the table allows `action` now (a needed reason is the caller's input, not checked)."""
    transition = ACTIONS.get(action)
    return (transition is not None and status in transition.sources
            and (transition.handler_kinds is None or handler_kind in transition.handler_kinds))


def allowed_actions(status: str, handler_kind: str | None = None) -> list[str]:
    """The actions the table allows from `status` (for handlers' UIs)."""
    return [name for name in ACTIONS if allows(name, status, handler_kind)]
