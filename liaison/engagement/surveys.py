"""Scan-to-rate surveys: a QR code per survey (a station's service, a deputy's report to voters 述职, or
one case) opens a rating 满意 / 基本满意 / 不满意 plus a comment.

Residents vote in the mini-program or in the official-account chat: scanning the code (scene
`survey:<public id>`) answers with the question, and the next chat reply 1/2/3 within
`PROMPT_LIFETIME` is the vote. One vote per resident per survey (unique constraint).

满意率 = (satisfied + basically_satisfied) / rated, per survey, deputy and station; a deputy under
`FOLLOW_UP_THRESHOLD` in a period is flagged for follow-up (限期整改).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.appraisal.models import Appraisal
from liaison.case import access
from liaison.case.models import Case, CaseFollower
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.engagement.models import Survey, SurveyPrompt, SurveyVote
from liaison.messaging.texts import say
from liaison.people.models import Deputy, DeputyGrid, Resident, Station
from liaison.people.service import DEPUTY, RESIDENT, STAFF, Principal

KINDS = ("station", "report", "case")
KIND_LABELS = {"station": "联络站服务", "report": "代表述职", "case": "诉求办理"}
VALUES = ("satisfied", "basically_satisfied", "unsatisfied")
VALUE_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
CHAT_VALUES = {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied",
               "满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied"}
PROMPT_LIFETIME = timedelta(minutes=5)
FOLLOW_UP_THRESHOLD = 0.9


class SurveyError(Refusal):
    """A survey action refused: `kind`, `code`, Chinese message."""


def create(session: Session, principal: Principal, kind: str, title: str | None = None, *,
           station_code: str | None = None, deputy_code: str | None = None,
           case_public_id: str | None = None, closes_at: datetime | None = None) -> Survey:
    """A survey of a station (staff), a deputy's report (the deputy themself or staff) or a case (staff)."""
    if kind not in KINDS:
        raise SurveyError(INVALID, "invalid_kind", "评价类型无效")
    survey = Survey(kind=kind, created_by=principal.account.id, closes_at=closes_at)
    if kind == "station":
        station = session.scalar(select(Station).where(Station.code == (station_code or "")))
        if station is None:
            raise SurveyError(INVALID, "unknown_station", f"联络站不存在：{station_code}")
        if principal.role != STAFF or principal.account.station_id not in (None, station.id):
            raise SurveyError(FORBIDDEN, "forbidden", "只能为辖区内的联络站创建评价")
        survey.station_id, default = station.id, f"{station.name}服务评价"
    elif kind == "report":
        deputy = session.scalar(select(Deputy).where(Deputy.code == (deputy_code or "")))
        if deputy is None and principal.role == DEPUTY:
            deputy = principal.account.deputy
        if deputy is None:
            raise SurveyError(INVALID, "unknown_deputy", f"代表不存在：{deputy_code}")
        if principal.role == DEPUTY and deputy.id != principal.account.deputy_id:
            raise SurveyError(FORBIDDEN, "forbidden", "代表只能为本人述职创建评价")
        if principal.role == STAFF and principal.account.station_id not in (None, deputy.station_id):
            raise SurveyError(FORBIDDEN, "forbidden", "只能为辖区内的代表创建述职评价")
        survey.deputy_id, survey.station_id = deputy.id, deputy.station_id
        default = f"{deputy.name}代表述职评议"
    else:
        case = session.scalar(select(Case).where(access.case_reference(case_public_id or "")))  # id or number
        if case is None:
            raise SurveyError(INVALID, "unknown_case", "诉求不存在")
        if principal.role != STAFF:
            raise SurveyError(FORBIDDEN, "forbidden", "只有工委可以为诉求创建评价")
        survey.case_id, survey.deputy_id = case.id, case.deputy_id
        default = f"诉求 {case.number} 办理评价"
    survey.title = (title or default).strip()[:100]
    session.add(survey)
    session.flush()
    return survey


def by_public_id(session: Session, public_id: str) -> Survey:
    survey = session.scalar(select(Survey).where(Survey.public_id == public_id))
    if survey is None:
        raise SurveyError(NOT_FOUND, "not_found", "评价不存在")
    return survey


def is_case_party(session: Session, survey: Survey, resident: Resident) -> bool:
    """Whether the resident may take part in the survey: station and report surveys are open to anyone
    who scans; a case survey only to the case's resident and its followers (并单)."""
    if survey.kind != "case":
        return True
    case = session.get(Case, survey.case_id)
    if case is None:
        return False
    if case.resident_id == resident.id:
        return True
    return session.get(CaseFollower, (case.id, resident.id)) is not None


def may_vote(session: Session, survey: Survey, resident: Resident) -> bool:
    """A quarterly 述职测评 (a report survey an `Appraisal` holds) is for the deputy's constituents only:
    residents bound to one of the deputy's grids. Every other survey: see `is_case_party`."""
    if survey.kind != "report" or session.scalar(
            select(Appraisal.id).where(Appraisal.survey_id == survey.id)) is None:
        return True
    return resident.grid_id is not None and session.scalar(select(DeputyGrid.grid_id).where(
        DeputyGrid.deputy_id == survey.deputy_id, DeputyGrid.grid_id == resident.grid_id)) is not None


NOT_CONSTITUENT = say("survey_not_constituent").rstrip("。")


def open_to(session: Session, principal: Principal, survey: Survey) -> bool:
    """Whether the caller may see the survey: a case survey is for the case's residents, and for the
    deputies, departments and staff who may see the case; the other kinds are public."""
    if survey.kind != "case":
        return True
    if principal.role == RESIDENT:
        return is_case_party(session, survey, principal.resident)
    scope = access.scope_of(session, principal)
    return session.scalar(select(Case.id).where(Case.id == survey.case_id,
                                                access.case_condition(scope))) is not None


def vote(session: Session, survey: Survey, resident: Resident, value: str, comment: str | None = None, *,
         channel: str = "miniprogram", now: datetime | None = None) -> SurveyVote:
    """Record the resident's one vote in this survey (409 when they already voted; 404 for a case survey
    about someone else's case)."""
    now = now or utcnow()
    if not is_case_party(session, survey, resident):
        raise SurveyError(NOT_FOUND, "not_found", "评价不存在")
    if not may_vote(session, survey, resident):
        raise SurveyError(FORBIDDEN, "not_constituent", NOT_CONSTITUENT)
    if value not in VALUES:
        raise SurveyError(INVALID, "invalid_value", "评价取值无效")
    if survey.closes_at is not None and survey.closes_at <= now:
        raise SurveyError(CONFLICT, "survey_closed", "该评价已结束")
    row = SurveyVote(survey_id=survey.id, resident_id=resident.id, value=value,
                     comment=(comment or "").strip()[:500] or None, channel=channel, created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise SurveyError(CONFLICT, "already_voted", "您已评价过，每人限评一次") from None
    return row


# ---------------------------------------------------------------------------------------------- chat
def prompt_text(survey: Survey) -> str:
    return say("survey_prompt", title=survey.title, minutes=int(PROMPT_LIFETIME.total_seconds() // 60))


def on_scan(session: Session, resident: Resident, public_id: str, now: datetime | None = None) -> str:
    """A resident scanned a survey code: ask for 1/2/3 and remember the question for a few minutes."""
    now = now or utcnow()
    survey = session.scalar(select(Survey).where(Survey.public_id == public_id))
    if survey is None:
        return say("survey_gone")
    if not is_case_party(session, survey, resident):
        return say("survey_not_party")
    if not may_vote(session, survey, resident):
        return say("survey_not_constituent")
    if session.scalar(select(SurveyVote.id).where(SurveyVote.survey_id == survey.id,
                                                  SurveyVote.resident_id == resident.id)) is not None:
        return say("survey_done", title=survey.title)
    prompt = session.get(SurveyPrompt, resident.id)
    if prompt is None:
        session.add(SurveyPrompt(resident_id=resident.id, survey_id=survey.id,
                                 expires_at=now + PROMPT_LIFETIME))
    else:
        prompt.survey_id, prompt.expires_at = survey.id, now + PROMPT_LIFETIME
    session.flush()
    return prompt_text(survey)


def answer_from_chat(session: Session, resident: Resident, text: str,
                     now: datetime | None = None) -> str | None:
    """The reply to a chat message that answers a pending survey question; None if it does not."""
    now = now or utcnow()
    value = CHAT_VALUES.get(re.sub(r"[\s。.!！]", "", text))
    if value is None:
        return None
    prompt = session.get(SurveyPrompt, resident.id)
    if prompt is None or prompt.expires_at <= now:
        return None
    survey = session.get(Survey, prompt.survey_id)
    session.execute(delete(SurveyPrompt).where(SurveyPrompt.resident_id == resident.id))
    try:
        vote(session, survey, resident, value, channel="chat", now=now)
    except SurveyError as refusal:
        return str(refusal)
    return say("survey_thanks", label=VALUE_LABELS[value])


# ---------------------------------------------------------------------------------------------- results
def _rate(counts: dict[str, int]) -> float | None:
    rated = sum(counts.get(v, 0) for v in VALUES)
    if not rated:
        return None
    return round((counts.get("satisfied", 0) + counts.get("basically_satisfied", 0)) / rated, 4)


def _bucket() -> dict[str, int]:
    return {v: 0 for v in VALUES}


def results(session: Session, principal: Principal, *, since: datetime | None = None,
            until: datetime | None = None) -> dict[str, Any]:
    """满意率 per survey, deputy and station for votes in [since, until); deputies under 90 % are
    flagged for follow-up (限期整改). Staff see their jurisdiction; a deputy sees their own surveys."""
    conditions = []
    if since is not None:
        conditions.append(SurveyVote.created_at >= since)
    if until is not None:
        conditions.append(SurveyVote.created_at < until)
    rows = session.execute(select(Survey, SurveyVote.value).join(SurveyVote, SurveyVote.survey_id == Survey.id)
                           .where(*conditions)).all()
    station_filter = principal.account.station_id if principal.role == STAFF else None
    per_survey: dict[int, tuple[Survey, dict[str, int]]] = {}
    per_deputy: dict[int, dict[str, int]] = {}
    per_deputy_kind: dict[tuple[int, str], dict[str, int]] = {}  # 述职 and case ratings reported apart
    per_station: dict[int, dict[str, int]] = {}
    for survey, value in rows:
        if principal.role == DEPUTY and survey.deputy_id != principal.account.deputy_id:
            continue
        if station_filter is not None and survey.station_id != station_filter:
            continue
        per_survey.setdefault(survey.id, (survey, _bucket()))[1][value] += 1
        if survey.deputy_id:
            per_deputy.setdefault(survey.deputy_id, _bucket())[value] += 1
            per_deputy_kind.setdefault((survey.deputy_id, survey.kind), _bucket())[value] += 1
        if survey.station_id:
            per_station.setdefault(survey.station_id, _bucket())[value] += 1
    deputies = {d.id: d for d in session.scalars(select(Deputy).where(Deputy.id.in_(per_deputy)))}
    stations = {s.id: s for s in session.scalars(select(Station).where(Station.id.in_(per_station)))}

    def entry(counts: dict[str, int]) -> dict[str, Any]:
        return {"counts": counts, "rated": sum(counts.values()), "satisfaction_rate": _rate(counts)}

    deputy_rows = []
    for deputy_id, counts in sorted(per_deputy.items()):
        rate = _rate(counts)
        deputy_rows.append({"code": deputies[deputy_id].code, "name": deputies[deputy_id].name,
                            **entry(counts), "follow_up": rate is not None and rate < FOLLOW_UP_THRESHOLD,
                            "report_rate": _rate(per_deputy_kind.get((deputy_id, "report"), {})),
                            "case_rate": _rate(per_deputy_kind.get((deputy_id, "case"), {}))})
    return {
        "surveys": [{"id": s.public_id, "kind": s.kind, "title": s.title, **entry(c)}
                    for s, c in per_survey.values()],
        "deputies": deputy_rows,
        "stations": [{"code": stations[i].code, "name": stations[i].name, **entry(c)}
                     for i, c in sorted(per_station.items())],
        "threshold": FOLLOW_UP_THRESHOLD,
    }


def visible_to(principal: Principal, survey: Survey) -> bool:
    """Staff: their jurisdiction's surveys; a deputy: surveys about them."""
    if principal.role == STAFF:
        return principal.account.station_id in (None, survey.station_id)
    if principal.role == DEPUTY:
        return survey.deputy_id == principal.account.deputy_id
    return False

