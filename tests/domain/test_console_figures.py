"""The office's figures: each defined once, and its drill-down selects exactly the rows it counts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from liaison.case import access
from liaison.case import service as cases
from liaison.case.models import Case
from liaison.console import ledger
from liaison.console import service as figures
from liaison.core import clock
from liaison.core.types import Actor
from liaison.core.workcalendar import CHINA_TZ
from liaison.intake import service as intake
from liaison.people import service as people
from liaison.people.models import Department, Grid, Resident, Station
from liaison.wechat.privacy import mask

# Monday 2026-03-02, 09:00 China time; the week of 2026-03-02 has no holiday.
MONDAY = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def county(db_session):
    account, _ = people.create_account(db_session, people.STAFF, "县人大工委")
    return access.scope_of(db_session, people.Principal(people.STAFF, account=account))


def _at(moment):
    clock.set_clock(lambda: moment)


@pytest.fixture
def history(db_session):
    """Four cases in G001 and one in G003 with known outcomes."""
    grids = {g.code: g for g in db_session.scalars(select(Grid))}
    department = db_session.scalar(select(Department).where(Department.code == "zhujian"))
    made = {}
    try:
        for name, grid in (("on_time", "G001"), ("late", "G001"), ("unhappy", "G001"), ("open", "G001"),
                           ("elsewhere", "G003")):
            resident = Resident(oa_openid=f"o_fig_{name}", grid_id=grids[grid].id)
            db_session.add(resident)
            db_session.flush()
            _at(MONDAY)
            case = cases.open_case(db_session, resident, "幸福里小区楼道的路灯坏了", grid=grids[grid])
            made[name] = case
            deputy = Actor("deputy", case.deputy_id)
            _at(MONDAY + timedelta(days=1))  # Tuesday: accepted after 1 working day
            cases.accept(db_session, case, deputy)
            if name == "open":
                continue
            if name == "late":
                cases.dispatch(db_session, case, deputy, department, working_days=2)  # due Thursday
                cases.accept(db_session, case, Actor("department", department.id))
                _at(MONDAY + timedelta(days=8))  # Tuesday next week: late
                cases.close(db_session, case, Actor("department", department.id), "修好了")
            else:
                _at(MONDAY + timedelta(days=3))  # Thursday: 3 working days after receipt
                cases.close(db_session, case, deputy, "修好了")
            value = {"unhappy": "unsatisfied", "late": "basically_satisfied"}.get(name, "satisfied")
            cases.rate(db_session, case, case.resident, value, channel="chat")
        db_session.flush()
    finally:
        clock.set_clock(None)
    return made


def _ids(db_session, scope, params):
    where = ledger.conditions(db_session, scope, params)
    return {c.number for c in db_session.scalars(select(Case).where(*where))}


def test_the_figures_count_what_their_definitions_say(db_session, county, history):
    total, by_grid = figures.statistics(db_session, county, ledger.conditions(db_session, county, {}), "grid")
    f = total.figures
    assert f["received"] == 5
    assert f["closed_rate"] == pytest.approx(3 / 5)  # "unhappy" is in its second round, "open" open
    assert f["on_time_rate"] == pytest.approx(2 / 3)
    assert f["satisfaction_rate"] == pytest.approx(3 / 4)  # 满意 ×2 + 基本满意 / 4 rated
    assert f["second_round_rate"] == pytest.approx(1 / 4)
    assert f["response_days"] == pytest.approx(1.0)
    # on_time and elsewhere: Monday → Thursday = 3 working days; late: Monday → next Tuesday = 6.
    assert f["closing_days"] == pytest.approx((3 + 3 + 6) / 3)
    assert {g.label: g.figures["received"] for g in by_grid} == {"幸福里社区第一网格": 4, "青山村网格": 1}


def test_every_drill_down_lists_exactly_the_rows_counted(db_session, county, history):
    total, _groups = figures.statistics(db_session, county, ledger.conditions(db_session, county, {}), None)
    for name, figure in figures.FIGURES.items():
        numerator, denominator = total.counts[name]
        if figure.numerator is not None:
            assert len(_ids(db_session, county, {"figure": f"{name}.numerator"})) == numerator, name
        if figure.denominator is not None:
            assert len(_ids(db_session, county, {"figure": f"{name}.denominator"})) == denominator, name
    unhappy = history["unhappy"].number
    assert _ids(db_session, county, {"figure": "second_round_rate.numerator"}) == {unhappy}


def test_a_station_sees_the_figures_of_its_own_grids(db_session, history):
    station = db_session.scalar(select(Station).where(Station.code == "S002"))
    account, _ = people.create_account(db_session, people.STAFF, "青山乡", station=station)
    scope = access.scope_of(db_session, people.Principal(people.STAFF, account=account))
    total, _ = figures.statistics(db_session, scope, ledger.conditions(db_session, scope, {}), None)
    assert total.figures["received"] == 1
    assert _ids(db_session, scope, {}) == {history["elsewhere"].number}
    assert _ids(db_session, scope, {"station": "S001"}) == set()  # a filter never widens the scope


def test_ledger_filters_combine(db_session, county, history):
    assert _ids(db_session, county, {"rating": "unsatisfied"}) == {history["unhappy"].number}
    assert _ids(db_session, county, {"grid": "G003"}) == {history["elsewhere"].number}
    assert _ids(db_session, county, {"department": "zhujian"}) == {history["late"].number}
    assert _ids(db_session, county, {"round": "2"}) == {history["unhappy"].number}
    assert _ids(db_session, county, {"since": "2026-03-03"}) == set()
    assert len(_ids(db_session, county, {"since": "2026-03-02", "until": "2026-03-02", "q": "路灯"})) == 5
    with pytest.raises(ledger.BadFilter):
        ledger.conditions(db_session, county, {"since": "March"})
    with pytest.raises(ledger.BadFilter):
        ledger.conditions(db_session, county, {"grid": "G999"})


def test_a_page_resolves_codes_in_its_statement_and_still_refuses_a_bad_one(db_session, county, history):
    """The page names a grid, station or department by code inside its one SELECT; a code that names
    nothing is still BadFilter, and a real code with no matching rows is an empty page, not an error."""
    rows, total = ledger.page(db_session, county, {"grid": "G003"})
    assert [r["number"] for r in rows] == [history["elsewhere"].number] and total == 1
    rows, total = ledger.page(db_session, county, {"department": "zhujian", "station": "S001"})
    assert total == len(rows)
    assert ledger.page(db_session, county, {"grid": "G003", "since": "2030-01-01"}) == ([], 0)
    for bad in ({"grid": "G999"}, {"station": "S999"}, {"deputy": "D999", "since": "2026-01-01"}):
        with pytest.raises(ledger.BadFilter):
            ledger.page(db_session, county, bad)
    # A check noted by one call never leaks into the next: a good page after a bad one answers.
    assert ledger.page(db_session, county, {"grid": "G003"})[1] == 1


def test_figures_split_by_grid_kind_and_drill_down(db_session, county, history):
    """Issue 15: statistics split by grid kind (社区/企业/产业链), each group drilling down to its rows."""
    resident = Resident(oa_openid="o_fig_enterprise", grid_id=None)
    db_session.add(resident)
    db_session.flush()
    enterprise_case = cases.open_case(db_session, resident, "恒通机械有限公司门口道路破损")
    assert enterprise_case.grid.kind == "enterprise"
    db_session.flush()
    where = ledger.conditions(db_session, county, {})
    _total, groups = figures.statistics(db_session, county, where, "grid_kind")
    by_kind = {g.key: g for g in groups}
    assert by_kind["enterprise"].label == "企业" and by_kind["enterprise"].counts["received"][0] == 1
    assert by_kind["community"].counts["received"][0] == 5
    rows = db_session.scalars(select(Case.id).where(
        *ledger.conditions(db_session, county, {"grid_kind": "enterprise"}))).all()
    assert rows == [enterprise_case.id]
    with pytest.raises(ledger.BadFilter):
        ledger.conditions(db_session, county, {"grid_kind": "factory"})


def test_return_visit_ratings_are_told_from_chat_ratings(db_session, county, history):
    """A 回访 rating (staff, by phone) is the round's rating with its own channel: the ledger and the
    figures filtered by channel tell it from chat ratings."""
    staff = people.create_account(db_session, people.STAFF, "回访员")[0]
    resident = Resident(grid_id=None)
    db_session.add(resident)
    db_session.flush()
    case = cases.open_case(db_session, resident, "幸福里小区健身器材坏了")
    cases.accept(db_session, case, Actor("deputy", case.deputy_id))
    cases.close(db_session, case, Actor("deputy", case.deputy_id), "已修好")
    intake.record_return_visit(db_session, case, staff, method="phone", visitor="回访员",
                               visited_at=clock.utcnow(), outcome="群众满意", rating="satisfied")
    db_session.flush()
    assert _ids(db_session, county, {"rating_channel": "return_visit"}) == {case.number}
    assert _ids(db_session, county, {"rating_channel": "chat"}) == {
        history[n].number for n in ("on_time", "late", "elsewhere")}  # "unhappy" is in round 2, unrated
    total, _ = figures.statistics(db_session, county,
                                  ledger.conditions(db_session, county, {"rating_channel": "return_visit"}), None)
    assert total.figures["satisfaction_rate"] == 1.0


@pytest.mark.parametrize("dimension", [None, *figures.DIMENSIONS])
def test_the_database_and_the_row_by_row_counting_agree(db_session, county, history, dimension):
    where = ledger.conditions(db_session, county, {})
    in_sql = figures.tally_in_sql(db_session, where, dimension)
    by_rows = figures.tally_rows(db_session, where, dimension)
    assert {k: t.values() for k, t in in_sql.items()} == {k: t.values() for k, t in by_rows.items()}
    assert sum(t.numerators["received"] for t in in_sql.values()) == 5


def test_the_statistics_page_rolls_up_one_count(db_session, county, history):
    where = ledger.conditions(db_session, county, {})
    total, groups, months = figures.overview(db_session, county, where, "grid")
    assert (total, groups) == figures.statistics(db_session, county, where, "grid")
    assert months == figures.statistics(db_session, county, where, "month")[1]


def test_the_case_row_repeats_its_timeline(db_session, history):
    """受理时间, 评价 and 来源 on the case row equal what the timeline and the ratings say."""
    rows = db_session.execute(select(Case.number, Case.accepted_at, Case.rating, Case.source,
                                     *figures.timeline_facts())).all()
    assert len(rows) == 5
    for number, accepted, rating, source, t_accepted, t_rating, t_source in rows:
        assert (accepted, rating, source) == (t_accepted, t_rating, t_source), number
    assert {r.rating for r in rows} == {"satisfied", "basically_satisfied", "unsatisfied", None}
    for case in history.values():
        assert case.resident_tag == mask(case.resident.oa_openid)[4:10]
        assert ledger.row_of_case(db_session, case)["resident"] == f"群众（{case.resident_tag}）"


def _agree(db_session, where, dimension):
    by_summary = figures.tally_summary(db_session, where, dimension)
    by_rows = figures.tally_rows(db_session, where, dimension)
    assert {k: t.values() for k, t in by_summary.items()} == {k: t.values() for k, t in by_rows.items()}
    return by_summary


@pytest.mark.parametrize("dimension", [None, *figures.DIMENSIONS])
def test_the_daily_summary_and_the_row_by_row_counting_agree(db_session, county, history, dimension):
    """Before the recount (every day stale: counted live), after it (from the summary, 超期 judged
    today), after a write (its day stale again) and after the next recount."""
    from liaison.console import summary
    from liaison.console.models import DailyFigures

    where = ledger.conditions(db_session, county, {})
    assert where.summary is not None
    assert summary.stale_days(db_session)  # the trigger marked the cases' day
    _agree(db_session, where, dimension)
    assert figures.recount_summary(db_session) >= 1
    assert summary.stale_days(db_session) == set()
    assert db_session.scalar(select(func.count()).select_from(DailyFigures)) > 0
    counted = _agree(db_session, where, dimension)
    # "open" and "unhappy" (its second round) are past their deadlines, judged against today.
    assert sum(t.numerators["overdue"] for t in counted.values()) == 2

    open_case = history["open"]
    cases.close(db_session, open_case, Actor("deputy", open_case.deputy_id), "修好了")
    db_session.flush()
    assert summary.stale_days(db_session) == {MONDAY.astimezone(CHINA_TZ).date()}
    after_write = _agree(db_session, where, dimension)
    assert sum(t.numerators["overdue"] for t in after_write.values()) == 1
    assert sum(t.numerators["closed_rate"] for t in after_write.values()) == 4
    figures.recount_summary(db_session)
    assert summary.stale_days(db_session) == set()
    assert sum(t.numerators["closed_rate"] for t in _agree(db_session, where, dimension).values()) == 4


def test_the_summary_judges_overdue_today(db_session, county, history):
    """A case being worked whose deadline fell earlier today is 超期 now; one due later is not."""
    from liaison.console import summary

    now = clock.utcnow()
    today_start = summary.day_start(now.astimezone(CHINA_TZ).date())
    history["unhappy"].deadline = now + timedelta(days=2)
    history["open"].deadline = today_start if today_start < now else now - timedelta(seconds=1)
    db_session.flush()
    figures.recount_summary(db_session)
    where = ledger.conditions(db_session, county, {})
    assert sum(t.numerators["overdue"] for t in _agree(db_session, where, None).values()) == 1
    history["open"].deadline = now + timedelta(days=2)
    db_session.flush()
    figures.recount_summary(db_session)
    assert sum(t.numerators["overdue"] for t in _agree(db_session, where, None).values()) == 0


@pytest.mark.parametrize("params", [
    {"grid": "G001"}, {"grid": "G003", "since": "2026-03-01"}, {"since": "2026-03-03"},
    {"until": "2026-03-02"}, {"station": "S002"}, {"grid_kind": "community"}, {"category": "城乡建设"},
    {"department": "zhujian"}, {"source": "wechat"}, {"grid": ledger.NONE_VALUE},
])
def test_the_summary_applies_each_filter_as_the_ledger_does(db_session, county, history, params):
    figures.recount_summary(db_session)
    where = ledger.conditions(db_session, county, params)
    assert where.summary is not None
    for dimension in (None, "grid", "month"):
        _agree(db_session, where, dimension)


def test_a_station_reads_only_its_grids_from_the_summary(db_session, history):
    station = db_session.scalar(select(Station).where(Station.code == "S002"))
    account, _ = people.create_account(db_session, people.STAFF, "青山乡", station=station)
    scope = access.scope_of(db_session, people.Principal(people.STAFF, account=account))
    figures.recount_summary(db_session)
    counted = _agree(db_session, ledger.conditions(db_session, scope, {}), None)
    assert counted["all"].numerators["received"] == 1


@pytest.mark.parametrize("params", [{"status": "open"}, {"rating": "satisfied"}, {"q": "路灯"}, {"round": "2"},
                                    {"overdue": "yes"}, {"figure": "on_time_rate.numerator"}])
def test_filters_the_summary_cannot_apply_count_live(db_session, county, history, params):
    where = ledger.conditions(db_session, county, params)
    assert where.summary is None
    total, _groups = figures.statistics(db_session, county, where, None)
    by_rows = figures.tally_rows(db_session, where, None)
    assert total.figures == by_rows["all"].values()
