"""What a resident's WeChat message or event means for the domain, and the passive reply it gets.

The webhook (bot/) verifies, decrypts and parses; it hands an `Incoming` here and renders the returned
text. Deduplication lives here too: one `InboundMessage` row per WeChat dedup key, inserted in the same
transaction as everything the message causes, so a retried delivery creates nothing new and gets the
reply stored the first time.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.case import lifecycle
from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseFollower, Rating
from liaison.core import ratelimit
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import broadcasts, surveys
from liaison.intake import service as intake
from liaison.messaging import channels, outbox
from liaison.messaging.models import InboundMessage
from liaison.messaging.texts import rating_prompt_text
from liaison.people import directory
from liaison.people.models import DEPUTY_LEVEL_NAMES, Deputy, DeputyGrid, Enterprise, Grid, Resident, Station
from liaison.people.service import Principal, record_consents

log = logging.getLogger(__name__)

MAX_CASE_TEXT = 2000
RATING_WORDS = {
    "1": "satisfied", "满意": "satisfied", "非常满意": "satisfied",
    "2": "basically_satisfied", "基本满意": "basically_satisfied",
    "3": "unsatisfied", "不满意": "unsatisfied",
}
MENU_FIND_DEPUTY, MENU_MY_CASES, MENU_RATE = "FIND_DEPUTY", "MY_CASES", "RATE"
WINDOW_EVENTS = ("subscribe", "subscribe_scan", "scan", "click")  # open a 1-minute window
# Reports on the account's own jobs: the sender is WeChat's mass-send helper ("mphelper"), not a resident.
ACCOUNT_EVENTS = ("masssendjobfinish",)


@dataclass(frozen=True)
class MassJobReport:
    """WeChat's MASSSENDJOBFINISH counts for one mass job (`msg_id` as its send call returned it)."""

    msg_id: int
    status: str | None = None     # "send success", "send fail", "err(10001)", …
    total: int | None = None
    filtered: int | None = None   # followers WeChat did not deliver to
    sent: int | None = None
    errors: int | None = None


@dataclass(frozen=True)
class Incoming:
    """A parsed WeChat push, independent of wechatpy's classes."""

    openid: str
    msg_type: str                 # text | voice | image | location | event | ...
    create_time: int
    msg_id: str | None = None
    content: str | None = None    # text content or voice recognition
    event: str | None = None      # subscribe | SCAN | CLICK | unsubscribe | ...
    event_key: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    label: str | None = None
    media_id: str | None = None
    subscriptions: tuple[tuple[str, str], ...] = ()  # (template id, accept|reject) from subscribe_msg_*
    report: MassJobReport | None = None

    @property
    def dedup_key(self) -> str:
        """WeChat's dedup key: MsgId for messages; FromUserName + CreateTime + Event for events.

        EventKey is added so two different menu taps within one second stay two events; a retry
        repeats all four fields.
        """
        if self.msg_id:
            return f"msg:{self.msg_id}"
        job = self.report.msg_id if self.report else ""  # two mass jobs may finish within one second
        key = f"evt:{self.openid}:{self.create_time}:{self.event or self.msg_type}:{self.event_key or job}"
        return key[:128]


def handle(session: Session, incoming: Incoming, *, join_window: timedelta,
           now: datetime | None = None) -> str | None:
    """Process one delivery exactly once and return its passive reply text (None = "success").

    The delivery's `InboundMessage` row is inserted last, in the same transaction: a concurrent
    delivery of the same message blocks on the unique key until this one commits and then fails
    with IntegrityError, rolling back everything it did; the caller answers it from
    `stored_reply`. Inserting last keeps the unique-key wait out of the common path.
    """
    now = now or utcnow()
    if incoming.msg_type == "event" and (incoming.event or "").lower() in ACCOUNT_EVENTS:
        _account_event(session, incoming)
        session.add(InboundMessage(dedup_key=incoming.dedup_key, msg_type=incoming.msg_type,
                                   received_at=now, reply_text=None))
        session.flush()
        return None
    resident, is_new = _resident(session, incoming.openid)
    reply, case = _dispatch(session, resident, incoming, join_window, now, is_new)
    session.add(InboundMessage(dedup_key=incoming.dedup_key, msg_type=incoming.msg_type,
                               received_at=now, resident=resident, case=case, reply_text=reply))
    session.flush()
    return reply


def _account_event(session: Session, incoming: Incoming) -> None:
    """MASSSENDJOBFINISH: WeChat's count of what a broadcast's mass job reached."""
    report = incoming.report
    if report is None:
        return
    batch = broadcasts.record_mass_report(session, report.msg_id, status=report.status, total=report.total,
                                          filtered=report.filtered, sent=report.sent, errors=report.errors)
    if batch is None:  # a mass send made outside this system (e.g. from the WeChat admin console)
        log.info("report of unknown mass job %s ignored", report.msg_id)


def stored_reply(session: Session, dedup_key: str) -> tuple[bool, str | None]:
    """(found, reply) for an already processed delivery."""
    record = session.scalar(select(InboundMessage).where(InboundMessage.dedup_key == dedup_key))
    if record is None:
        return False, None
    return True, record.reply_text


def is_duplicate_error(error: IntegrityError) -> bool:
    return "inbound_messages" in str(error.orig) or "dedup_key" in str(error.orig)


def _resident(session: Session, openid: str) -> tuple[Resident, bool]:
    """The resident behind an official-account openid, created on first contact (and whether new).

    A new row is flushed by `_dispatch` once its window fields are set: one INSERT, no UPDATE.
    """
    resident = session.scalar(select(Resident).where(Resident.oa_openid == openid))
    if resident is not None:
        return resident, False
    resident = Resident(oa_openid=openid, window_used=0)
    session.add(resident)
    return resident, True


def _learn_unionid(session: Session, resident: Resident) -> None:
    """Ask WeChat (through the outbox: a worker calls user/info) who this new follower is across apps.

    The resident was created in this transaction, so the key is new: no lookup, no flush of its own.
    """
    outbox.add(session, "fetch_unionid", f"unionid:{resident.id}", {"resident_id": resident.id},
               new_key=True)


def _dispatch(session: Session, resident: Resident, incoming: Incoming, join_window: timedelta,
              now: datetime, is_new: bool) -> tuple[str | None, Case | None]:
    if incoming.msg_type == "event":
        resident.last_event_at = now
        event = (incoming.event or "").lower()
        if event in WINDOW_EVENTS:
            _window_opened(session, resident, "event", now, is_new)
        if is_new:
            session.flush()
            _learn_unionid(session, resident)
        return _event(session, resident, incoming), None
    resident.last_message_at = now
    _window_opened(session, resident, "message", now, is_new)
    if is_new:
        session.flush()
        _learn_unionid(session, resident)
    if incoming.msg_type in ("text", "voice"):
        text = (incoming.content or "").strip()
        if not text:
            if incoming.msg_type == "voice":
                return "抱歉，未能识别您的语音，请用文字描述您的诉求。", None
            return None, None
        return _text(session, resident, text, join_window, now, is_new)
    if incoming.msg_type == "location":
        case = _recent_open_case(session, resident, now, join_window)
        if case is None:
            return "已收到您的位置。请用文字描述需要反映的问题，我们会一并登记。", None
        case.location = {"lat": incoming.latitude, "lng": incoming.longitude,
                         "label": incoming.label, "coord": "gcj02"}
        cases.add_information(session, case, cases.Actor("resident", resident.id),
                              f"[位置] {incoming.label or ''}".strip())
        return f"已将位置补充到诉求 {case.number}。", case
    if incoming.msg_type == "image":
        case = _recent_open_case(session, resident, now, join_window)
        if case is None:
            return "已收到图片。请用文字描述需要反映的问题，图片可在描述后补充。", None
        cases.add_information(session, case, cases.Actor("resident", resident.id),
                              f"[图片] {incoming.media_id or ''}".strip())
        return f"已将图片补充到诉求 {case.number}。", case
    return None, None


def _window_opened(session: Session, resident: Resident, kind: str, now: datetime, is_new: bool) -> None:
    """A user action opened a customer-service window: messages waiting for one may go now."""
    channels.open_window(resident, kind, now)
    if not is_new:  # nothing can be waiting for someone we have never seen
        outbox.release_waiting(session, resident.id, limit=channels.window_remaining(resident, now))


def _text(session: Session, resident: Resident, text: str, join_window: timedelta,
          now: datetime, is_new: bool) -> tuple[str | None, Case | None]:
    text = text[:MAX_CASE_TEXT]
    if not is_new:  # a reply 1/2/3 right after scanning a survey code is the vote
        answer = surveys.answer_from_chat(session, resident, text, now)
        if answer is not None:
            return answer, None
    rating = RATING_WORDS.get(re.sub(r"[\s。.!！]", "", text))
    if rating is not None and not is_new:
        case = _awaiting_rating(session, resident)
        if case is not None:
            return _rate(session, case, resident, rating), case
    actor = cases.Actor("resident", resident.id)
    recent = None if is_new else _recent_open_case(session, resident, now, join_window)
    if recent is not None and recent.status in (Status.SUBMITTED, Status.ASSIGNED):
        # "路灯坏了" / "在3号楼门口" / "好几天了": one matter typed in pieces is one case.
        before = cases.handler_label(recent)
        cases.add_information(session, recent, actor, text, reroute=True)
        after = cases.handler_label(recent)
        note = f"，改由{after}办理" if after != before else ""
        return f"已补充到您的诉求 {recent.number}{note}。", recent
    grid_id = resident.grid_id or directory.get(session).grid_in_text(text)
    duplicate = cases.find_duplicate(session, text, grid_id, exclude_resident_id=resident.id, now=now)
    if duplicate is not None:
        cases.follow_case(session, duplicate, resident, text)
        return (f"您反映的问题已有群众反映（诉求 {duplicate.number}），正由{cases.handler_label(duplicate)}"
                f"办理。已将您加入关注，办理进展会同步告知您。"), duplicate
    if not ratelimit.hit(ratelimit.CASES_PER_RESIDENT, "resident", str(resident.id)):
        return _over_case_limit(session, resident, actor, text)
    case = cases.open_case(session, resident, text, now=now)
    return _new_case_reply(case), case


def _over_case_limit(session: Session, resident: Resident, actor, text: str) -> tuple[str, Case | None]:
    """Too many new cases from one resident in a short time (each one pushes a notice to a deputy).

    The message is never dropped: it joins the resident's latest open case, or, with none open, the
    resident is told plainly to write again later.
    """
    latest = session.scalar(select(Case).where(Case.resident_id == resident.id,
                                               Case.status.in_(lifecycle.OPEN_STATUSES))
                            .order_by(Case.last_message_at.desc()).limit(1))
    log.info("resident %s over the new-case limit", resident.public_id)
    if latest is not None:
        cases.add_information(session, latest, actor, text)
        return (f"您短时间内反映的事项较多，这条内容已补充到您的诉求 {latest.number}，"
                f"由{cases.handler_label(latest)}一并办理。如果是另一件事，请稍后再单独发送。"), latest
    return "您短时间内反映的事项较多，暂时不能登记新的诉求，请稍后再发送。", None


def _new_case_reply(case: Case) -> str:
    lines = [f"您的诉求已登记，编号 {case.number}。", f"办理人：{cases.handler_label(case)}。"]
    if case.handler_kind == "department" and case.deputy_id is not None:
        lines.append(f"负责代表：{cases.deputy_label(case)}，跟踪督办。")
    reasons = case.routing.get("reasons") or []
    if reasons:
        lines.append("分派依据：" + "；".join(reasons[:2]))
    if case.deadline is not None:
        local = case.deadline.astimezone(CHINA_TZ)
        lines.append(f"答复时限：{local:%Y年%m月%d日}前。")
    lines.append("如需补充，直接回复文字即可。")
    return "\n".join(lines)


def _recent_open_case(session: Session, resident: Resident, now: datetime,
                      window: timedelta) -> Case | None:
    return session.scalar(
        select(Case).where(Case.resident_id == resident.id,
                           Case.status.in_(lifecycle.OPEN_STATUSES),
                           Case.last_message_at >= now - window)
        .order_by(Case.last_message_at.desc()).limit(1))


def _awaiting_rating(session: Session, resident: Resident) -> Case | None:
    own = session.scalars(select(Case).where(Case.resident_id == resident.id,
                                             Case.status == Status.CLOSED)).all()
    followed = session.scalars(select(Case).join(CaseFollower, CaseFollower.case_id == Case.id).where(
        CaseFollower.resident_id == resident.id, Case.status == Status.CLOSED)).all()
    rated = set(session.execute(select(Rating.case_id, Rating.round).where(
        Rating.resident_id == resident.id)).all())
    pending = [c for c in [*own, *followed] if (c.id, c.round) not in rated]
    pending.sort(key=lambda c: c.closed_at or c.updated_at, reverse=True)
    return pending[0] if pending else None


def _rate(session: Session, case: Case, resident: Resident, value: str) -> str:
    cases.rate(session, case, resident, value, channel="chat")
    label = cases.RATING_VALUES[value]
    if case.resident_id != resident.id:
        return f"感谢您对诉求 {case.number} 的评价（{label}）。"
    if case.status == Status.RULING:
        return (f"很抱歉两轮办理仍没有让您满意。诉求 {case.number} 已提交人大工委研究裁定，"
                f"结果会告诉您。")
    if case.status == Status.REOPENED:
        return (f"很抱歉没有让您满意。诉求 {case.number} 已转入二次办理（第{case.round}轮），"
                f"办理人将重新处理并答复您。")
    return f"感谢您的评价（{label}）！诉求 {case.number} 已办结销号。"


def _scene_target(session: Session, scene: str) -> tuple[Grid | None, Deputy | None, Station | None]:
    kind, _, code = scene.partition(":")
    if kind == "grid":
        return session.scalar(select(Grid).where(Grid.code == code)), None, None
    if kind == "deputy":
        deputy = session.scalar(select(Deputy).where(Deputy.code == code))
        grid = None
        if deputy is not None:
            link = session.scalar(select(DeputyGrid).where(DeputyGrid.deputy_id == deputy.id)
                                  .order_by(DeputyGrid.role != "lead"))
            grid = link.grid if link else None
        return grid, deputy, None
    if kind == "station":
        return None, None, session.scalar(select(Station).where(Station.code == code))
    if kind == "enterprise":  # an enterprise's code: its enterprise grid
        enterprise = session.scalar(select(Enterprise).where(Enterprise.code == code))
        return (enterprise.grid if enterprise is not None else None), None, None
    return None, None, None


def deputy_card(deputy: Deputy, grid: Grid | None) -> str:
    """The deputy's card as shown to a resident after a scan or a 找代表 tap."""
    lines = [f"您的网格代表：{deputy.name}（{DEPUTY_LEVEL_NAMES.get(deputy.level, '')}人大代表）"]
    if grid is not None:
        lines.append(f"所在网格：{grid.name}")
    if deputy.duties:
        lines.append(f"职务：{deputy.duties}")
    if deputy.reception_hours:
        lines.append(f"接待时间：{deputy.reception_hours}")
    if deputy.station is not None:
        lines.append(f"联络站：{deputy.station.name}")
    lines.append("有什么困难或建议，直接发文字或语音给我们，代表会尽快办理。")
    return "\n".join(lines)


def _event(session: Session, resident: Resident, incoming: Incoming) -> str | None:
    event = (incoming.event or "").lower()
    if event in ("subscribe", "subscribe_scan", "scan"):
        key = incoming.event_key or ""
        scene = key[len("qrscene_"):] if key.startswith("qrscene_") else key
        resident.subscribed = True
        if scene.startswith("survey:"):
            return surveys.on_scan(session, resident, scene[len("survey:"):])
        if scene.startswith(intake.SCENE_PREFIX):  # a 交办单's code: follow and rate that case
            return intake.claim(session, resident, scene[len(intake.SCENE_PREFIX):])
        if scene:
            grid, deputy, station = _scene_target(session, scene)
            if station is not None:
                return (f"欢迎来到{station.name}！接待时间：{station.reception_hours or '以公示为准'}。\n"
                        "直接发送文字或语音即可反映诉求。")
            if deputy is not None or grid is not None:
                # 一人一码: a deputy's own code makes that deputy responsible for the resident's cases
                # (a deputy without a grid too); a grid's code hands them back to its lead deputy.
                resident.deputy_id = deputy.id if deputy is not None else None
            if deputy is not None and grid is None:
                return deputy_card(deputy, None)
            if grid is not None:
                resident.grid_id = grid.id
                deputy = deputy or cases.lead_deputy(session, grid.id)
                if deputy is not None:
                    return "已为您绑定网格。\n" + deputy_card(deputy, grid)
                return f"已为您绑定网格：{grid.name}。直接发送文字或语音即可反映诉求。"
        if event.startswith("subscribe"):
            return ("欢迎关注“一键找代表”！直接发送文字或语音反映您身边的困难和建议；"
                    "扫描小区公示牌上的二维码，可绑定您的网格代表。")
        return None
    if event == "unsubscribe":
        resident.subscribed = False
        channels.close_window(resident)
        return None
    if event == "click":
        return _menu(session, resident, incoming.event_key or "")
    if event in ("subscribe_msg_popup_event", "subscribe_msg_change_event") and incoming.subscriptions:
        results = {template: ("accept" if status == "accept" else "reject")
                   for template, status in incoming.subscriptions}
        record_consents(session, Principal(role="resident", resident=resident), results)
        return None
    return None


def _menu(session: Session, resident: Resident, key: str) -> str | None:
    if key == MENU_FIND_DEPUTY:
        if resident.grid_id is None:
            return "您还没有绑定网格。请扫描小区公示牌上的“一键找代表”二维码，或直接发送诉求并写明小区名称。"
        deputy = cases.lead_deputy(session, resident.grid_id)
        grid = session.get(Grid, resident.grid_id)
        return deputy_card(deputy, grid) if deputy else f"您所在的网格：{grid.name}，暂未配置代表。"
    if key == MENU_MY_CASES:
        recent = session.scalars(select(Case).where(Case.resident_id == resident.id)
                                 .order_by(Case.created_at.desc()).limit(5)).all()
        # Cases they follow (并单) are someone else's: number, status and handler only, never the text.
        followed = session.scalars(select(Case).join(CaseFollower, CaseFollower.case_id == Case.id).where(
            CaseFollower.resident_id == resident.id, Case.resident_id != resident.id)
            .order_by(CaseFollower.created_at.desc()).limit(5)).all()
        if not recent and not followed:
            return "您还没有提交过诉求。直接发送文字或语音即可反映。"
        lines = []
        if recent:
            lines.append("您最近的诉求：")
            lines += [f"{c.number} {lifecycle.STATUS_LABELS[c.status]}：{c.text[:16]}" for c in recent]
        if followed:
            lines.append("您关注的同类诉求：")
            lines += [f"{c.number} {lifecycle.STATUS_LABELS[c.status]}，{cases.handler_label(c)}办理"
                      for c in followed]
        return "\n".join(lines)
    if key == MENU_RATE:
        case = _awaiting_rating(session, resident)
        if case is None:
            return "您目前没有待评价的诉求。"
        return rating_prompt_text(case.number, case.summary)
    return None
