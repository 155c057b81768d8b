"""The rota's timed work, run by the scheduler's sweep (`jobs.tasks.run_rota`):

- plan every active rule four weeks ahead;
- three days ahead (from NOTICE_HOUR, China time), tell the residents of the station's grids who will
  be on duty: one `resident_text` outbox row each, under a key naming the shift and the resident, sent
  through the channels WeChat allows them now (window, subscription), else kept for their next window;
- the day before (from REMINDER_HOUR), remind each deputy on duty (a notice and a push);
- once a shift has ended, whoever did not check in is recorded as missed, and the shift as kept
  (someone was there) or missed (nobody was).

Each step marks its shift (`noticed_at`, `reminded_at`, the status) and its messages carry unique
keys, so a second sweep, or two at once, tells nobody twice.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import notices
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.messaging import outbox
from liaison.people.models import Grid, Resident
from liaison.rota import lifecycle
from liaison.rota import service as rota
from liaison.rota.models import DutyShift

NOTICE_DAYS_AHEAD = 3
NOTICE_HOUR = 9
REMINDER_HOUR = 9


def _from(day, days_before: int, hour: int) -> datetime:
    return datetime.combine(day - timedelta(days=days_before), time(hour), tzinfo=CHINA_TZ)


def notice_text(shift: DutyShift) -> str:
    names = "、".join(rota.on_duty_names(shift)) or "待定"
    return (f"【{shift.title}】{rota.day_label(shift.day)} {rota._hm(rota._minute(shift.starts_at))}-"
            f"{rota._hm(rota._minute(shift.ends_at))}，{names}在{shift.station.name}接待群众"
            + (f"（{shift.station.address}）" if shift.station.address else "")
            + "。有困难或建议可以当面反映，也可以随时在这里留言。")


def send_grid_notices(session: Session, now: datetime) -> int:
    """The three-days-ahead notice to the residents of each coming shift's station grids."""
    horizon = rota.local_day(now) + timedelta(days=NOTICE_DAYS_AHEAD)
    shifts = session.scalars(select(DutyShift).where(
        DutyShift.status == lifecycle.PLANNED, DutyShift.noticed_at.is_(None), DutyShift.kind == "reception",
        DutyShift.day <= horizon, DutyShift.starts_at > now).with_for_update(skip_locked=True)).all()
    sent = 0
    for shift in shifts:
        if now < _from(shift.day, NOTICE_DAYS_AHEAD, NOTICE_HOUR):
            continue
        text = notice_text(shift)
        residents = session.scalars(select(Resident.id).where(
            Resident.subscribed.is_(True), Resident.oa_openid.is_not(None),
            Resident.grid_id.in_(select(Grid.id).where(Grid.station_id == shift.station_id)))).all()
        for resident_id in residents:
            if outbox.add(session, "resident_text", f"duty-notice:{shift.id}:{resident_id}",
                          {"text": text, "title": shift.title}, resident_id=resident_id) is not None:
                sent += 1
        shift.noticed_at = now
    return sent


def send_reminders(session: Session, now: datetime) -> int:
    """The day-before reminder to each deputy (and department head) on duty."""
    tomorrow = rota.local_day(now) + timedelta(days=1)
    shifts = session.scalars(select(DutyShift).where(
        DutyShift.status == lifecycle.PLANNED, DutyShift.reminded_at.is_(None), DutyShift.day <= tomorrow,
        DutyShift.starts_at > now).with_for_update(skip_locked=True)).all()
    told = 0
    for shift in shifts:
        if now < _from(shift.day, 1, REMINDER_HOUR):
            continue
        text = (f"值班提醒：{rota.day_label(shift.day)} {rota._hm(rota._minute(shift.starts_at))}-"
                f"{rota._hm(rota._minute(shift.ends_at))} 您在{shift.station.name}{shift.title}，"
                "到站后请扫描联络站二维码签到。")
        for a in shift.assignments:
            if a.status != lifecycle.ON_DUTY:
                continue
            if a.deputy_id is not None:
                told += notices.notify(session, None, f"duty-remind:{shift.id}:deputy:{a.deputy_id}", text,
                                       deputy_id=a.deputy_id, kind="duty")
            else:
                told += notices.notify(session, None, f"duty-remind:{shift.id}:account:{a.account_id}", text,
                                       account_id=a.account_id, kind="duty")
        shift.reminded_at = now
    return told


def close_ended(session: Session, now: datetime) -> int:
    """Shifts that ended: those who never checked in missed it; the shift was kept or missed."""
    shifts = session.scalars(select(DutyShift).where(DutyShift.status == lifecycle.PLANNED,
                                                     DutyShift.ends_at < now).with_for_update(skip_locked=True)).all()
    for shift in shifts:
        for a in shift.assignments:
            if a.status == lifecycle.ON_DUTY:
                lifecycle.move(a, "miss")
        kept = any(a.status == lifecycle.CHECKED_IN for a in shift.assignments)
        lifecycle.move(shift, "keep" if kept else "miss")
    return len(shifts)


def run_due(session: Session, now: datetime | None = None) -> dict[str, int]:
    """One sweep of the rota (committed by the caller's unit of work)."""
    now = now or utcnow()
    done = {"planned": rota.plan_all(session, now), "closed": close_ended(session, now),
            "reminded": send_reminders(session, now), "noticed": send_grid_notices(session, now)}
    session.flush()
    return done
