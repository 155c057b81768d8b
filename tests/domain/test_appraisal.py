"""Quarterly 述职 测评 on PostgreSQL: the deputy's constituents are told and vote once; a resident of
another grid is refused; under 90 % opens 整改 with a deadline, and its completion a second 测评 whose
result is kept beside the first; the 述职 rate is reported apart from case ratings."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from liaison.appraisal import lifecycle
from liaison.appraisal import service as appraisal
from liaison.case.models import Notice
from liaison.core import clock
from liaison.core.errors import DomainError
from liaison.core.workcalendar import CHINA_TZ, add_working_days
from liaison.engagement import surveys
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Account, Deputy, Grid, Resident
from liaison.people.service import Principal

START = datetime(2026, 10, 12, 10, 0, tzinfo=CHINA_TZ)


@pytest.fixture
def now():
    clock.set_clock(lambda: START)
    yield
    clock.set_clock(None)


def test_constituents_rate_the_report_and_under_ninety_percent_opens_rectification(db_session, now):
    staff_account = Account(role="staff", name="工委", active=True)
    zhang = db_session.scalar(select(Deputy).where(Deputy.code == "D001"))
    db_session.add_all([staff_account, Account(role="deputy", name="张建华", deputy_id=zhang.id, active=True)])
    grids = {g.code: g.id for g in db_session.scalars(select(Grid))}
    voters = [Resident(oa_openid=f"o_appr_{i}", grid_id=grids["G001"]) for i in range(3)]
    outsider = Resident(oa_openid="o_appr_out", grid_id=grids["G003"])
    db_session.add_all(voters + [outsider])
    db_session.flush()
    staff = Principal("staff", account=staff_account)

    first = appraisal.schedule(db_session, staff, "D001", 2026, 4, now=START)
    with pytest.raises(DomainError):
        appraisal.schedule(db_session, staff, "D001", 2026, 4, now=START)  # once a quarter
    told = db_session.scalars(select(OutboxMessage.resident_id).where(
        OutboxMessage.dedup_key.like(f"appraisal-notice:{first.id}:%"))).all()
    assert sorted(told) == sorted(v.id for v in voters)  # G001's residents, not G003's
    survey = first.survey
    with pytest.raises(DomainError) as refused:
        surveys.vote(db_session, survey, outsider, "satisfied")
    assert refused.value.code == "not_constituent" and refused.value.kind == "forbidden"
    assert "仅限" in surveys.on_scan(db_session, outsider, survey.public_id)
    for voter, value in zip(voters, ("satisfied", "unsatisfied", "unsatisfied")):
        surveys.vote(db_session, survey, voter, value)
    with pytest.raises(DomainError):
        surveys.vote(db_session, survey, voters[0], "satisfied")  # once

    rectification = appraisal.close(db_session, first, START)
    assert first.status == lifecycle.CLOSED and first.satisfaction_rate == pytest.approx(1 / 3, abs=1e-4)
    assert rectification is not None and rectification.deadline == add_working_days(START, 20)
    assert db_session.scalar(select(func.count()).select_from(Notice).where(
        Notice.dedup_key == f"rectification:{rectification.id}", Notice.deputy_id == zhang.id)) == 1
    with pytest.raises(DomainError):
        surveys.vote(db_session, survey, voters[0], "satisfied")  # closed
    second = appraisal.complete(db_session, staff, rectification, "已逐户回访，问题整改到位")
    assert second.round == 2 and second.status == lifecycle.OPEN and rectification.status == lifecycle.DONE
    for voter in voters:
        surveys.vote(db_session, second.survey, voter, "satisfied")
    assert appraisal.close(db_session, second, START) is None and second.satisfaction_rate == 1.0
    history = appraisal.history(db_session, Principal("deputy", account=db_session.scalar(
        select(Account).where(Account.deputy_id == zhang.id))))
    assert [(a.quarter, a.round, a.satisfaction_rate) for a in history] == [(4, 2, 1.0), (4, 1, pytest.approx(0.3333))]
    rates = {d["code"]: d for d in surveys.results(db_session, staff)["deputies"]}
    assert rates["D001"]["report_rate"] == pytest.approx(4 / 6, abs=1e-4) and rates["D001"]["case_rate"] is None
