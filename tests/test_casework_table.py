"""The lifecycle table is the one source of what may happen to a case: for every mini-program action
in every status, with every kind of handler, the service accepts exactly what `access.allowed_actions`
offers (walked for a staff scope allowed every action by role, so only the table decides)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from liaison.case import access
from liaison.case import handling as casework
from liaison.case import service as cases
from liaison.case.lifecycle import IllegalTransition, Status
from liaison.case.models import Case
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.intake import service as intake
from liaison.people import service as accounts
from liaison.people.models import Account, Department, Deputy, Resident

ALL_STATUSES = [v for k, v in vars(Status).items() if not k.startswith("_")]
STAFF_ACTOR = Actor("staff", None)

# How each mini-program action is done through the services (w: the walk's fixed rows).
CALLS = {
    "accept": lambda s, c, w: cases.accept(s, c, STAFF_ACTOR),
    "reply": lambda s, c, w: cases.reply(s, c, STAFF_ACTOR, "已安排维修"),
    "close": lambda s, c, w: cases.close(s, c, STAFF_ACTOR, "已修好"),
    "dispatch": lambda s, c, w: cases.dispatch(s, c, STAFF_ACTOR, w["department"]),
    "return": lambda s, c, w: cases.return_case(s, c, STAFF_ACTOR, "职能不符"),
    "reassign": lambda s, c, w: cases.reassign(s, c, STAFF_ACTOR, deputy=w["deputy"], reason="改派"),
    "withdraw": lambda s, c, w: cases.withdraw(s, c, w["resident"]),
    "rate": lambda s, c, w: cases.rate(s, c, w["resident"], "satisfied", channel="miniprogram"),
    "add_information": lambda s, c, w: casework.add_information(s, c, w["resident"], "3号楼东门"),
    "request_information": lambda s, c, w: casework.request_information(s, c, STAFF_ACTOR, "几号楼？"),
    "urge": lambda s, c, w: casework.urge(s, c, STAFF_ACTOR, "请加快"),
    "correct_category": lambda s, c, w: casework.correct_category(s, c, STAFF_ACTOR, "交通运输"),
    "request_extension": lambda s, c, w: casework.request_extension(s, c, STAFF_ACTOR, w["account_id"],
                                                                    3, "需要采购"),
    "merge": lambda s, c, w: cases.merge(s, c, w["target"], STAFF_ACTOR, "同一处路灯"),
    "reject": lambda s, c, w: cases.reject(s, c, STAFF_ACTOR, "不属于人大代表联络事项"),
    "conclude": lambda s, c, w: cases.conclude(s, c, STAFF_ACTOR, "已依法依规答复，作终结处理"),
    "return_visit": lambda s, c, w: intake.record_return_visit(
        s, c, s.get(Account, w["account_id"]), method="phone", visitor="陈主任", visited_at=utcnow(),
        outcome="群众表示问题已解决", rating="satisfied"),
}


@pytest.fixture
def every_role_for_staff(monkeypatch):
    monkeypatch.setattr(access, "ACTION_ROLES", {
        action: roles | {accounts.STAFF} for action, roles in access.ACTION_ROLES.items()})


def test_every_action_is_walked():
    assert set(CALLS) == set(access.ACTION_ROLES)


@pytest.mark.parametrize("handler_kind", ["department", "deputy", "office"])
def test_the_api_accepts_exactly_what_the_mini_program_offers(settings, demo_county, every_role_for_staff,
                                                              handler_kind):
    with db.session_scope() as session:
        person = Resident(oa_openid="o_walk_resident")
        session.add(person)
        session.flush()
        subject = cases.open_case(session, person, "幸福里小区3号楼门口的路灯坏了").id
        target = cases.open_case(session, person, "东关街的下水道堵了").id
        account_id = accounts.create_first_staff(session, "工委 陈主任")[0].id
    disagreements = []
    for status in ALL_STATUSES:
        with db.session_scope() as session:
            world = {"resident": session.scalar(select(Resident).where(Resident.oa_openid == "o_walk_resident")),
                     "department": session.scalar(select(Department).where(Department.code == "jiaotong")),
                     "deputy": session.scalar(select(Deputy).where(Deputy.code == "D002")),
                     "target": session.get(Case, target), "account_id": account_id}
            case = session.get(Case, subject)
            case.status, case.handler_kind = status, handler_kind
            case.department_id = (session.scalar(select(Department.id).where(Department.code == "zhujian"))
                                  if handler_kind == "department" else None)
            case.deputy_id = 1 if handler_kind == "deputy" else None
            case.closed_at = utcnow() if status == Status.CLOSED else None
            session.flush()
            scope = access.Scope(accounts.Principal(accounts.STAFF), None)
            offered = set(access.allowed_actions(scope, case))
            for action, call in CALLS.items():
                savepoint = session.begin_nested()
                try:
                    call(session, case, world)
                    session.flush()
                    accepted = True
                except IllegalTransition:
                    accepted = False
                finally:
                    savepoint.rollback()
                if accepted != (action in offered):
                    disagreements.append((action, status, handler_kind,
                                          "service accepts" if accepted else "service refuses",
                                          "offered" if action in offered else "not offered"))
            session.rollback()
    assert disagreements == []


def test_correct_category_follows_the_table_including_replied(settings, demo_county):
    """改类 on a case still being worked, even after a reply; never once it is closed."""
    with db.session_scope() as session:
        person = Resident(oa_openid="o_walk_replied")
        session.add(person)
        session.flush()
        case = cases.open_case(session, person, "幸福里小区3号楼门口的路灯坏了")
        cases.accept(session, case, Actor("deputy", 1))
        cases.reply(session, case, Actor("deputy", 1), "明天修")
        scope = access.Scope(accounts.Principal(accounts.STAFF), None)
        assert "correct_category" in access.allowed_actions(scope, case)
        casework.correct_category(session, case, Actor("staff"), "交通运输")
        cases.close(session, case, Actor("deputy", 1), "已修好")
        assert "correct_category" not in access.allowed_actions(scope, case)
        with pytest.raises(IllegalTransition):
            casework.correct_category(session, case, Actor("staff"), "城乡建设")
