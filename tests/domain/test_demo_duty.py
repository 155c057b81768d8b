"""The demo county's history includes a rota (shifts kept and missed), grid visits, a points standard and
reviewed activities, so the 公示 list shows real numbers; its ledger equals the recomputation."""
from __future__ import annotations

from sqlalchemy import func, select

from liaison import demo_history
from liaison.people.models import Account, Deputy
from liaison.people.service import Principal
from liaison.points import service as points
from liaison.points.models import ActivityReport, PointsStandard
from liaison.rota.models import DutyShift


def test_the_demo_history_has_a_rota_and_points(db_session):
    assert demo_history.seed_history(db_session, cases_count=60, months=3) == 60
    statuses = dict(db_session.execute(select(DutyShift.status, func.count()).group_by(DutyShift.status)).all())
    assert statuses.get("kept", 0) > 0 and statuses.get("planned", 0) > 0
    assert {r.status for r in db_session.scalars(select(ActivityReport))} == {"approved", "rejected"}
    county = Principal("staff", account=db_session.scalar(select(Account).where(
        Account.role == "staff", Account.station_id.is_(None)).order_by(Account.id)))
    standard = db_session.scalar(select(PointsStandard).limit(1))
    standings = points.publication(db_session, county, standard.year)
    deputies = db_session.scalar(select(func.count()).select_from(Deputy))
    assert len(standings) == deputies == 5 and all(s.total > 0 for s in standings)
    assert points.ledger_totals(db_session, standard.year) == points.recompute(db_session, standard.year)
