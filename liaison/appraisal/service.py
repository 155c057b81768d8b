"""Quarterly 述职 测评.

Staff schedule a deputy's quarterly 述职: a report survey is created for it (its code is the ordinary
survey code, `survey:<id>`), and the residents bound to the deputy's grids are told how to take part
(one `resident_text` outbox row each, sent through the channels WeChat allows). Only those
constituents may vote, once (`engagement.surveys` asks `is_constituent`). When the 测评 closes its
result is kept per quarter; under 90 % it opens a 整改 item with a deadline in working days, and
when the deputy reports the 整改 done a second 测评 (round 2) is scheduled the same way.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liaison.appraisal import lifecycle
from liaison.appraisal.models import Appraisal, Rectification
from liaison.case import notices
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.core.workcalendar import CHINA_TZ, add_working_days
from liaison.engagement import surveys
from liaison.engagement.models import SurveyVote
from liaison.messaging import outbox
from liaison.people.models import Account, Deputy, DeputyGrid, Resident
from liaison.people.service import DEPUTY, STAFF, Principal

THRESHOLD = surveys.FOLLOW_UP_THRESHOLD
OPEN_DAYS = 14  # how long a 测评 takes votes
RECTIFY_WORKING_DAYS = 20


class AppraisalError(Refusal):
    """A 述职测评 request refused (kind, code, Chinese message)."""


def _staff_of(session: Session, principal: Principal, deputy: Deputy) -> None:
    if principal.role != STAFF or principal.account.station_id not in (None, deputy.station_id):
        raise AppraisalError(FORBIDDEN, "forbidden", "只能为辖区内的代表安排述职测评")


def _open(session: Session, deputy: Deputy, year: int, quarter: int, round_: int, by: Account,
          now: datetime) -> Appraisal:
    label = f"{deputy.name}代表{year}年第{quarter}季度述职测评" + ("（整改后复评）" if round_ == 2 else "")
    survey = surveys.create(session, Principal(STAFF, account=by), "report", label, deputy_code=deputy.code,
                            closes_at=now + timedelta(days=OPEN_DAYS))
    appraisal = Appraisal(deputy_id=deputy.id, year=year, quarter=quarter, round=round_, survey_id=survey.id,
                          status=lifecycle.OPEN, closes_at=survey.closes_at, created_by=by.id)
    session.add(appraisal)
    session.flush()
    text = (f"【{label}】{deputy.name}代表向本选区选民述职，请您评议：扫描小区公示牌上的述职评议二维码，"
            f"或在小程序“评议”中选择满意、基本满意或不满意。{survey.closes_at.astimezone(CHINA_TZ):%m月%d日}截止，"
            "每人限评一次。")
    for resident_id in session.scalars(select(Resident.id).where(
            Resident.subscribed.is_(True), Resident.oa_openid.is_not(None),
            Resident.grid_id.in_(select(DeputyGrid.grid_id).where(DeputyGrid.deputy_id == deputy.id)))):
        outbox.add(session, "resident_text", f"appraisal-notice:{appraisal.id}:{resident_id}",
                   {"text": text, "title": label}, resident_id=resident_id)
    return appraisal


def schedule(session: Session, principal: Principal, deputy_code: str, year: int, quarter: int,
             now: datetime | None = None) -> Appraisal:
    """Schedule a deputy's quarterly 述职 测评 (round 1)."""
    now = now or utcnow()
    deputy = session.scalar(select(Deputy).where(Deputy.code == deputy_code))
    if deputy is None:
        raise AppraisalError(INVALID, "unknown_deputy", "代表不存在", "deputy_code")
    _staff_of(session, principal, deputy)
    if not 1 <= quarter <= 4:
        raise AppraisalError(INVALID, "invalid_quarter", "季度应为 1–4", "quarter")
    if session.scalar(select(Appraisal.id).where(Appraisal.deputy_id == deputy.id, Appraisal.year == year,
                                                 Appraisal.quarter == quarter, Appraisal.round == 1)):
        raise AppraisalError(CONFLICT, "already_scheduled", "该季度的述职测评已安排")
    return _open(session, deputy, year, quarter, 1, principal.account, now)


def close(session: Session, appraisal: Appraisal, now: datetime | None = None) -> Rectification | None:
    """Close a 测评, keep its result; under the threshold open 整改 (told to the deputy)."""
    now = now or utcnow()
    lifecycle.move(appraisal, "close")
    counts = dict(session.execute(select(SurveyVote.value, func.count()).where(
        SurveyVote.survey_id == appraisal.survey_id).group_by(SurveyVote.value)).all())
    rated = sum(counts.values())
    appraisal.rated, appraisal.closed_at = rated, now
    appraisal.satisfaction_rate = (round((counts.get("satisfied", 0) + counts.get("basically_satisfied", 0)) / rated, 4)
                                   if rated else None)
    if appraisal.survey.closes_at is None or appraisal.survey.closes_at > now:
        appraisal.survey.closes_at = now  # no vote after the close
    rate = appraisal.satisfaction_rate
    if rate is None or rate >= THRESHOLD or appraisal.round > 1:
        session.flush()
        return None
    rectification = Rectification(appraisal_id=appraisal.id, deputy_id=appraisal.deputy_id,
                                  deadline=add_working_days(now, RECTIFY_WORKING_DAYS), status=lifecycle.OPEN)
    session.add(rectification)
    session.flush()
    notices.notify(session, None, f"rectification:{rectification.id}",
                   f"您{appraisal.year}年第{appraisal.quarter}季度述职测评满意率为{rate:.0%}，低于{THRESHOLD:.0%}，"
                   f"请于{rectification.deadline.astimezone(CHINA_TZ):%Y年%m月%d日}前完成整改，整改后将再次测评。",
                   deputy_id=appraisal.deputy_id, kind="rectification")
    return rectification


def complete(session: Session, principal: Principal, rectification: Rectification, report: str,
             now: datetime | None = None) -> Appraisal:
    """The deputy (or staff) report the 整改 done; the second 测评 opens."""
    now = now or utcnow()
    if not (report or "").strip():
        raise AppraisalError(INVALID, "report_required", "请填写整改情况", "report")
    lifecycle.move(rectification, "complete")
    rectification.report, rectification.done_at = report.strip()[:2000], now
    first = rectification.appraisal
    staff = principal.account if principal.role == STAFF else session.get(Account, first.created_by)
    second = _open(session, first.deputy, first.year, first.quarter, 2, staff, now)
    rectification.second_appraisal_id = second.id
    session.flush()
    return second


def close_due(session: Session, now: datetime | None = None) -> int:
    """The scheduler's sweep: close every 测评 whose voting period ended."""
    now = now or utcnow()
    due = session.scalars(select(Appraisal).where(Appraisal.status == lifecycle.OPEN, Appraisal.closes_at <= now)
                          .with_for_update(skip_locked=True)).all()
    for appraisal in due:
        close(session, appraisal, now)
    return len(due)


def visible(session: Session, principal: Principal, deputy_id: int) -> bool:
    if principal.role == DEPUTY:
        return principal.account.deputy_id == deputy_id
    if principal.role == STAFF:
        station = principal.account.station_id
        return station is None or session.scalar(select(Deputy.station_id).where(Deputy.id == deputy_id)) == station
    return False


def get_rectification(session: Session, principal: Principal, public_id: str) -> Rectification:
    row = session.scalar(select(Rectification).where(Rectification.public_id == public_id))
    if row is None or not visible(session, principal, row.deputy_id):
        raise AppraisalError(NOT_FOUND, "not_found", "整改事项不存在")
    return row


def get_appraisal(session: Session, principal: Principal, public_id: str) -> Appraisal:
    row = session.scalar(select(Appraisal).where(Appraisal.public_id == public_id))
    if row is None or not visible(session, principal, row.deputy_id):
        raise AppraisalError(NOT_FOUND, "not_found", "述职测评不存在")
    return row


def history(session: Session, principal: Principal) -> list[Appraisal]:
    """Every 测评 the caller may see, newest first (a deputy's own: the re-election record)."""
    rows = session.scalars(select(Appraisal).order_by(Appraisal.year.desc(), Appraisal.quarter.desc(),
                                                      Appraisal.round.desc(), Appraisal.id.desc()).limit(500)).all()
    return [a for a in rows if visible(session, principal, a.deputy_id)]


def rectification_of(session: Session, appraisal: Appraisal) -> Rectification | None:
    return session.scalar(select(Rectification).where(Rectification.appraisal_id == appraisal.id))
