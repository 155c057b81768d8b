"""The office's figures: each defined once, and its drill-down selects exactly the rows it counts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from liaison.case import access
from liaison.case import service as cases
from liaison.case.models import Case
from liaison.console import ledger
from liaison.console import service as figures
from liaison.core import clock
from liaison.core.types import Actor
from liaison.intake import service as intake
from liaison.people import service as people
from liaison.people.models import Department, Grid, Resident, Station

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
