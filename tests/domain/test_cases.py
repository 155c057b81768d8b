"""Case services on PostgreSQL: transitions write their timeline and side effects together, illegal
ones change nothing, and the less travelled paths (merge, reject, withdraw, recategorise, follow)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from liaison.case import service as cases
from liaison.case.lifecycle import IllegalTransition, Status
from liaison.case.models import Case, CaseEvent, CaseFollower
from liaison.core import db
from liaison.core.types import Actor
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident


@pytest.fixture
def resident(demo_db):
    with db.session_scope() as session:
        person = Resident(oa_openid="o_cases_1")
        session.add(person)
        session.flush()
        return person.id


def open_case(resident_id, text="幸福里小区路灯坏了") -> str:
    with db.session_scope() as session:
        return cases.open_case(session, session.get(Resident, resident_id), text).number


def snapshot(number):
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        events = session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case.id))
        rows = session.scalar(select(func.count()).select_from(OutboxMessage))
        return case.status, case.round, events, rows


def test_an_illegal_transition_changes_nothing(resident):
    number = open_case(resident)
    before = snapshot(number)
    with pytest.raises(IllegalTransition):
        with db.session_scope() as session:
            cases.close(session, cases.case_by_number(session, number), Actor("deputy", 1), "办完了")
    with pytest.raises(IllegalTransition):
        with db.session_scope() as session:
            case = cases.case_by_number(session, number)
            cases.rate(session, case, session.get(Resident, resident), "satisfied", channel="chat")
    assert snapshot(number) == before


def test_reply_writes_timeline_and_outbox_in_one_transaction(resident):
    number = open_case(resident)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, Actor("deputy", 1))
    with pytest.raises(RuntimeError):
        with db.session_scope() as session:
            case = cases.case_by_number(session, number)
            cases.reply(session, case, Actor("deputy", 1), "明天修")
            raise RuntimeError("the request failed after the reply")
    assert snapshot(number)[0] == Status.ACCEPTED and snapshot(number)[3] == 0  # neither happened
    with db.session_scope() as session:
        cases.reply(session, cases.case_by_number(session, number), Actor("deputy", 1), "明天修")
    status, _round, _events, rows = snapshot(number)
    assert status == Status.REPLIED and rows == 1


def test_return_and_reject_need_reasons(resident):
    number = open_case(resident)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        with pytest.raises(IllegalTransition):
            cases.reject(session, case, Actor("staff"), " ")
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.reject(session, case, Actor("staff"), "属于司法程序，请向法院反映")
    assert snapshot(number)[0] == Status.REJECTED


def test_recategorising_keeps_the_handler_and_status(resident):
    number = open_case(resident)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, Actor("deputy", 1))
        cases.recategorize(session, case, Actor("deputy", 1), "交通运输", "道路照明")
        assert (case.status, case.category, case.deputy_id) == (Status.ACCEPTED, "交通运输", 1)


def test_merge_makes_the_resident_a_follower_who_is_asked_to_rate(resident):
    first = open_case(resident, "东关街的下水道堵了")
    with db.session_scope() as session:
        other = Resident(oa_openid="o_cases_2")
        session.add(other)
        session.flush()
        second = cases.open_case(session, other, "东关街排水不畅，污水外溢").number
        cases.merge(session, cases.case_by_number(session, second), cases.case_by_number(session, first),
                    Actor("staff"), "同一处下水道")
        other_id = other.id
    with db.session_scope() as session:
        target = cases.case_by_number(session, first)
        assert session.get(CaseFollower, (target.id, other_id)) is not None
        assert cases.case_by_number(session, second).status == Status.MERGED
        cases.accept(session, target, Actor("deputy", 2))
        cases.close(session, target, Actor("deputy", 2), "已疏通")
    with db.session_scope() as session:
        prompts = session.scalars(select(OutboxMessage.resident_id).where(OutboxMessage.kind == "rating_prompt"))
        assert sorted(prompts) == sorted([resident, other_id])
        # A follower's rating is recorded but only the case's own resident decides its outcome.
        target = cases.case_by_number(session, first)
        cases.rate(session, target, session.get(Resident, other_id), "unsatisfied", channel="chat")
        assert target.status == Status.CLOSED


def test_withdraw_only_by_the_owner(resident):
    number = open_case(resident)
    with db.session_scope() as session:
        stranger = Resident(oa_openid="o_cases_stranger")
        session.add(stranger)
        session.flush()
        with pytest.raises(cases.NotFound):
            cases.withdraw(session, cases.case_by_number(session, number), stranger)
    with db.session_scope() as session:
        cases.withdraw(session, cases.case_by_number(session, number), session.get(Resident, resident))
    assert snapshot(number)[0] == Status.WITHDRAWN


def test_case_numbers_are_unique_under_concurrency(resident):
    from concurrent.futures import ThreadPoolExecutor

    def make(i):
        with db.session_scope() as session:
            person = Resident(oa_openid=f"o_num_{i}")
            session.add(person)
            session.flush()
            return cases.open_case(session, person, f"第{i}件：青山村道路破损").number

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(make, range(40)))
    assert len(set(numbers)) == 40 and all(n.startswith(numbers[0][:5]) for n in numbers)
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 40


def test_whoever_the_work_lands_on_is_told_at_once(resident):
    """代表接单 and 部门办单 start with a notice: on assignment, 派单, 退单 and 改派 to someone else —
    in the mini-program and as a push to each of the handler's accounts; a category-only 改派 tells nobody."""
    from liaison.case.models import Notice
    from liaison.people.models import Account, Department

    number = open_case(resident)  # 幸福里: the grid's lead deputy
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        deputy_id = case.deputy_id
        department = session.scalar(select(Department).order_by(Department.id).limit(1))
        session.add_all([Account(role="deputy", name="代表", deputy_id=deputy_id, active=True),
                         Account(role="department", name="承办人", department_id=department.id, active=True),
                         Account(role="staff", name="工委", active=True)])

    def notices():
        with db.session_scope() as session:
            case = cases.case_by_number(session, number)
            rows = session.scalars(select(Notice).where(Notice.case_id == case.id, Notice.kind == "new_work")
                                   .order_by(Notice.id)).all()
            pushes = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "account_push", OutboxMessage.case_id == case.id))
            return [(n.deputy_id, n.department_id, n.account_id, n.text) for n in rows], pushes

    (first,), _ = notices()  # told before the deputy had an account: in the mini-program only
    assert first[0] == deputy_id and first[3].startswith(f"新诉求 {number} 待受理")
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.dispatch(session, case, Actor("deputy", deputy_id), session.get(Department, department.id))
    rows, pushes = notices()
    assert rows[-1][1] == department.id and rows[-1][3].startswith(f"派单 {number}") and pushes == 1
    with db.session_scope() as session:
        cases.return_case(session, cases.case_by_number(session, number), Actor("department", department.id),
                          "不属于本单位职责")
    rows, pushes = notices()
    assert rows[-1][0] == deputy_id and "不属于本单位职责" in rows[-1][3] and pushes == 2
    with db.session_scope() as session:
        cases.reassign(session, cases.case_by_number(session, number), Actor("staff"), category="城乡建设")
    assert notices() == (rows, 2)

    # No grid and no department: station and county staff are told (the office assigns it).
    with db.session_scope() as session:
        orphan = cases.open_case(session, session.get(Resident, resident), "门口的路灯坏了好几天了")
        assert orphan.handler_kind == "office"
        staff_notices = session.scalars(select(Notice).where(Notice.case_id == orphan.id)).all()
        assert [n.kind for n in staff_notices] == ["new_work"] and staff_notices[0].account_id is not None
