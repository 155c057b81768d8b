"""三级联动: a county's staff hand a case up to their city, city staff answer or instruct and hand it
back down.

The case stays with its handler (grid deputy, department) the whole time: its own status does not
change (the `hand_up`, `city_answer` and `hand_down` rows of `lifecycle.CASEWORK`), so deadlines,
reminders and the resident's flow go on. The hand-up's status moves through
`lifecycle.REFERRAL_TRANSITIONS`; each step is on the case's timeline; what people are told goes
through the outbox in the same transaction.

City staff work in `tenant.city(...)`: they see a case only while a hand-up of it to their city
exists (the domain's `CITY_RULES` and PostgreSQL's `city_access` policies, migration 0018). What they
see of the resident's personal data (phone numbers, addresses, the WeChat identity) is masked unless
the case's county grants it (`tenancy.grants_city_personal_data`).
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import lifecycle, notices
from liaison.case import service as cases
from liaison.case.lifecycle import ReferralStatus
from liaison.case.models import Case, CaseEvent, CaseReferral
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, INVALID, DomainError
from liaison.core.types import Actor
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import City, County

OPEN = (ReferralStatus.AT_CITY, ReferralStatus.ANSWERED)
MAX_TEXT = 2000

RESIDENT_TOLD = {
    "hand_up": "您的诉求 {number} 已由县人大提请{city}人大协调，仍由原承办人继续办理，进展会及时告诉您。",
    "hand_down": "{city}人大已就您的诉求 {number} 提出协调意见并交回县人大，承办人将据此继续办理。",
}
STAFF_TOLD = {
    "city_answer": "{city}人大对上报的诉求 {number} 作出答复/批示：{text}",
    "hand_down": "{city}人大已将诉求 {number} 交回县级办理。{text}",
}


class ReferralError(DomainError):
    """A hand-up the county or the city cannot make now (Chinese message)."""

    kind = CONFLICT


def _text(value: str | None, field: str, label: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DomainError(f"请填写{label}", kind=INVALID, field=field)
    if len(value) > MAX_TEXT:
        raise DomainError(f"{label}不能超过 {MAX_TEXT} 字", kind=INVALID, field=field)
    return value


def open_referral(session: Session, case: Case) -> CaseReferral | None:
    """The case's hand-up still with the city (at most one), else None."""
    return session.scalar(select(CaseReferral).where(CaseReferral.case_id == case.id,
                                                     CaseReferral.status.in_(OPEN)))


def referrals_of(session: Session, case: Case) -> list[CaseReferral]:
    """Every hand-up of the case, oldest first (the case page shows them)."""
    return list(session.scalars(select(CaseReferral).where(CaseReferral.case_id == case.id)
                                .order_by(CaseReferral.id)))


def city_of(session: Session, case: Case) -> City | None:
    """The city of the case's county (None: the county is in no city)."""
    county = session.get(County, case.county_id)
    return session.get(City, county.city_id) if county is not None and county.city_id else None


def hand_up(session: Session, case: Case, staff_account_id: int, reason: str) -> CaseEvent:
    """County staff hand `case` up to their county's city with `reason` (the timeline entry)."""
    reason = _text(reason, "reason", "上报理由")
    case = cases.lock_case(session, case.id)
    lifecycle.check_case("hand_up", case, reason)
    current = open_referral(session, case)
    lifecycle.check_referral("hand_up", current.status if current else None)
    city = city_of(session, case)
    if city is None:
        raise ReferralError("本县尚未加入市级平台，无法上报市级", code="no_city")
    referral = CaseReferral(case_id=case.id, city_id=city.id, status=ReferralStatus.AT_CITY, reason=reason,
                            handed_up_by=staff_account_id, handed_up_at=utcnow())
    session.add(referral)
    entry = cases.record_event(session, case, Actor("staff", staff_account_id), "hand_up",
                               city=city.name, reason=reason)
    session.flush()
    cases.notify_residents(session, case, entry, RESIDENT_TOLD["hand_up"].format(number=case.number,
                                                                                 city=city.name))
    return entry


def _city_step(session: Session, case: Case, city_account_id: int, action: str, text: str) -> CaseReferral:
    case = cases.lock_case(session, case.id)
    lifecycle.check_case(action, case, text or "-")
    referral = open_referral(session, case)
    referral_status = referral.status if referral else None
    target = lifecycle.check_referral(action, referral_status)
    city = session.get(City, referral.city_id)
    referral.status = target
    now = utcnow()
    if action == "city_answer":
        referral.answer, referral.answered_by, referral.answered_at = text, city_account_id, now
    else:
        referral.return_note, referral.returned_at = text or None, now
    entry = cases.record_event(session, case, Actor("city", city_account_id), action, city=city.name,
                               text=text)
    session.flush()
    if referral.handed_up_by is not None:
        notices.notify(session, case, f"{action}:{referral.id}:{entry.id}",
                       STAFF_TOLD[action].format(city=city.name, number=case.number, text=text).strip(),
                       account_id=referral.handed_up_by, kind="city_referral")
    if action in RESIDENT_TOLD:
        cases.notify_residents(session, case, entry, RESIDENT_TOLD[action].format(number=case.number,
                                                                                  city=city.name))
    return entry


def answer(session: Session, case: Case, city_account_id: int, text: str) -> CaseReferral:
    """City staff answer or instruct (批示) on a case handed up to them; it stays with the city."""
    return _city_step(session, case, city_account_id, "city_answer", _text(text, "text", "答复或批示"))


def hand_down(session: Session, case: Case, city_account_id: int, note: str | None = None) -> CaseReferral:
    """City staff hand the case back down to its county (with an optional note)."""
    return _city_step(session, case, city_account_id, "hand_down", _text(note, "note", "交回说明", required=False))


# ---------------------------------------------------------------------------------------------- city side
def city_referrals(session: Session, city_id: int, status: str | None = None) -> list[CaseReferral]:
    """The hand-ups to city `city_id`, newest first (`status`: one of ReferralStatus, or all)."""
    query = select(CaseReferral).where(CaseReferral.city_id == city_id)
    if status:
        if status not in lifecycle.REFERRAL_LABELS:
            raise DomainError("未知的上报状态", kind=INVALID, field="status")
        query = query.where(CaseReferral.status == status)
    return list(session.scalars(query.order_by(CaseReferral.handed_up_at.desc(), CaseReferral.id.desc())))


def city_case(session: Session, city_id: int, reference) -> Case | None:
    """A case handed up to city `city_id` (by a condition on Case: id or number), else None."""
    return session.scalar(select(Case).where(reference, Case.id.in_(
        select(CaseReferral.case_id).where(CaseReferral.city_id == city_id))))


_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{7,8}(?!\d)")
_ID_CARD = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_ADDRESS = re.compile(r"([\u4e00-\u9fa5]{0,8}(?:小区|花园|家园|公寓|大厦|村|社区))?(\d+)(号楼|栋|幢|单元|室|号)")


def mask_text(text: str) -> str:
    """A resident's text with phone numbers, ID numbers and house numbers masked (the city's view of
    a county that does not grant personal data)."""
    text = _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    text = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    text = _LANDLINE.sub(lambda m: m.group(1) + "********", text)
    return _ADDRESS.sub(lambda m: (m.group(1) or "") + "*" + m.group(3), text)


def personal_view(county: County, values: dict[str, Any]) -> dict[str, Any]:
    """`values` as city staff may see them: unchanged where the county grants personal data, else with
    the text masked and the location and resident's identity removed."""
    if tenancy.grants_city_personal_data(county):
        return values
    masked = dict(values)
    if masked.get("text"):
        masked["text"] = mask_text(masked["text"])
    for key in ("location", "resident"):
        if key in masked:
            masked[key] = None
    return masked
