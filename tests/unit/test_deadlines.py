"""The case's time arithmetic (liaison/case/timers.py, deadline_days in liaison/case/service.py):
reminders, escalation levels, the alert colour, how a deadline is written for people. Pure: the
cases are plain objects that never touch a database."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liaison.case import lifecycle, timers
from liaison.case.lifecycle import Status
from liaison.case.models import Case
from liaison.case.service import deadline_days
from liaison.core.workcalendar import CHINA_TZ, add_working_days, is_working_day, working_days_between

ALL_STATUSES = [v for k, v in vars(Status).items() if not k.startswith("_")]
NOT_WORKING = sorted(set(ALL_STATUSES) - lifecycle.WORKING_STATUSES)


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA_TZ)


# Deadlines as the service makes them: the end of a working day, 2020 to 2026.
deadlines = st.builds(add_working_days, st.datetimes(min_value=datetime(2020, 1, 1),
                                                     max_value=datetime(2026, 11, 30),
                                                     timezones=st.just(timezone.utc)),
                      st.integers(min_value=1, max_value=30))
arithmetic_settings = settings(deadline=None, max_examples=100)


# ------------------------------------------------------------------------------------------ reminders

def test_the_reminder_is_the_morning_of_the_working_day_before():
    deadline = china(2026, 10, 15, 23, 59, 59)  # a Thursday
    assert timers.reminder_time(deadline) == china(2026, 10, 14, 9, 0)


def test_the_reminder_before_a_holiday_deadline_skips_the_holiday():
    # Due on the first working day after 国庆: reminded on the last one before it.
    assert timers.reminder_time(china(2026, 10, 8, 23, 59, 59)) == china(2026, 9, 30, 9, 0)
    # Due on Monday the 12th: reminded on the make-up Saturday.
    assert timers.reminder_time(china(2026, 10, 12, 23, 59, 59)) == china(2026, 10, 10, 9, 0)


def test_the_reminder_keeps_the_deadlines_time_zone():
    deadline = china(2026, 10, 15, 23, 59, 59).astimezone(timezone.utc)
    reminder = timers.reminder_time(deadline)
    assert reminder.tzinfo == timezone.utc and reminder == china(2026, 10, 14, 9, 0)


@arithmetic_settings
@given(deadline=deadlines)
def test_a_reminder_is_one_working_morning_before_its_deadline(deadline):
    reminder = timers.reminder_time(deadline)
    local = reminder.astimezone(CHINA_TZ)
    assert reminder < deadline
    assert is_working_day(local.date()) and local.time() == time(9, 0)
    assert working_days_between(reminder, deadline) == 1  # reminder_working_days_before


# ------------------------------------------------------------------------------------------ escalation

def test_escalation_levels_in_working_days_after_the_deadline():
    deadline = china(2026, 9, 30, 23, 59, 59)  # the last working day before 国庆
    assert timers.escalation_time(deadline, 1) == deadline
    assert timers.escalation_time(deadline, 2) == china(2026, 10, 9, 23, 59, 59)  # 8th, 9th
    assert timers.escalation_time(deadline, 3) == china(2026, 10, 13, 23, 59, 59)  # 8, 9, 10, 12, 13


@arithmetic_settings
@given(deadline=deadlines)
def test_each_escalation_level_comes_later_than_the_one_before(deadline):
    times = [timers.escalation_time(deadline, level) for level in range(1, timers.MAX_LEVEL + 1)]
    assert times[0] == deadline
    assert times == sorted(times) and len(set(times)) == len(times)


# ------------------------------------------------------------------------------------------ alert colour

def case_in(status: str, deadline: datetime | None) -> Case:
    return Case(status=status, deadline=deadline)


def test_the_alert_turns_yellow_at_the_reminder_and_red_at_the_deadline():
    deadline = china(2026, 10, 15, 23, 59, 59)
    case = case_in(Status.ACCEPTED, deadline)
    assert timers.alert_for(case, china(2026, 10, 14, 8, 59, 59)) == "none"
    assert timers.alert_for(case, china(2026, 10, 14, 9, 0)) == "yellow"
    assert timers.alert_for(case, deadline - timedelta(seconds=1)) == "yellow"
    assert timers.alert_for(case, deadline) == "red"
    assert timers.alert_for(case, deadline + timedelta(days=30)) == "red"


@pytest.mark.parametrize("status", NOT_WORKING)
def test_no_alert_once_nobody_is_working_the_case(status):
    late = china(2026, 12, 1, 12, 0)
    assert timers.alert_for(case_in(status, china(2026, 10, 15, 23, 59, 59)), late) == "none"


def test_no_alert_without_a_deadline():
    assert timers.alert_for(case_in(Status.SUBMITTED, None), china(2026, 12, 1, 12, 0)) == "none"


@arithmetic_settings
@given(deadline=deadlines, status=st.sampled_from(sorted(lifecycle.WORKING_STATUSES)),
       offsets=st.lists(st.timedeltas(min_value=timedelta(days=-20), max_value=timedelta(days=20)),
                        min_size=2, max_size=6))
def test_the_alert_only_grows_as_time_passes(deadline, status, offsets):
    rank = {"none": 0, "yellow": 1, "red": 2}
    case = case_in(status, deadline)
    colours = [timers.alert_for(case, deadline + offset) for offset in sorted(offsets)]
    assert [rank[c] for c in colours] == sorted(rank[c] for c in colours)
    assert all((c == "red") == (deadline + o >= deadline) for c, o in zip(colours, sorted(offsets)))


# ------------------------------------------------------------------------------------------ for people

def test_a_deadline_is_written_as_its_china_date():
    assert timers.local_day(datetime(2026, 10, 14, 15, 59, 59, tzinfo=timezone.utc)) == "2026年10月14日"
    assert timers.local_day(datetime(2026, 10, 14, 16, 0, tzinfo=timezone.utc)) == "2026年10月15日"
    assert timers.local_day(china(2026, 1, 5, 23, 59, 59)) == "2026年01月05日"
    assert timers.local_day(None) == "—"


# ------------------------------------------------------------------------------------------ time limits

def test_time_limits_per_category_and_kind():
    assert deadline_days("劳动和社会保障") == 5  # reply is the default kind
    assert deadline_days("城乡建设", "finish") == 20
    assert deadline_days("卫生计生", "accept") == 1
    assert deadline_days(None) == 7


@pytest.mark.parametrize("kind", ["accept", "reply", "finish"])
def test_an_unlisted_or_missing_category_gets_the_default_limit(kind):
    assert deadline_days("一个没有单独时限的类别", kind) == deadline_days(None, kind) == deadline_days("", kind)
