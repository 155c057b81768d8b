"""A case's deadlines on PostgreSQL: opened before 国庆, it is given working-day limits, turns yellow at
the reminder and red at the deadline in the sweep, with nothing but the database."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from liaison.case import service as cases
from liaison.case import sweep, timers
from liaison.case.models import CaseEvent
from liaison.core import clock
from liaison.core.workcalendar import CHINA_TZ, add_working_days
from liaison.people.models import Resident

OPENED = datetime(2026, 9, 30, 10, 0, tzinfo=CHINA_TZ)


@pytest.fixture
def frozen_clock():
    """The domain clock stopped at OPENED (the sweep is given its `now` explicitly)."""
    clock.set_clock(lambda: OPENED)
    yield
    clock.set_clock(None)


def test_a_case_opened_before_national_day_is_due_in_working_days(db_session, frozen_clock):
    resident = Resident(oa_openid="o_deadlines_1")
    db_session.add(resident)
    db_session.flush()
    case = cases.open_case(db_session, resident, "幸福里小区路灯坏了", now=OPENED)
    db_session.commit()

    assert case.accept_deadline == add_working_days(OPENED, 1)  # 8 October: 1–7 are 国庆
    assert case.deadline == add_working_days(OPENED, cases.deadline_days(case.category, "reply"))
    assert case.alert == "none" and case.next_action_at <= timers.reminder_time(case.deadline)

    def events():
        return [e.action for e in db_session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]

    sweep.run_due(db_session, now=timers.reminder_time(case.deadline))
    db_session.refresh(case)
    assert case.alert == "yellow" and case.reminded_for == case.deadline and "remind" in events()

    sweep.run_due(db_session, now=case.deadline)
    db_session.refresh(case)
    assert case.alert == "red" and case.escalation_level == 1 and "escalate" in events()
