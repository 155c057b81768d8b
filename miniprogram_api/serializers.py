"""Domain rows → response models. What a resident sees of the timeline is filtered here."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import access
from liaison.case import service as cases
from liaison.case.lifecycle import STATUS_LABELS, TRANSITIONS
from liaison.case.models import Case, CaseEvent, CaseFollower, ExtensionRequest, Notice, Rating
from liaison.people.models import Account, Deputy, DeputyGrid, Grid, Station
from liaison.people.service import RESIDENT, ROLE_LABELS, Principal

from . import schemas as s

EXTRA_ACTION_LABELS = {
    "media_lost": "图片或语音已过期，未能保存",
    "submit": "提交诉求", "attach": "上传图片", "add_information": "补充信息", "follow": "附议（并单）",
    "merged_in": "并入诉求", "reroute": "重新分派", "request_information": "请群众补充信息",
    "urge": "督办", "extension_requested": "申请延期", "extension_approved": "延期获批",
    "extension_rejected": "延期未获批准", "follower_rating": "评价", "rate": "评价",
    "hand_up": "上报市级协调", "city_answer": "市级答复/批示", "hand_down": "市级交回县级办理",
}
# Timeline details a resident may read; internal notes (routing reasons, urge notes) stay inside.
RESIDENT_DETAIL_KEYS = {"text", "summary", "rating", "comment", "question", "department", "round",
                        "photos", "handler", "deadline", "channel"}
RESIDENT_HIDDEN_ACTIONS = {"extension_requested", "extension_rejected"}


def action_label(action: str) -> str:
    transition = TRANSITIONS.get(action)
    return transition.label if transition else EXTRA_ACTION_LABELS.get(action, action)


def ref(row) -> s.Ref | None:
    return s.Ref(code=row.code, name=row.name) if row is not None else None


def event_out(entry: CaseEvent, scope: access.Scope) -> s.EventOut:
    detail = dict(entry.detail or {})
    if scope.role == RESIDENT:
        if entry.actor_kind == RESIDENT and entry.actor_id != scope.principal.resident.id:
            detail = {}  # another resident's words (a follower's message or rating) stay theirs
        else:
            detail = {k: v for k, v in detail.items() if k in RESIDENT_DETAIL_KEYS}
    return s.EventOut(at=entry.at, actor_kind=entry.actor_kind, action=entry.action,
                      label=action_label(entry.action), from_status=entry.from_status,
                      to_status=entry.to_status, detail=detail)


def _case_fields(scope: access.Scope, case: Case) -> dict:
    return dict(
        id=case.public_id, number=case.number, status=case.status,
        status_label=STATUS_LABELS.get(case.status, case.status), text=case.text,
        category=case.category, handler_kind=case.handler_kind, handler=cases.handler_label(case),
        grid=ref(case.grid), department=ref(case.department), deputy=ref(case.deputy), round=case.round, deadline=case.deadline,
        overdue=access.is_overdue(case), created_at=case.created_at, updated_at=case.updated_at,
        closed_at=case.closed_at, summary=case.summary, location=case.location,
        actions=access.allowed_actions(scope, case))


# The handler's answers a follower may read, and the detail key holding each one's text.
PUBLIC_REPLIES = {"reply": "text", "close": "summary", "reject": "reason"}


def followed_case_out(session: Session, scope: access.Scope, case: Case) -> s.FollowedCaseOut:
    """The follower's view of someone else's case: built from an allow-list, never from `_case_fields`."""
    resident_id = scope.principal.resident.id
    replies = session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.action.in_(PUBLIC_REPLIES)).order_by(CaseEvent.id)).all()
    followed_at = session.scalar(select(CaseFollower.created_at).where(
        CaseFollower.case_id == case.id, CaseFollower.resident_id == resident_id))
    actions = [a for a in access.allowed_actions(scope, case) if a == "rate"]
    rated = session.scalar(select(Rating.id).where(Rating.case_id == case.id, Rating.round == case.round,
                                                   Rating.resident_id == resident_id)) is not None
    return s.FollowedCaseOut(
        id=case.public_id, number=case.number, status=case.status,
        status_label=STATUS_LABELS.get(case.status, case.status), category=case.category,
        handler=cases.handler_label(case), round=case.round, deadline=case.deadline,
        overdue=access.is_overdue(case), closed_at=case.closed_at, followed_at=followed_at,
        replies=[s.ReplyOut(at=e.at, label=action_label(e.action),
                            text=str((e.detail or {}).get(PUBLIC_REPLIES[e.action]) or ""))
                 for e in replies if (e.detail or {}).get(PUBLIC_REPLIES[e.action])],
        can_rate=bool(actions) and not rated, actions=[] if rated else actions)


def case_out(session: Session, scope: access.Scope, case: Case) -> s.CaseOut | s.FollowedCaseOut:
    """A list item: the case in full, or the follower's view."""
    if access.follows_only(scope, case):
        return followed_case_out(session, scope, case)
    return s.CaseOut(**_case_fields(scope, case))


def case_detail(session: Session, scope: access.Scope, case: Case) -> s.CaseDetailOut | s.FollowedCaseOut:
    """The case with photos and timeline, or the follower's view."""
    if access.follows_only(scope, case):
        return followed_case_out(session, scope, case)
    entries = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                              .order_by(CaseEvent.id)).all()
    role = scope.role
    photos = [p for e in entries if e.action == "attach" for p in (e.detail or {}).get("photos", [])]
    timeline = [event_out(e, scope) for e in entries
                if not (role == RESIDENT and e.action in RESIDENT_HIDDEN_ACTIONS)]
    return s.CaseDetailOut(**_case_fields(scope, case), photos=photos, timeline=timeline)


def me_out(session: Session, principal: Principal) -> s.MeOut:
    if principal.role == RESIDENT:
        resident = principal.resident
        return s.MeOut(role=RESIDENT, role_label=ROLE_LABELS[RESIDENT], name="群众", id=resident.public_id,
                       grids=[ref(resident.grid)] if resident.grid else [])
    account = principal.account
    grids = []
    if account.deputy_id:
        grids = [ref(link.grid) for link in session.scalars(
            select(DeputyGrid).where(DeputyGrid.deputy_id == account.deputy_id))]
    elif account.station_id:
        grids = [ref(g) for g in session.scalars(select(Grid).where(Grid.station_id == account.station_id)
                                                 .order_by(Grid.code))]
    return s.MeOut(role=account.role, role_label=ROLE_LABELS[account.role], name=account.name,
                   id=account.public_id, deputy=ref(account.deputy), department=ref(account.department),
                   station=ref(account.station), grids=grids)


def account_out(account: Account) -> s.AccountOut:
    return s.AccountOut(id=account.public_id, role=account.role, name=account.name,
                        deputy=ref(account.deputy), department=ref(account.department),
                        station=ref(account.station), bound=account.mp_openid is not None,
                        active=account.active)


def extension_out(request: ExtensionRequest) -> s.ExtensionOut:
    return s.ExtensionOut(
        id=request.public_id, case_id=request.case.public_id, case_number=request.case.number,
        department=ref(request.department), working_days=request.working_days, reason=request.reason,
        status=request.status, decision_note=request.decision_note, old_deadline=request.old_deadline,
        new_deadline=request.new_deadline, created_at=request.created_at, decided_at=request.decided_at)


def station_out(station: Station) -> s.StationOut:
    return s.StationOut(code=station.code, name=station.name, address=station.address,
                        reception_hours=station.reception_hours)


def grid_out(grid: Grid) -> s.GridOut:
    return s.GridOut(code=grid.code, name=grid.name, aliases=list(grid.aliases or []),
                     station=ref(grid.station), kind=grid.kind or "community")


def deputy_out(deputy: Deputy) -> s.DeputyOut:
    return s.DeputyOut(code=deputy.code, name=deputy.name, level=deputy.level, station=ref(deputy.station),
                       duties=deputy.duties, reception_hours=deputy.reception_hours,
                       grids=[ref(link.grid) for link in deputy.grid_links])


def notice_out(notice: Notice) -> s.NoticeOut:
    return s.NoticeOut(id=notice.public_id, kind=notice.kind, text=notice.text,
                       case_id=notice.case.public_id if notice.case else None,
                       case_number=notice.case.number if notice.case else None,
                       created_at=notice.created_at, read_at=notice.read_at)
