"""民生实事 on PostgreSQL: a 票决 without a quorum cannot be closed; a candidate below the majority is not
chosen; a chosen project's milestones turn yellow and red on schedule; its completion 测评 is counted."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from liaison.case.models import Notice
from liaison.core import clock
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import votes
from liaison.engagement.models import ProjectCandidate
from liaison.people.models import Account, Deputy, Resident
from liaison.people.service import Principal
from liaison.project import access, lifecycle, timers
from liaison.project import service as projects

START = datetime(2027, 1, 20, 9, 0, tzinfo=CHINA_TZ)


@pytest.fixture
def at():
    def move(moment):
        clock.set_clock(lambda: moment)
    move(START)
    yield move
    clock.set_clock(None)


def _principal(session, role, name, **links):
    account = Account(role=role, name=name, **links)
    session.add(account)
    session.flush()
    return Principal(role, account=account)


@pytest.fixture
def electorate(db_session):
    """Five county-level deputies (the demo's D001 and four more), each with an account; county staff."""
    s = db_session
    for i in range(4):
        s.add(Deputy(code=f"DV{i}", name=f"代表{i}", level="county"))
    s.flush()
    deputies = [_principal(s, "deputy", d.name, deputy_id=d.id)
                for d in s.scalars(select(Deputy).where(Deputy.level == "county").order_by(Deputy.id))]
    return {"staff": _principal(s, "staff", "县工委"), "deputies": deputies}


def _vote(s, staff):
    return votes.create(s, staff, "2027年县级民生实事", "county",
                        [{"code": "P1", "title": "老旧小区加装电梯"}, {"code": "P2", "title": "农村公路提升"},
                         {"code": "P3", "title": "社区食堂"}], max_choices=2)


def test_a_vote_without_a_quorum_cannot_be_closed(db_session, electorate, at):
    s = db_session
    vote = _vote(s, electorate["staff"])
    for deputy in electorate["deputies"][:2]:  # two of five: not more than half
        votes.cast(s, deputy, vote, ["P1"])
    with pytest.raises(votes.VoteError) as refused:
        votes.close(s, electorate["staff"], vote)
    assert refused.value.code == "no_quorum" and vote.status == "open"
    assert votes.summary(s, vote)["tally"] is None
    votes.cast(s, electorate["deputies"][2], vote, ["P2"])
    votes.close(s, electorate["staff"], vote)
    assert vote.status == "closed" and vote.electorate == 5


def test_a_candidate_below_the_majority_is_not_chosen(db_session, electorate, at):
    s = db_session
    vote = _vote(s, electorate["staff"])
    picks = [["P1", "P2"], ["P1", "P2"], ["P1", "P3"], ["P2", "P3"]]  # P1 3, P2 3, P3 2 of 5 deputies
    for deputy, choice in zip(electorate["deputies"], picks):
        votes.cast(s, deputy, vote, choice)
    votes.close(s, electorate["staff"], vote)
    tally = {t["code"]: (t["votes"], t["chosen"]) for t in votes.summary(s, vote)["tally"]}
    assert tally == {"P1": (3, True), "P2": (3, True), "P3": (2, False)}  # 2 of 5 is not more than half
    with pytest.raises(Exception) as refused:
        projects.create_from_vote(s, electorate["staff"], vote, "P3", "zhujian")
    assert refused.value.code == "not_chosen"


def test_a_county_may_count_the_majority_of_ballots(db_session, electorate, at):
    s = db_session
    from liaison.tenancy.models import County

    s.get(County, 1).settings = {"project_vote": {"majority": "ballots"}}
    vote = _vote(s, electorate["staff"])
    for deputy, choice in zip(electorate["deputies"], [["P1"], ["P1"], ["P3"]]):
        votes.cast(s, deputy, vote, choice)
    votes.close(s, electorate["staff"], vote)
    tally = {t["code"]: t["chosen"] for t in votes.summary(s, vote)["tally"]}
    assert tally == {"P1": True, "P2": False, "P3": False}  # 2 of 3 ballots; 1 of 3 is not


def test_milestones_turn_yellow_and_red_and_completion_is_rated(db_session, electorate, at):
    s = db_session
    staff = electorate["staff"]
    vote = _vote(s, staff)
    for deputy in electorate["deputies"]:
        votes.cast(s, deputy, vote, ["P1"])
    votes.close(s, staff, vote)
    project = projects.create_from_vote(s, staff, vote, "P1", "zhujian")
    assert project.year == 2027
    department = _principal(s, "department", "住建", department_id=project.lead_department_id)
    other = _principal(s, "department", "交通", department_id=project.lead_department_id + 1)
    assert access.get(s, department, project.public_id) == project
    with pytest.raises(access.NotFound):
        access.get(s, other, project.public_id)
    first = projects.add_milestone(s, department, project, "完成设计招标", START + timedelta(days=60))
    projects.add_milestone(s, department, project, "完成加装", START + timedelta(days=200))
    projects.start(s, department, project)
    s.commit()
    assert project.color == "green"
    assert project.next_action_at == first.due_at - timedelta(days=timers.DEFAULT_WARN_DAYS)

    def lights(moment):
        timers.run_due(s, now=moment)
        s.refresh(project)
        return project.color

    assert lights(first.due_at - timedelta(days=16)) == "green"
    assert lights(first.due_at - timedelta(days=timers.DEFAULT_WARN_DAYS)) == "yellow"
    assert lights(first.due_at) == "red"
    told = list(s.scalars(select(Notice.kind).where(Notice.department_id == project.lead_department_id,
                                                    Notice.kind == "project_color")))
    assert told == ["project_color", "project_color"]  # yellow once, red once
    assert lights(first.due_at + timedelta(hours=1)) == "red"
    at(first.due_at + timedelta(days=1))
    projects.report_progress(s, department, project, first.public_id, "招标完成")
    assert project.color == "green"  # the next milestone is months away

    with pytest.raises(lifecycle.IllegalTransition):
        projects.rate(s, electorate["deputies"][0], project, "satisfied")
    projects.complete(s, department, project, "全部完成")
    projects.rate(s, electorate["deputies"][0], project, "satisfied")
    resident = Resident(oa_openid="o_project_rater")
    s.add(resident)
    s.flush()
    projects.rate(s, Principal("resident", resident=resident), project, "unsatisfied")
    with pytest.raises(Exception) as twice:
        projects.rate(s, Principal("resident", resident=resident), project, "satisfied")
    assert twice.value.code == "already_rated"
    figures = projects.figures(s, staff, 2027)
    assert figures["total"] == 1 and figures["completed"] == 1 and figures["satisfaction_rate"] == 0.5
    assert s.scalar(select(ProjectCandidate.chosen).where(ProjectCandidate.code == "P1"))
