"""The demo history seeds on any day: which of its cases are still open when a later one is merged
depends on the calendar (its moments are relative to `now`), and a merge target must be open."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from liaison import demo_history
from liaison.case.models import Case

# Moments over two and a half days (every eighth hour) and the one a stress run met: before the fix,
# 2026-12-01 16:30 and 2026-12-02 14:30 UTC picked a case awaiting its rating as a merge target.
MOMENTS = [datetime(2026, 11, 30, 0, 30, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(0, 64, 2)]


@pytest.mark.parametrize("now", MOMENTS[::4] + [datetime(2026, 12, 2, 14, 30, tzinfo=timezone.utc)], ids=lambda m: m.strftime("%m%d%H"))
def test_the_demo_history_seeds_on_any_day(db_session, now):
    assert demo_history.seed_history(db_session, cases_count=80, months=4, now=now) == 80
    assert db_session.scalar(select(func.count()).select_from(Case)) == 80
