"""通报 and 整改 in the domain: a bulletin's figures are the office's figures over its period and scope,
the units under 90 % are named and get a 整改 item, and the item moves only through its table."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from liaison.bulletin import lifecycle
from liaison.bulletin import service as bulletins
from liaison.bulletin.models import Rectification
from liaison.case import access
from liaison.case.models import Notice
from liaison.console import ledger
from liaison.console import service as figures
from liaison.core import clock
from liaison.core.errors import DomainError
from liaison.people import service as people
from liaison.people.models import Department, Deputy, Station
from tests.domain.test_console_figures import MONDAY, county, history  # noqa: F401  (fixtures)


def _scope(db_session, role, name, **kwargs):
    account, _ = people.create_account(db_session, role, name, **kwargs)
    return access.scope_of(db_session, people.Principal(role, account=account))


@pytest.fixture
def station1(db_session):
    return _scope(db_session, people.STAFF, "城关镇联络站",
                  station=db_session.scalar(select(Station).where(Station.code == "S001")))


@pytest.fixture
def station2(db_session):
    return _scope(db_session, people.STAFF, "青山乡",
                  station=db_session.scalar(select(Station).where(Station.code == "S002")))


def _below(bulletin):
    return {(b["dimension"], b["code"], b["figure"]): b["value"] for b in bulletin.content["below"]}


def test_a_bulletin_holds_the_offices_figures_for_its_period(db_session, county, history):  # noqa: F811
    bulletin = bulletins.generate(db_session, county, "2026-03")
    content = bulletin.content
    assert bulletin.title == "全县2026年3月群众诉求办理情况通报" and bulletin.published_at is None
    # The same numbers the statistics page gives for the same rows.
    where = ledger.conditions(db_session, county, {"since": "2026-03-01", "until": "2026-03-31"})
    total, by_station = figures.statistics(db_session, county, where, "station")
    assert content["total"]["received"] == total.figures["received"] == 5
    assert content["total"]["closed_rate"] == pytest.approx(3 / 5)
    assert content["total"]["satisfaction_rate"] == pytest.approx(3 / 4)
    assert content["total"]["on_time_rate"] == pytest.approx(2 / 3)
    stations = {g["code"]: g["figures"] for g in content["groups"]["station"]}
    assert stations == {g.key: {n: g.figures[n] for n in bulletins.SHOWN} for g in by_station}
    # 城关镇 (S001: on_time, late, unhappy, open): 办结 2/4, 满意 2/3, 按期 1/2 — all under 90 %.
    assert stations["S001"]["closed_rate"] == pytest.approx(0.5)
    below = _below(bulletin)
    assert below[("station", "S001", "closed_rate")] == pytest.approx(0.5)
    assert below[("station", "S001", "satisfaction_rate")] == pytest.approx(2 / 3)
    assert below[("station", "S001", "on_time_rate")] == pytest.approx(0.5)
    assert below[("department", "zhujian", "on_time_rate")] == 0.0  # closed late
    assert ("department", "zhujian", "satisfaction_rate") not in below  # 基本满意 counts as satisfied
    assert not any(code == "S002" or code == "D003" for _d, code, _f in below)  # 青山乡: all 100 %
    assert [r["code"] for r in content["ranking"]["station"]] == ["S002", "S001"]
    # Still being worked long past their deadlines (today is after March): the open and the reopened.
    assert {o["number"] for o in content["overdue"]} == {history["open"].number, history["unhappy"].number}
    assert content["overdue_total"] == 2
    # Another month has none of these cases.
    assert bulletins.generate(db_session, county, "2026-04").content["total"]["received"] == 0
    quarter = bulletins.generate(db_session, county, "2026-Q1")
    assert quarter.content["total"] == content["total"] and "第一季度" in quarter.title


def test_a_station_bulletin_covers_the_station_only(db_session, county, station2, history):  # noqa: F811
    with pytest.raises(DomainError) as other:
        bulletins.generate(db_session, station2, "2026-03", "S001")
    assert other.value.kind == "forbidden"
    mine = bulletins.generate(db_session, station2, "2026-03")  # their own station, named or not
    assert mine.station.code == "S002" and mine.content["total"]["received"] == 1
    assert _below(mine) == {}
    county_view = bulletins.generate(db_session, county, "2026-03", "S001")
    assert county_view.content["total"]["received"] == 4


def test_who_may_generate_and_see(db_session, county, station1, station2, history):  # noqa: F811
    deputy = _scope(db_session, people.DEPUTY, "张建华",
                    deputy=db_session.scalar(select(Deputy).where(Deputy.code == "D001")))
    with pytest.raises(DomainError) as refused:
        bulletins.generate(db_session, deputy, "2026-03")
    assert refused.value.kind == "forbidden"
    for bad in ("2026-13", "March", "2026-Q5", ""):
        with pytest.raises(DomainError) as invalid:
            bulletins.generate(db_session, county, bad)
        assert invalid.value.kind == "invalid"
    whole = bulletins.generate(db_session, county, "2026-03")
    theirs = bulletins.generate(db_session, station1, "2026-03")
    assert {b.id for b in bulletins.list_bulletins(db_session, station2)} == set()  # a draft: not yet
    with pytest.raises(DomainError) as hidden:
        bulletins.get_bulletin(db_session, station2, theirs.public_id)
    assert hidden.value.kind == "not_found"
    with pytest.raises(DomainError):
        bulletins.publish(db_session, station2, theirs)  # not theirs to publish
    bulletins.publish(db_session, county, whole)
    assert {b.id for b in bulletins.list_bulletins(db_session, station2)} == {whole.id}
    assert {b.id for b in bulletins.list_bulletins(db_session, county)} == {whole.id, theirs.id}


def test_rectification_moves_through_its_table(db_session, county, station1, station2, history):  # noqa: F811
    bulletin = bulletins.generate(db_session, county, "2026-03")
    clock.set_clock(lambda: MONDAY + timedelta(days=30))
    try:
        items = bulletins.publish(db_session, county, bulletin, working_days=5)
        assert {(i.unit_kind, i.figure) for i in items} >= {("station", "closed_rate"),
                                                            ("department", "on_time_rate")}
        with pytest.raises(DomainError) as twice:
            bulletins.publish(db_session, county, bulletin)
        assert twice.value.kind == "conflict"
        zhujian = db_session.scalar(select(Department.id).where(Department.code == "zhujian"))
        item = next(i for i in items if i.unit_kind == "department")
        assert item.status == lifecycle.OPEN and item.unit_id == zhujian
        told = db_session.scalar(select(Notice).where(Notice.dedup_key == f"rectification:{item.id}"))
        assert told.department_id == zhujian and "按期办结率" in told.text and "0.0%" in told.text
        # The station unit sees its own item, responds; the other station sees nothing.
        station_item = next(i for i in items if i.unit_kind == "station" and i.figure == "closed_rate")
        assert station_item.id in {i.id for i in bulletins.list_rectifications(db_session, station1)}
        assert bulletins.list_rectifications(db_session, station2) == []
        with pytest.raises(DomainError) as foreign:
            bulletins.get_rectification(db_session, station2, station_item.public_id)
        assert foreign.value.kind == "not_found"
        with pytest.raises(DomainError):
            bulletins.verify(db_session, county, station_item)  # nothing answered yet
        with pytest.raises(DomainError) as empty:
            bulletins.respond(db_session, station1, station_item, "  ")
        assert empty.value.kind == "invalid" and station_item.status == lifecycle.OPEN
        bulletins.respond(db_session, station1, station_item, "已逐件督办未办结诉求，每周通报进度")
        assert station_item.status == lifecycle.RESPONDED
        with pytest.raises(DomainError) as own:
            bulletins.verify(db_session, station1, station_item)  # a unit does not verify itself
        assert own.value.kind == "forbidden"
        bulletins.send_back(db_session, county, station_item, "请附上整改台账")
        assert station_item.status == lifecycle.OPEN
        bulletins.respond(db_session, station1, station_item, "已补充整改台账")
        bulletins.verify(db_session, county, station_item, "材料齐全")
        assert station_item.status == lifecycle.CLOSED and station_item.verified_at is not None
        assert [h["action"] for h in station_item.history] == ["open", "respond", "send_back", "respond",
                                                                "verify"]
        with pytest.raises(lifecycle.IllegalRectification):
            bulletins.respond(db_session, station1, station_item, "再报一次")
        # County staff enter the department's written answer.
        bulletins.respond(db_session, county, item, "住建局书面报告：已建立按期办结提醒制度")
        assert item.status == lifecycle.RESPONDED
        assert not bulletins.list_rectifications(db_session, county, overdue=True)
    finally:
        clock.set_clock(None)
    # Past the deadline: every item not closed is overdue, closed ones are not.
    later = MONDAY + timedelta(days=60)
    overdue = bulletins.list_rectifications(db_session, county, overdue=True, now=later)
    assert station_item not in overdue and item in overdue
    assert all(bulletins.is_overdue(i, later) for i in overdue)
    assert len(overdue) == db_session.query(Rectification).filter(
        Rectification.status != lifecycle.CLOSED).count()


def test_the_next_periods_figure_is_shown_beside_the_item(db_session, county, history):  # noqa: F811
    bulletin = bulletins.generate(db_session, county, "2026-02")
    assert bulletin.content["total"]["received"] == 0
    march = bulletins.generate(db_session, county, "2026-03")
    items = bulletins.publish(db_session, county, march)
    item = next(i for i in items if i.unit_kind == "station" and i.figure == "closed_rate")
    label, value = bulletins.next_period_value(db_session, county, item)
    assert label == "2026年4月" and value is None  # nothing received in April yet


def test_the_transition_table_refuses_what_it_does_not_list():
    assert lifecycle.allows("respond", lifecycle.OPEN)
    assert not lifecycle.allows("verify", lifecycle.OPEN)
    assert not lifecycle.allows("respond", lifecycle.CLOSED)
    with pytest.raises(lifecycle.IllegalRectification):
        lifecycle.check("close_everything", lifecycle.OPEN)
