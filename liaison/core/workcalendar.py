"""Working days on the Chinese calendar: public holidays and 调休 make-up working days.

Data comes per year: the `chinesecalendar` package ships the State Council's published arrangements,
and `liaison/data/calendar/<year>.json` (optional) overrides or extends them, so a county can load next
year's notice the day it is published without waiting for a package release.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

CHINA_TZ = ZoneInfo("Asia/Shanghai")
DATA_DIR = Path(__file__).parent.parent / "data" / "calendar"


@lru_cache(maxsize=None)
def _overrides(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(extra holidays, extra working days) for `year` from the data folder."""
    path = DATA_DIR / f"{year}.json"
    if not path.exists():
        return frozenset(), frozenset()
    data = json.loads(path.read_text(encoding="utf-8"))
    holidays = frozenset(date.fromisoformat(d) for d in data.get("holidays", []))
    workdays = frozenset(date.fromisoformat(d) for d in data.get("workdays", []))
    return holidays, workdays


def is_working_day(day: date) -> bool:
    """True on a working day: Monday–Friday unless a public holiday, plus make-up weekend days."""
    extra_holidays, extra_workdays = _overrides(day.year)
    if day in extra_workdays:
        return True
    if day in extra_holidays:
        return False
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the package has no data for: weekdays only
        return day.weekday() < 5


def add_working_days(start: datetime, days: int) -> datetime:
    """The deadline `days` working days after `start`: end of that working day, China time, in UTC.

    A case received on a holiday starts counting on the next working day.
    """
    return _deadline_after(start.astimezone(CHINA_TZ).date(), days)


@lru_cache(maxsize=4096)
def _deadline_after(local: date, days: int) -> datetime:
    # Every case opened on one day with one limit gets the same deadline: computed once.
    remaining = days
    current = local
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    end_of_day = datetime.combine(current, time(23, 59, 59), tzinfo=CHINA_TZ)
    return end_of_day.astimezone(timezone.utc)


def working_days_between(start: datetime, end: datetime) -> int:
    """Number of working days strictly after `start`'s day up to and including `end`'s day."""
    a, b = start.astimezone(CHINA_TZ).date(), end.astimezone(CHINA_TZ).date()
    count, current = 0, a
    while current < b:
        current += timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count
