"""履职积分 on PostgreSQL: points come from recorded events (a case accepted in time and rated, duty shifts
kept and missed, grid visits), an offline activity counts after a three-step review chain and a
rejected one never does, caps hold, an adjustment is its own audited line, the stored ledger equals
the recomputation from the events, a new version of the standard rebuilds the year, and the 公示
list grades by the county's thresholds."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from liaison.case import service as cases
from liaison.core import clock
from liaison.core.errors import DomainError
from liaison.core.types import Actor
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Account, Deputy, Grid, Resident, Station
from liaison.people.service import Principal
from liaison.points import lifecycle
from liaison.points import service as points
from liaison.points.models import PointsEntry
from liaison.rota import service as rota
from liaison.rota import timers as rota_timers

YEAR = 2026
START = datetime(2026, 9, 28, 8, 0, tzinfo=CHINA_TZ)
CHAIN = [{"name": "联络站上报", "by": "station_staff"}, {"name": "代表工委复核", "by": "county_staff"},
         {"name": "主任会议确定", "by": "county_staff"}]


@pytest.fixture
def now():
    moment = {"at": START}
    clock.set_clock(lambda: moment["at"])
    yield moment
    clock.set_clock(None)


def _staff(session, name, station=None) -> Principal:
    station_id = session.scalar(select(Station.id).where(Station.code == station)) if station else None
    account = Account(role="staff", name=name, active=True, station_id=station_id)
    session.add(account)
    session.flush()
    return Principal("staff", account=account)


def _deputy(session, code) -> Principal:
    deputy = session.scalar(select(Deputy).where(Deputy.code == code))
    account = Account(role="deputy", name=deputy.name, deputy_id=deputy.id, active=True)
    session.add(account)
    session.flush()
    return Principal("deputy", account=account)


def _same(session, deputy_ids=None):
    return points.ledger_totals(session, YEAR, deputy_ids) == points.recompute(session, YEAR, deputy_ids)


def test_points_from_events_reviews_and_adjustments_equal_the_recomputation(db_session, now):
    county, county2 = _staff(db_session, "工委甲"), _staff(db_session, "工委乙")
    station = _staff(db_session, "城关站", "S001")
    points.publish_standard(db_session, county, YEAR, title="2026年度代表履职积分", items=points.DEFAULT_ITEMS,
                            review_chain=CHAIN)
    zhang, li = _deputy(db_session, "D001"), _deputy(db_session, "D002")
    zid = zhang.account.deputy_id

    # A case in 张建华's grid, accepted in time and rated satisfied.
    resident = Resident(oa_openid="o_points_r1")
    db_session.add(resident)
    db_session.flush()
    case = cases.open_case(db_session, resident, "幸福里小区路灯坏了", now=START)
    assert case.deputy_id == zid and case.handler_kind == "deputy"
    cases.accept(db_session, case, Actor("deputy", zid))
    cases.close(db_session, case, Actor("deputy", zid), "已修好")
    cases.rate(db_session, case, resident, "satisfied", channel="chat")
    assert points.sync(db_session, YEAR) == 2  # accepted in time, rated satisfied

    # Wednesday duty: 张建华 checks in on the 30th, nobody on 8 October (moved past 国庆): kept, missed.
    rota.create_rule(db_session, county, station_code="S001", weekday=2, slots=2, deputy_codes=["D001", "D002"],
                     valid_from=date(2026, 9, 28), now=START)
    scanner = Resident(oa_openid="o_points_zhang", mp_openid="mp_points_zhang")
    zhang.account.mp_openid = "mp_points_zhang"
    db_session.add(scanner)
    s001 = db_session.scalar(select(Station).where(Station.code == "S001"))
    now["at"] = datetime(2026, 9, 30, 9, 5, tzinfo=CHINA_TZ)
    assert rota.scan_station(db_session, scanner, s001).startswith("签到成功")
    rota_timers.close_ended(db_session, datetime(2026, 10, 9, 0, 0, tzinfo=CHINA_TZ))
    # Grid visits: more than the cap allows (0.5 each, at most 20 a year: 41 visits give 20).
    g001 = db_session.scalar(select(Grid).where(Grid.code == "G001"))
    for i in range(41):
        rota.record_visit(db_session, zid, g001, method="report", note=f"走访{i}",
                          now=START + timedelta(days=i % 60, minutes=i))
    points.sync(db_session, YEAR)
    assert _same(db_session)

    # Offline activities: one approved along three steps counts; one rejected at step two never does.
    now["at"] = datetime(2026, 10, 20, 10, 0, tzinfo=CHINA_TZ)
    meeting = points.report_activity(db_session, zhang, item_code="meeting", title="县人大常委会第十次会议",
                                     happened_on=date(2026, 10, 15), evidence="列席会议并发言")
    training = points.report_activity(db_session, zhang, item_code="training", title="履职培训",
                                      happened_on=date(2026, 10, 16), evidence="参加培训")
    with pytest.raises(DomainError):
        points.report_activity(db_session, zhang, item_code="duty", title="自报值班", happened_on=date(2026, 10, 1),
                               evidence="值班")  # the system scores duty itself
    with pytest.raises(DomainError) as county_step:
        points.review(db_session, station, meeting, True)
        points.review(db_session, station, meeting, True)  # step 2 is the county's
    assert county_step.value.code == "county_step"
    with pytest.raises(DomainError) as twice:
        points.review(db_session, county, meeting, True)
        points.review(db_session, county, meeting, True)  # one person, one step
    assert twice.value.code == "already_reviewed"
    before = points.ledger_totals(db_session, YEAR, [zid])[zid]
    assert "meeting" not in before  # two of three steps: not counted yet
    points.review(db_session, county2, meeting, True, note="同意")
    assert meeting.status == lifecycle.APPROVED and [r.step_name for r in meeting.reviews] == [s["name"] for s in CHAIN]
    points.review(db_session, station, training, True)
    points.review(db_session, county, training, False, note="佐证材料不足")
    assert training.status == lifecycle.REJECTED
    with pytest.raises(DomainError):
        points.review(db_session, county2, training, True)
    totals = points.ledger_totals(db_session, YEAR, [zid])[zid]
    assert totals["meeting"] == Decimal("3.00") and "training" not in totals

    # An audited adjustment is its own line; station staff may not adjust.
    with pytest.raises(DomainError):
        points.adjust(db_session, station, "D001", YEAR, 2, "补录")
    points.adjust(db_session, county, "D001", YEAR, Decimal("-1.5"), "值班记录更正")
    db_session.flush()
    totals = points.ledger_totals(db_session, YEAR, [zid])[zid]
    assert totals == {"case_accepted": Decimal("1.00"), "satisfied": Decimal("0.50"), "duty": Decimal("2.00"),
                      "missed_duty": Decimal("-2.00"), "grid_visit": Decimal("20.00"), "meeting": Decimal("3.00"),
                      "adjustment": Decimal("-1.50")}
    assert points.ledger_totals(db_session, YEAR, [li.account.deputy_id])[li.account.deputy_id] == {
        "missed_duty": Decimal("-4.00")}  # 李秀英 checked in to neither shift
    assert _same(db_session)
    deputy, entries, total = points.ledger(db_session, zhang, YEAR)
    assert total == Decimal("23.00") and all(e.source_ref for e in entries)
    assert {points.source_label(e.source_ref) for e in entries} >= {"诉求办理记录", "群众评价", "值班记录", "网格走访",
                                                                     "履职活动申报", "积分调整"}

    # A new version of the standard (visits worth 1, cap 10) rebuilds the year under it.
    items = [dict(i, points=1, cap=10) if i["code"] == "grid_visit" else i for i in points.DEFAULT_ITEMS]
    second = points.publish_standard(db_session, county, YEAR, title="2026年度（修订）", items=items, review_chain=CHAIN)
    assert second.version == 2 and points.standard_for(db_session, YEAR).id == second.id
    assert points.ledger_totals(db_session, YEAR, [zid])[zid]["grid_visit"] == Decimal("10.00")
    assert {e.standard_id for e in db_session.scalars(select(PointsEntry))} == {second.id}
    assert _same(db_session)

    # 公示 and grades by the thresholds (优秀 ≥ 60, 称职 ≥ 30, 基本称职 ≥ 15).
    standings = points.publication(db_session, county, YEAR)
    # D004 and D005 (the enterprise grid's and the industry chain's deputies) did nothing this year.
    assert [(s.deputy.code, s.total, s.grade) for s in standings] == [
        ("D001", Decimal("13.00"), "不称职"), ("D003", Decimal("0"), "不称职"), ("D004", Decimal("0"), "不称职"),
        ("D005", Decimal("0"), "不称职"), ("D002", Decimal("-4.00"), "不称职")]
    book = load_workbook(io.BytesIO(points.export_xlsx(db_session, county, YEAR)))
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert rows[0][:4] == ("排名", "代表编码", "姓名", "联络站") and rows[0][-2:] == ("积分", "等次")
    assert rows[1][:3] == (1, "D001", "张建华") and rows[1][-2:] == (13.0, "不称职")
    assert sum(rows[1][4:-2]) == 13.0  # the categories' columns add up to the total
    assert len(list(book.worksheets[1].iter_rows())) == 1 + len(db_session.scalars(select(PointsEntry)).all())
    # Station staff see their station's deputies only; a deputy reads only their own ledger.
    assert {s.deputy.code for s in points.publication(db_session, _staff(db_session, "青山站", "S002"), YEAR)} == {"D003"}
    assert points.ledger(db_session, li, YEAR, "D001")[0].code == "D002"


def test_a_standard_must_be_whole(db_session):
    county = _staff(db_session, "工委")
    for items in ([], [dict(points.DEFAULT_ITEMS[0], source="typed_in")], [dict(points.DEFAULT_ITEMS[0], points=0)],
                  points.DEFAULT_ITEMS + [points.DEFAULT_ITEMS[0]]):
        with pytest.raises(DomainError):
            points.publish_standard(db_session, county, YEAR, title="坏标准", items=items)
    with pytest.raises(DomainError):
        points.publish_standard(db_session, _staff(db_session, "站", "S001"), YEAR, title="站", items=points.DEFAULT_ITEMS)
    assert points.standard_for(db_session, YEAR) is None
