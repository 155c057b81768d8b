"""Working days on the Chinese calendar (liaison/core/workcalendar.py): holidays, 调休 make-up days,
and deadlines counted in working days. Pure: no database."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from liaison.case import timers
from liaison.core.workcalendar import CHINA_TZ, add_working_days, is_working_day, working_days_between

# Years the calendar package has data for, and one after it (weekdays only) for the fallback.
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2027, 6, 30),
                       timezones=st.just(timezone.utc))
counts = st.integers(min_value=0, max_value=45)
# The calendar code is quick; a loaded machine must not turn a slow example into a failure.
calendar_settings = settings(deadline=None, max_examples=150)


def local_date(moment):
    return moment.astimezone(CHINA_TZ).date().isoformat()


def test_the_chinese_calendar_counts_holidays_and_make_up_days():
    start = datetime(2026, 9, 30, 10, 0, tzinfo=CHINA_TZ)
    assert not is_working_day(datetime(2026, 10, 5).date())  # 国庆 on a Monday
    assert is_working_day(datetime(2026, 10, 10).date())  # make-up Saturday
    assert is_working_day(datetime(2026, 9, 20).date())  # make-up Sunday
    assert local_date(add_working_days(start, 1)) == "2026-10-08"
    assert local_date(add_working_days(start, 3)) == "2026-10-10"
    assert local_date(add_working_days(start, 4)) == "2026-10-12"
    assert timers.reminder_time(add_working_days(start, 4)).astimezone(CHINA_TZ).isoformat().startswith(
        "2026-10-10T09:00")


def test_is_working_day_around_national_day_2026():
    assert [is_working_day(date(2026, 10, d)) for d in range(1, 13)] == [
        False, False, False, False, False, False, False,  # 1–7 October: 国庆 and 中秋
        True, True, True,  # Thursday, Friday, and Saturday the 10th (调休)
        False, True]  # an ordinary Sunday, an ordinary Monday
    assert not is_working_day(date(2026, 9, 19))  # the Saturday before the make-up Sunday
    assert is_working_day(date(2026, 9, 18))  # an ordinary Friday


def test_a_case_received_on_a_holiday_starts_counting_on_the_next_working_day():
    on_holiday = datetime(2026, 10, 3, 15, 0, tzinfo=CHINA_TZ)
    assert local_date(add_working_days(on_holiday, 1)) == "2026-10-08"
    assert local_date(add_working_days(on_holiday, 5)) == "2026-10-13"  # 8, 9, 10 (Sat), 12, 13


def test_the_deadline_is_the_end_of_a_china_day_whatever_the_start_time_zone():
    before_midnight = datetime(2026, 9, 29, 15, 30, tzinfo=timezone.utc)  # 23:30 on the 29th in China
    after_midnight = datetime(2026, 9, 29, 16, 30, tzinfo=timezone.utc)  # 00:30 on the 30th in China
    assert local_date(add_working_days(before_midnight, 1)) == "2026-09-30"
    assert local_date(add_working_days(after_midnight, 1)) == "2026-10-08"
    deadline = add_working_days(after_midnight, 1)
    assert deadline.tzinfo == timezone.utc
    assert deadline.astimezone(CHINA_TZ).time() == time(23, 59, 59)


def test_a_year_without_published_data_counts_weekdays():
    days = [date(2099, 1, 1) + timedelta(days=n) for n in range(60)]
    assert [is_working_day(d) for d in days] == [d.weekday() < 5 for d in days]


@calendar_settings
@given(start=moments, days=st.integers(min_value=1, max_value=45))
def test_a_deadline_lands_at_the_end_of_a_working_day(start, days):
    local = add_working_days(start, days).astimezone(CHINA_TZ)
    assert is_working_day(local.date())
    assert local.time() == time(23, 59, 59)


@calendar_settings
@given(start=moments, days=counts)
def test_the_deadline_is_exactly_that_many_working_days_on(start, days):
    deadline = add_working_days(start, days)
    assert working_days_between(start, deadline) == days
    if days == 0:
        assert local_date(deadline) == local_date(start)
    else:
        assert deadline > start


@calendar_settings
@given(start=moments, days=counts, more=st.integers(min_value=1, max_value=20))
def test_more_working_days_give_a_later_deadline(start, days, more):
    assert add_working_days(start, days) < add_working_days(start, days + more)


@calendar_settings
@given(start=moments, days=counts, later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_a_later_start_never_gives_an_earlier_deadline(start, days, later):
    assert add_working_days(start, days) <= add_working_days(start + later, days)
