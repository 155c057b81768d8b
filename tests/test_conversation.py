"""What a resident's message is, told apart before anything is opened: each kind through the simulator
and the real webhook, asserting the kind the conversation took it for (stored on the inbound message)
and how many cases exist afterwards. Every reply is also scanned for internal terms (the simulator
fixture does it at the end of each test)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseFollower
from liaison.core import db
from liaison.core.types import Actor
from liaison.messaging.models import InboundMessage
from liaison.people.models import Resident
from liaison.project.models import ProjectProposal
from liaison.tenancy.models import County

CASE_NUMBER = re.compile(r"\d{4}-\d{6}")


def count_cases() -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(Case))


def last_intent(openid: str) -> tuple[str | None, str | None]:
    """(intent, stored text) of the resident's latest message."""
    with db.session_scope() as session:
        row = session.execute(
            select(InboundMessage.intent, InboundMessage.text).join(Resident)
            .where(Resident.oa_openid == openid).order_by(InboundMessage.id.desc()).limit(1)).first()
        return (row.intent, row.text) if row else (None, None)


def say(simulator, openid, text):
    reply = simulator.send_text(openid, text)
    assert reply.ok, reply.problems
    return reply.content


# --- replies written for residents ---------------------------------------------------------------

def test_a_new_matter_is_answered_with_number_handler_date_and_next_step(simulator):
    reply = say(simulator, "o_plain", "幸福里小区楼下烧烤店每天半夜还很吵，睡不着")
    assert last_intent("o_plain")[0] == "new_matter" and count_cases() == 1
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        assert case.routing["reasons"]  # the explanation stays on the case, for staff
        number, handler = case.number, cases.handler_sentence(case)
        deadline = cases.timers.local_day(case.deadline)
    assert number in reply and handler in reply and deadline in reply
    assert "补充" in reply and "我的诉求" in reply  # what they can do next
    for inside in ("置信度", "关键词", "→", "阈值", "分派依据", "环境保护"):
        assert inside not in reply


def test_a_department_case_names_the_department(simulator):
    reply = say(simulator, "o_dept", "公司拖欠我们工资三个月了，老板一直不给")
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        assert case.handler_kind == "department"
        assert case.department.name in reply


# --- small talk and too little: no case ------------------------------------------------------------

@pytest.mark.parametrize("text,kind", [
    ("你好", "greeting"), ("您好！", "greeting"), ("在吗？", "greeting"),
    ("谢谢", "thanks"), ("好的，谢谢", "thanks"), ("收到", "thanks"),
])
def test_greetings_and_thanks_are_answered_without_a_case(simulator, text, kind):
    reply = say(simulator, "o_talk", text)
    assert reply and last_intent("o_talk")[0] == kind
    assert count_cases() == 0


@pytest.mark.parametrize("text", ["1", "2026", "？？", "垃圾", "噪音", "路灯"])
def test_digits_and_single_words_ask_for_more_and_open_nothing(simulator, text):
    reply = say(simulator, "o_little", text)
    assert last_intent("o_little") == ("too_little", text)  # kept, and answered
    assert "在哪里" in reply and "什么时候" in reply
    assert count_cases() == 0


def test_a_stray_digit_after_a_rating_opens_nothing(simulator):
    say(simulator, "o_stray", "幸福里小区3号楼门口的路灯坏了好几天")
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        cases.accept(session, case, Actor("deputy", case.deputy_id))
        cases.close(session, case, Actor("deputy", case.deputy_id), "已更换灯泡")
    say(simulator, "o_stray", "1")
    assert last_intent("o_stray")[0] == "rating"
    reply = say(simulator, "o_stray", "1")
    assert last_intent("o_stray")[0] == "too_little" and "评价" in reply
    assert count_cases() == 1


# --- questions about their matters -----------------------------------------------------------------

def test_my_cases_question_lists_them_and_opens_nothing(simulator):
    first = say(simulator, "o_ask", "幸福里小区3号楼门口的路灯坏了好几天，晚上出行很不方便")
    number = CASE_NUMBER.search(first).group(0)
    reply = say(simulator, "o_ask", "我的诉求怎么样了")
    assert last_intent("o_ask")[0] == "status_question"
    assert number in reply and "…" in reply  # the text is cut with an ellipsis
    assert count_cases() == 1


def test_a_case_number_gets_its_status(simulator):
    first = say(simulator, "o_num", "东关街的下水道堵了，污水漫到路上")
    number = CASE_NUMBER.search(first).group(0)
    reply = say(simulator, "o_num", f"{number}办得怎么样了")
    assert last_intent("o_num")[0] == "case_status"
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        handler, deadline = cases.handler_sentence(case), cases.timers.local_day(case.deadline)
    assert number in reply and "待受理" in reply and handler in reply and deadline in reply
    assert count_cases() == 1


def test_someone_elses_case_number_tells_nothing(simulator):
    first = say(simulator, "o_owner", "青山村的自来水停了两天了，全村没水喝")
    number = CASE_NUMBER.search(first).group(0)
    reply = say(simulator, "o_stranger", number)
    assert last_intent("o_stranger")[0] == "case_status"
    assert "没有查到" in reply and "自来水" not in reply and "待受理" not in reply
    assert count_cases() == 1


# --- follow-ups and new matters within the join window ---------------------------------------------

def test_pieces_of_one_matter_join_it(simulator):
    first = say(simulator, "o_pieces", "路灯坏了")
    number = CASE_NUMBER.search(first).group(0)
    for piece in ("在幸福里小区3号楼门口", "好几天了"):
        assert number in say(simulator, "o_pieces", piece)
        assert last_intent("o_pieces")[0] == "follow_up"
    assert count_cases() == 1


def test_an_explicit_marker_opens_a_second_case_and_says_so(simulator):
    first = say(simulator, "o_two", "幸福里小区楼下烧烤店每天半夜还很吵，睡不着")
    noise = CASE_NUMBER.search(first).group(0)
    reply = say(simulator, "o_two", "另外反映一个问题：小区门口的垃圾站好几天没人清运，臭气熏天")
    assert last_intent("o_two")[0] == "new_matter"
    assert count_cases() == 2
    numbers = CASE_NUMBER.findall(reply)
    assert noise in numbers and len(set(numbers)) == 2 and "另一件事" in reply
    with db.session_scope() as session:
        assert "垃圾站" not in session.scalar(select(Case).where(Case.number == noise)).text


def test_a_different_topic_by_the_classifier_opens_a_second_case(simulator):
    first = say(simulator, "o_topic", "公司拖欠我们工资三个月了，老板一直不给")
    wages = CASE_NUMBER.search(first).group(0)
    reply = say(simulator, "o_topic", "幸福里小区楼下烧烤店每天半夜还很吵，睡不着")
    assert last_intent("o_topic")[0] == "new_matter" and count_cases() == 2
    assert wages in reply and "另一件事" in reply


def test_a_rating_is_a_rating(simulator):
    say(simulator, "o_rate", "幸福里小区3号楼门口的路灯坏了好几天")
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        cases.accept(session, case, Actor("deputy", case.deputy_id))
        cases.close(session, case, Actor("deputy", case.deputy_id), "已更换灯泡")
    reply = say(simulator, "o_rate", "满意")
    assert last_intent("o_rate")[0] == "rating" and "满意" in reply
    with db.session_scope() as session:
        assert session.scalar(select(Case)).status == Status.ARCHIVED
    assert count_cases() == 1


def test_a_follower_sees_status_not_the_text(simulator):
    first = say(simulator, "o_first", "幸福里小区3号楼门口的路灯坏了好几天，晚上很黑")
    number = CASE_NUMBER.search(first).group(0)
    say(simulator, "o_second", "幸福里小区3号楼门口路灯坏了好几天，晚上很黑")
    with db.session_scope() as session:
        followers = session.scalar(select(func.count()).select_from(CaseFollower))
    assert followers == 1 and count_cases() == 1  # joined as a duplicate (并单)
    reply = say(simulator, "o_second", number)
    assert last_intent("o_second")[0] == "case_status"
    assert number in reply and "晚上很黑" not in reply


def test_meet_wednesday_shows_the_residents_station(simulator):
    simulator.send_event("o_wed", "SCAN", event_key="grid:G001")
    reply = simulator.send_event("o_wed", "CLICK", event_key="MEET_WEDNESDAY").content
    with db.session_scope() as session:
        station = session.scalar(select(Resident).where(Resident.oa_openid == "o_wed")).grid.station
        assert station.name in reply and "周三" in reply
    assert count_cases() == 0


def test_each_decision_is_logged_with_its_reason_and_no_personal_data(simulator, caplog):
    caplog.set_level("INFO", logger="liaison.conversation.service")
    say(simulator, "o_logged_resident", "你好")
    say(simulator, "o_logged_resident", "幸福里小区3号楼门口的路灯坏了好几天")
    decisions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("message from resident")]
    assert len(decisions) == 2
    assert "greeting" in decisions[0] and "new_matter" in decisions[1]
    for line in decisions:
        assert "o_logged_resident" not in line and "路灯" not in line


def test_a_piece_after_the_case_was_accepted_still_joins_it(simulator):
    first = say(simulator, "o_acc", "幸福里小区3号楼门口的路灯坏了")
    number = CASE_NUMBER.search(first).group(0)
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        cases.accept(session, case, Actor("deputy", case.deputy_id))
    assert number in say(simulator, "o_acc", "好几天了")
    assert last_intent("o_acc")[0] == "follow_up" and count_cases() == 1


def test_a_neighbour_with_the_same_problem_follows_a_department_case(simulator):
    """并单 candidates by text similarity within the grid, also when the first case went to a
    department: the second resident follows it instead of opening a case."""
    with db.session_scope() as session:  # the county sends confident matters straight to departments
        county = session.get(County, 1)
        county.settings = {**(county.settings or {}), "case_flow": "direct_dispatch"}
    say(simulator, "o_bus1", "幸福里小区门口的公交站牌被车撞倒了，一直没人修")
    with db.session_scope() as session:
        first = session.scalar(select(Case))
        assert first.handler_kind == "department"
        number, department = first.number, first.department.name
    reply = say(simulator, "o_bus2", "幸福里小区门口公交站牌被撞倒了好几天，一直没人修")
    assert number in reply and department in reply and "关注" in reply
    assert last_intent("o_bus2")[0] == "new_matter" and count_cases() == 1
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(CaseFollower)) == 1


# --- 民生实事 征集 in the chat ---------------------------------------------------------------------

@pytest.mark.parametrize("text, title", [
    ("建议：幸福里社区建一个老年食堂，方便独居老人吃饭", "幸福里社区建一个老年食堂，方便独居老人吃饭"),
    ("我想提个民生实事建议：在青山村修一座过河的便民桥", "在青山村修一座过河的便民桥"),
])
def test_a_livelihood_proposal_in_the_chat_is_a_project_proposal_not_a_case(simulator, text, title):
    reply = say(simulator, "o_proposer", text)
    assert last_intent("o_proposer")[0] == "project_proposal" and count_cases() == 0
    with db.session_scope() as session:
        proposal = session.scalar(select(ProjectProposal))
        resident = session.scalar(select(Resident).where(Resident.oa_openid == "o_proposer"))
        assert (proposal.title, proposal.source_kind, proposal.resident_id, proposal.status) == (
            title, "resident", resident.id, "submitted")
    assert "民生实事建议" in reply and title[:10] in reply and "票决" in reply
    assert "编号" not in reply  # not a case


def test_a_livelihood_proposal_without_content_says_how_and_records_nothing(simulator):
    reply = say(simulator, "o_proposer_empty", "我想提个民生实事建议")
    assert last_intent("o_proposer_empty")[0] == "project_proposal" and count_cases() == 0
    assert "建议：" in reply
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ProjectProposal)) == 0
