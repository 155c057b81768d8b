"""Matters raised in person, the 交办单 and 回访.

- `register_walk_in`: a deputy (at 代表周三见, a street stall, a 监督岗 visit) or station staff register
  a matter on a resident's behalf. It becomes an ordinary case (`cases.open_case`: the same routing,
  loop and deadlines); a deputy who registers it is its responsible deputy.
- `case_code` / `sheet_pdf`: the printable 交办单 of any case, with a WeChat QR code (a temporary
  parametric code, scene `case:<token>`). `claim` is what scanning it does: the resident of a walk-in
  matter takes it over in WeChat (progress messages, the rating prompt, rating by reply).
- `return_visit_due` / `record_return_visit`: 回访, staff ask residents who cannot be asked in
  WeChat; the rating they give counts as the round's rating, with the channel `return_visit`.
"""
from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from liaison.case import lifecycle, timers
from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case, Rating
from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError
from liaison.core.types import Actor
from liaison.engagement import qrcodes
from liaison.intake.models import PLACE_KINDS, VISIT_METHODS, CaseCode, ReturnVisit, WalkIn

__all__ = ["PLACE_KINDS", "VISIT_METHODS"]  # re-exported for the API
from liaison.people.models import Account, Grid, Resident

CODE_DAYS = 30  # WeChat's longest temporary QR code
SCENE_PREFIX = "case:"


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(message, kind=INVALID, field=field)


# ------------------------------------------------------------------------------------------- walk-ins
def register_walk_in(session: Session, account: Account, *, text: str, resident_name: str,
                     place_kind: str, contact_consent: bool, resident_phone: str | None = None,
                     place: str | None = None, grid: Grid | None = None, shift_id: int | None = None) -> Case:
    """A matter raised in person, registered by a deputy or staff account on the resident's behalf;
    `shift_id`: the duty shift it was received on (the rota decides which, `rota.shift_for_walk_in`)."""
    text, resident_name = text.strip(), resident_name.strip()
    if not text:
        raise _invalid("请填写诉求内容", "text")
    if not resident_name:
        raise _invalid("请填写群众姓名", "resident_name")
    if place_kind not in PLACE_KINDS:
        raise _invalid("接待场所无效", "place_kind")
    phone = (resident_phone or "").strip() or None
    # The resident has no WeChat yet: a row of their own, answerable to the deputy who met them.
    resident = Resident(window_used=0, subscribed=False, grid_id=grid.id if grid is not None else None,
                        deputy_id=account.deputy_id)
    session.add(resident)
    session.flush()
    case = cases.open_case(session, resident, text, channel="walk_in", grid=grid)
    session.add(WalkIn(case_id=case.id, registered_by=account.id, place_kind=place_kind,
                       place=(place or "").strip() or None, resident_name=resident_name,
                       resident_phone=phone, contact_consent=bool(contact_consent), shift_id=shift_id))
    actor = Actor(account.role, account.deputy_id if account.role == "deputy" else account.id)
    cases.record_event(session, case, actor, "walk_in", place_kind=place_kind,
                       place_label=PLACE_KINDS[place_kind], place=place, registered_by=account.name,
                       contact_consent=bool(contact_consent))
    session.flush()
    return case


def walk_in_of(session: Session, case: Case) -> WalkIn | None:
    return session.scalar(select(WalkIn).where(WalkIn.case_id == case.id))


# -------------------------------------------------------------------------------------- 交办单 and QR
def case_code(session: Session, client, case: Case, now: datetime | None = None) -> CaseCode:
    """The case's current 交办单 QR code, created at WeChat when none is valid for a week more."""
    now = now or utcnow()
    current = session.scalar(select(CaseCode).where(CaseCode.case_id == case.id,
                                                    CaseCode.expires_at > now + timedelta(days=7))
                             .order_by(CaseCode.id.desc()).limit(1))
    if current is not None:
        return current
    token = secrets.token_urlsafe(18)[:24]
    answer = client.create_qrcode(SCENE_PREFIX + token, permanent=False,
                                  expire_seconds=CODE_DAYS * 86400)
    seconds = int(answer.get("expire_seconds") or CODE_DAYS * 86400)
    code = CaseCode(case_id=case.id, token=token, ticket=answer["ticket"],
                    url=answer.get("url") or client.qrcode_image_url(answer["ticket"]),
                    expires_at=now + timedelta(seconds=seconds))
    session.add(code)
    session.flush()
    return code


@dataclass(frozen=True)
class Sheet:
    number: str
    text: str
    handler: str
    deputy: str | None
    source: str
    received: str
    deadline: str
    round: int
    qr_content: str
    code_expires: str


def sheet_for(session: Session, case: Case, code: CaseCode) -> Sheet:
    walk_in = walk_in_of(session, case)
    source = "微信留言"
    if walk_in is not None:
        source = PLACE_KINDS[walk_in.place_kind] + (f"（{walk_in.place}）" if walk_in.place else "")
    return Sheet(number=case.number, text=case.text, handler=cases.handler_label(case),
                 deputy=cases.deputy_label(case), source=source, received=timers.local_day(case.created_at),
                 deadline=timers.local_day(case.deadline), round=case.round, qr_content=code.url,
                 code_expires=timers.local_day(code.expires_at))


def sheet_pdf(sheet: Sheet) -> bytes:
    """The 交办单: an A4 page in Chinese (reportlab's built-in CID font STSong-Light) with the QR code
    as an image."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(buffer, pagesize=A4)
    c.setTitle(f"交办单 {sheet.number}")
    c.setFont("STSong-Light", 24)
    c.drawCentredString(width / 2, height - 25 * mm, "人大代表联络站 诉求交办单")
    rows = [("编号", sheet.number), ("办理轮次", f"第{sheet.round}轮"), ("来源", sheet.source),
            ("受理时间", sheet.received), ("承办", sheet.handler), ("负责代表", sheet.deputy or "—"),
            ("办理期限", f"{sheet.deadline}前办结答复"), ("诉求内容", sheet.text)]
    y = height - 45 * mm
    for label, value in rows:
        c.setFont("STSong-Light", 13)
        chunks = [value[i:i + 30] for i in range(0, len(value), 30)] or [""]
        for i, chunk in enumerate(chunks[:12]):
            c.drawString(20 * mm, y, f"{label}：{chunk}" if i == 0 else f"　　　　　{chunk}")
            y -= 8 * mm
    size = 60 * mm
    image = ImageReader(io.BytesIO(qrcodes.qr_png(sheet.qr_content, scale=8)))
    c.drawImage(image, (width - size) / 2, 45 * mm, size, size)
    c.setFont("STSong-Light", 13)
    c.drawCentredString(width / 2, 37 * mm, "群众请用微信扫码，查看办理进度并评价")
    c.setFont("STSong-Light", 10)
    c.drawCentredString(width / 2, 30 * mm, f"二维码有效期至 {sheet.code_expires}")
    c.showPage()
    c.save()
    return buffer.getvalue()


def claim(session: Session, resident: Resident, token: str, now: datetime | None = None) -> str:
    """A resident scanned a 交办单's code: the reply to show them. The resident of a walk-in matter
    (who had no WeChat) takes the case over; the case's own resident sees its status; anyone else is
    told the code is the resident's."""
    now = now or utcnow()
    code = session.scalar(select(CaseCode).where(CaseCode.token == token))
    if code is None or code.expires_at <= now:
        return "该二维码已失效，请联系代表或联络站重新打印交办单。"
    case = session.get(Case, code.case_id)
    owner = session.get(Resident, case.resident_id)
    if owner.id != resident.id:
        walk_in = walk_in_of(session, case)
        if walk_in is None or owner.oa_openid or owner.mp_openid or code.claimed_at is not None:
            return "该二维码供提出诉求的群众查询使用。如有诉求，请直接发送文字或语音。"
        session.flush()  # the scanning resident may be new: their row needs its id
        case.resident_id = resident.id
        if resident.grid_id is None:
            resident.grid_id = case.grid_id
        code.claimed_at = now
        cases.record_event(session, case, Actor("resident", resident.id), "claim")
    lines = [f"诉求 {case.number}：{lifecycle.STATUS_LABELS.get(case.status, case.status)}。",
             f"办理人：{cases.handler_label(case)}。"]
    if case.status in lifecycle.WORKING_STATUSES and case.deadline is not None:
        lines.append(f"办理时限：{timers.local_day(case.deadline)}。办理进展会通过微信告诉您。")
    rated = session.scalar(select(Rating.id).where(Rating.case_id == case.id, Rating.round == case.round,
                                                   Rating.resident_id == resident.id))
    if case.status == Status.CLOSED and rated is None:
        lines.append(f"办理情况：{case.summary or ''}")
        lines.append("请回复数字评价：1 满意  2 基本满意  3 不满意")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ 回访
def _no_wechat(resident_id_column):
    return ~exists(select(Resident.id).where(
        Resident.id == resident_id_column,
        or_(Resident.oa_openid.is_not(None), Resident.mp_openid.is_not(None))))


def return_visit_condition():
    """Closed cases whose resident cannot be asked in WeChat and whose round is not rated yet: walk-ins
    without WeChat, and cases still unrated after the reminder (until the rating expires: 未评价 is
    final)."""
    unrated_round = ~exists(select(Rating.id).where(Rating.case_id == Case.id, Rating.round == Case.round,
                                                    Rating.resident_id == Case.resident_id))
    return (Case.status == Status.CLOSED) & unrated_round & or_(
        _no_wechat(Case.resident_id), Case.rating_reminded.is_(True))


def return_visit_due(session: Session, case_condition, *, page: int = 1,
                     page_size: int = 20) -> tuple[list[Case], int]:
    """The 回访 list within the caller's scope (`case_condition`), oldest closed first."""
    conditions = [case_condition, return_visit_condition()]
    total = session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0
    rows = session.scalars(select(Case).where(*conditions).order_by(Case.closed_at, Case.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


def record_return_visit(session: Session, case: Case, account: Account, *, method: str, visitor: str,
                        visited_at: datetime, outcome: str, rating: str) -> ReturnVisit:
    """A 回访 by phone or on a visit: the rating the resident gave counts as the round's rating."""
    visitor, outcome = visitor.strip(), outcome.strip()
    if method not in VISIT_METHODS:
        raise _invalid("回访方式无效", "method")
    if not visitor:
        raise _invalid("请填写回访人", "visitor")
    if not outcome:
        raise _invalid("请填写回访情况", "outcome")
    if rating not in cases.RATING_VALUES:
        raise _invalid("评价无效", "rating")
    if visited_at > utcnow() + timedelta(minutes=5):
        raise _invalid("回访时间不能晚于现在", "visited_at")
    lifecycle.check_case("return_visit", case)
    round_ = case.round
    cases.record_rating(session, case, case.resident_id, rating, channel="return_visit",
                        actor=Actor("staff", account.id), comment=outcome, method=method, visitor=visitor,
                        visited_at=visited_at.isoformat())
    session.flush()
    rating_row = session.scalar(select(Rating).where(Rating.case_id == case.id, Rating.round == round_,
                                                     Rating.resident_id == case.resident_id))
    visit = ReturnVisit(case_id=case.id, round=round_, method=method, visitor=visitor,
                        visited_at=visited_at, outcome=outcome, rating_id=rating_row.id,
                        recorded_by=account.id)
    session.add(visit)
    session.flush()
    return visit
