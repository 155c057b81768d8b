"""代表建议 on PostgreSQL: from five residents' cases to a 问题清单 entry, a deputy's draft, 三审, 交办 to a
lead and a co-handling department, a B answer, 双满意 测评 with 二次办理, 销号 and the residents told
once each; the legal reply limit escalates; a 共性 suggestion stays on next year's 台账."""
from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from liaison.case import service as cases
from liaison.case.models import Notice
from liaison.core import clock
from liaison.core.workcalendar import CHINA_TZ
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Account, Department, Deputy, Resident, Station
from liaison.people.service import Principal
from liaison.suggestion import access, ledger, lifecycle, timers
from liaison.suggestion import service as suggestions
from liaison.suggestion.lifecycle import Status
from liaison.suggestion.models import SuggestionEvent
from liaison.tenancy.models import County

START = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)


@pytest.fixture
def at():
    """The domain clock, moved by the test: `at(moment)`."""
    def move(moment):
        clock.set_clock(lambda: moment)
    move(START)
    yield move
    clock.set_clock(None)


def _account(session, role, name, **links) -> Principal:
    account = Account(role=role, name=name, **links)
    session.add(account)
    session.flush()
    return Principal(role, account=account)


@pytest.fixture
def people(db_session):
    s = db_session
    deputy = {d.code: d for d in s.scalars(select(Deputy))}
    department = {d.code: d for d in s.scalars(select(Department))}
    station = {st.code: st for st in s.scalars(select(Station))}
    return {
        "county": _account(s, "staff", "县工委"),
        "station": _account(s, "staff", "城关站", station_id=station["S001"].id),
        "other_station": _account(s, "staff", "青山站", station_id=station["S002"].id),
        "lead": _account(s, "deputy", "张建华", deputy_id=deputy["D001"].id),
        "cosigner": _account(s, "deputy", "李秀英", deputy_id=deputy["D002"].id),
        "outsider": _account(s, "deputy", "王德明", deputy_id=deputy["D003"].id),
        "zhujian": _account(s, "department", "住建", department_id=department["zhujian"].id),
        "jiaotong": _account(s, "department", "交通", department_id=department["jiaotong"].id),
        "jiaoyu": _account(s, "department", "教育", department_id=department["jiaoyu"].id),
    }


def _five_cases(session):
    texts = ["幸福里小区3号楼门口的路灯坏了", "幸福里小区路灯不亮", "幸福里小区南门路灯坏了好几天",
             "幸福里小区的路灯晚上不亮", "幸福里小区5号楼路灯坏了"]
    residents, numbers = [], []
    for i, text in enumerate(texts):
        resident = Resident(oa_openid=f"o_sugg_{i}")
        session.add(resident)
        session.flush()
        residents.append(resident)
        numbers.append(cases.open_case(session, resident, text, now=START - timedelta(days=20 - i)).number)
    # The second resident also follows the first case (并单): still told once.
    cases.follow_case(session, cases.case_by_number(session, numbers[0]), residents[1], "我也遇到了")
    session.flush()
    return residents, numbers


def _events(session, suggestion):
    return [(e.action, e.detail.get("step")) for e in session.scalars(
        select(SuggestionEvent).where(SuggestionEvent.suggestion_id == suggestion.id).order_by(SuggestionEvent.id))]


def _notices(session, **owner):
    column, value = next(iter(owner.items()))
    return list(session.scalars(select(Notice.kind).where(getattr(Notice, column) == value)))


def test_a_suggestion_from_five_cases_to_double_satisfaction(db_session, people, at):
    s = db_session
    residents, numbers = _five_cases(s)

    found = suggestions.concentrations(s, people["station"], START - timedelta(days=30), START)
    group = next(g for g in found if g["kind"] == "category_grid")
    assert set(numbers) <= set(group["case_numbers"]) and group["grid"] == "幸福里社区第一网格"
    # Another station's staff do not see these cases at all.
    assert suggestions.concentrations(s, people["other_station"], START - timedelta(days=30), START) == []

    entry = suggestions.create_entry(s, people["station"], "幸福里小区路灯长期损坏", group["case_numbers"])
    with pytest.raises(access.NotFound):
        access.get_entry(s, people["other_station"], entry.public_id)
    suggestion = suggestions.draft(s, people["lead"], title="关于幸福里小区路灯改造的建议",
                                   problems="小区路灯老化，多处不亮，居民反映集中。",
                                   proposals="请住建局统一更换路灯并建立巡检制度。", entry=entry,
                                   cosigner_codes=["D002"])
    assert suggestion.status == Status.DRAFT and len(suggestions.cases_of(s, suggestion)) == 5
    assert access.get(s, people["cosigner"], suggestion.public_id) == suggestion
    with pytest.raises(access.NotFound):
        access.get(s, people["outsider"], suggestion.public_id)
    with pytest.raises(access.NotFound):  # not handed to any department yet
        access.get(s, people["zhujian"], suggestion.public_id)
    with pytest.raises(access.Forbidden):
        suggestions.submit(s, people["cosigner"], suggestion)

    # 三审: the station's staff pass the first step; the county's the other two.
    suggestions.submit(s, people["lead"], suggestion)
    suggestions.review(s, people["station"], suggestion, "pass", "情况属实")
    with pytest.raises(access.Forbidden):
        suggestions.review(s, people["station"], suggestion, "pass")
    suggestions.review(s, people["county"], suggestion, "pass", "同意")
    assert suggestion.status == Status.REVIEWING
    suggestions.review(s, people["county"], suggestion, "pass", "主任会议审定")
    assert suggestion.status == Status.APPROVED
    reviews = [step for action, step in _events(s, suggestion) if action in ("pass_step", "approve")]
    assert reviews == ["station", "committee", "directors"]

    # 交办: lead and co-handler each told (a notice and a push to their accounts).
    suggestions.assign(s, people["county"], suggestion, lead_code="zhujian", co_codes=["jiaotong"])
    assert suggestion.status == Status.ASSIGNED
    assert suggestion.deadline == datetime(2026, 6, 2, 10, 0, tzinfo=CHINA_TZ)  # three months
    zhujian, jiaotong = people["zhujian"].account, people["jiaotong"].account
    assert _notices(s, department_id=zhujian.department_id) == ["suggestion_assigned"]
    assert _notices(s, department_id=jiaotong.department_id) == ["suggestion_assigned"]
    pushes = s.scalars(select(OutboxMessage.payload).where(OutboxMessage.kind == "account_push")).all()
    assert {p["account_id"] for p in pushes} >= {zhujian.id, jiaotong.id}
    assert access.get(s, people["jiaotong"], suggestion.public_id) == suggestion
    with pytest.raises(access.NotFound):
        access.get(s, people["jiaoyu"], suggestion.public_id)
    suggestions.supervise(s, people["county"], suggestion, "letter", "请于月底前拿出改造方案")
    assert suggestion.key_supervision

    # Only the lead department answers.
    with pytest.raises(access.Forbidden):
        suggestions.answer(s, people["jiaotong"], suggestion, "A", "已解决")
    at(START + timedelta(days=40))
    suggestions.answer(s, people["zhujian"], suggestion, "B", "已列入2026年老旧小区改造计划，年内完成。")
    assert suggestion.status == Status.ANSWERED and suggestion.next_action_at is None

    # The deputy is satisfied, the committee is not: 二次办理 with a new deadline.
    suggestions.rate(s, people["lead"], suggestion, "satisfied")
    assert suggestion.status == Status.ANSWERED
    with pytest.raises(Exception) as twice:
        suggestions.rate(s, people["lead"], suggestion, "unsatisfied")
    assert getattr(twice.value, "code", None) == "already_rated"
    suggestions.rate(s, people["county"], suggestion, "unsatisfied", "进度不明确")
    assert suggestion.status == Status.SECOND_ROUND and suggestion.round == 2
    assert suggestion.deadline == timers.add_months(START + timedelta(days=40), 1)
    assert "suggestion_second_round" in _notices(s, department_id=zhujian.department_id)
    told = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "resident_text",
                    OutboxMessage.dedup_key.like("suggestion:%")))
    assert told == 0  # nobody is told before it is closed

    at(START + timedelta(days=55))
    suggestions.answer(s, people["zhujian"], suggestion, "B", "改造方案已确定，6月开工，9月底完成。")
    suggestions.rate(s, people["county"], suggestion, "satisfied")
    suggestions.rate(s, people["lead"], suggestion, "basically_satisfied")
    assert suggestion.status == Status.ARCHIVED and suggestion.closed_at is not None

    # Each linked resident is told once (the follower of case 1 also filed case 2: one message).
    rows = s.execute(select(OutboxMessage.resident_id, OutboxMessage.payload).where(
        OutboxMessage.kind == "resident_text", OutboxMessage.dedup_key.like(f"suggestion:{suggestion.id}:%"))).all()
    assert sorted(r for r, _ in rows) == sorted(r.id for r in residents)
    assert all("关于幸福里小区路灯改造的建议" in p["text"] and "张建华" in p["text"] for _, p in rows)
    assert all("列入计划逐步解决" in p["text"] for _, p in rows)

    # B stays on next year's 台账 until its plan is carried out.
    next_year = ledger.ledger(s, people["county"], 2027)
    assert suggestion in next_year.carried
    this_year = ledger.ledger(s, people["county"], 2026)
    figures = ledger.figures(s, this_year)
    assert figures["total"] == 1 and figures["second_round"] == 1 and figures["closure_rate"] == 1.0
    assert figures["double_satisfaction_rate"] == 1.0
    suggestions.complete_plan(s, people["zhujian"], suggestion, "路灯已全部更换")
    assert suggestion not in ledger.ledger(s, people["county"], 2027).carried


def _assigned(s, people, *, nature="individual", title="关于青山村道路硬化的建议"):
    numbers = []
    resident = Resident(oa_openid=f"o_sugg_{title}")
    s.add(resident)
    s.flush()
    numbers.append(cases.open_case(s, resident, "幸福里小区路面坑洼", now=START).number)
    suggestion = suggestions.draft(s, people["lead"], title=title, problems="道路泥泞", proposals="硬化",
                                   case_refs=numbers)
    suggestions.submit(s, people["lead"], suggestion)
    for _ in range(3):
        suggestions.review(s, people["county"], suggestion, "pass")
    suggestions.assign(s, people["county"], suggestion, lead_code="jiaotong", nature=nature, now=START)
    return suggestion


def test_a_reply_past_the_limit_is_reminded_then_escalated(db_session, people, at):
    s = db_session
    suggestion = _assigned(s, people)
    s.commit()
    rules = timers.policy(s)
    assert suggestion.next_action_at == timers.reminder_time(suggestion, rules)

    timers.run_due(s, now=suggestion.deadline - timedelta(days=10))
    s.refresh(suggestion)
    assert [a for a, _ in _events(s, suggestion)][-1] == "remind"
    department_id = people["jiaotong"].account.department_id
    assert _notices(s, department_id=department_id).count("suggestion_reminder") == 1

    timers.run_due(s, now=suggestion.deadline + timedelta(minutes=1))
    s.refresh(suggestion)
    assert suggestion.escalation_level == 1
    assert "suggestion_escalate" in _notices(s, department_id=department_id)
    assert "suggestion_escalate" in _notices(s, account_id=people["county"].account.id)
    assert timers.is_overdue(suggestion, suggestion.deadline + timedelta(minutes=1))
    # A second sweep at the same moment tells nobody again.
    before = s.scalar(select(func.count()).select_from(Notice))
    timers.run_due(s, now=suggestion.deadline + timedelta(minutes=1))
    assert s.scalar(select(func.count()).select_from(Notice)) == before

    later = timers.escalation_time(suggestion, 2, rules)
    timers.run_due(s, now=later)
    s.refresh(suggestion)
    assert suggestion.escalation_level == 2
    assert suggestion.next_action_at == timers.escalation_time(suggestion, 3, rules)
    lead_deputy_id = people["lead"].account.deputy_id
    assert "suggestion_escalate" not in _notices(s, deputy_id=lead_deputy_id)

    # Level 3 (常委会领导约谈): county staff, the departments and the proposing deputies, once.
    last = timers.escalation_time(suggestion, 3, rules)
    assert last > later
    timers.run_due(s, now=last - timedelta(minutes=1))
    s.refresh(suggestion)
    assert suggestion.escalation_level == 2
    timers.run_due(s, now=last)
    timers.run_due(s, now=last + timedelta(hours=1))
    s.refresh(suggestion)
    assert suggestion.escalation_level == 3 and suggestion.next_action_at is None
    assert [a for a, _ in _events(s, suggestion)].count("escalate") == 3
    assert _notices(s, deputy_id=lead_deputy_id).count("suggestion_escalate") == 1
    assert _notices(s, department_id=department_id).count("suggestion_escalate") == 3
    at(later)
    assert ledger.figures(s, ledger.ledger(s, people["county"], 2026))["overdue"] == 1


def test_an_extension_stops_at_six_months(db_session, people, at):
    s = db_session
    suggestion = _assigned(s, people)
    suggestions.extend(s, people["county"], suggestion, 2, "需协调资金")
    assert suggestion.deadline == timers.add_months(START, 5)
    with pytest.raises(Exception) as refused:
        suggestions.extend(s, people["county"], suggestion, 2, "再延")
    assert refused.value.code == "beyond_legal_limit"
    with pytest.raises(access.Forbidden):
        suggestions.extend(s, people["zhujian"], suggestion, 1, "部门自行延期")


def test_a_common_suggestion_stays_on_next_years_ledger(db_session, people, at):
    s = db_session
    suggestion = _assigned(s, people, nature="common", title="关于全县农村道路养护的建议")
    individual = _assigned(s, people, title="关于幸福里小区一处坑洼的建议")
    for item in (suggestion, individual):
        suggestions.answer(s, people["jiaotong"], item, "A", "已修复")
        suggestions.rate(s, people["lead"], item, "satisfied")
        suggestions.rate(s, people["county"], item, "satisfied")
        assert item.status == Status.ARCHIVED
    carried = ledger.ledger(s, people["county"], 2027).carried
    assert suggestion in carried and individual not in carried
    content = ledger.export_xlsx(s, ledger.ledger(s, people["county"], 2027))
    sheet = load_workbook(io.BytesIO(content)).active
    values = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
    assert list(values[1][:3]) == ["序号", "编号", "标题"]
    assert values[2][2] == "关于全县农村道路养护的建议" and values[2][-1] == "是"


def test_a_county_may_start_a_second_round_on_basically_satisfied(db_session, people, at):
    s = db_session
    county = s.get(County, 1)
    county.settings = {"suggestion": {"second_round_on_basic": True}}
    s.flush()
    suggestion = _assigned(s, people)
    suggestions.answer(s, people["jiaotong"], suggestion, "A", "已修复")
    suggestions.rate(s, people["lead"], suggestion, "basically_satisfied")
    suggestions.rate(s, people["county"], suggestion, "satisfied")
    assert suggestion.status == Status.SECOND_ROUND


def test_illegal_steps_change_nothing(db_session, people, at):
    s = db_session
    suggestion = _assigned(s, people)
    with pytest.raises(lifecycle.IllegalTransition):
        suggestions.rate(s, people["lead"], suggestion, "satisfied")  # not answered yet
    with pytest.raises(lifecycle.IllegalTransition):
        suggestions.review(s, people["county"], suggestion, "pass")
    assert suggestion.status == Status.ASSIGNED


def test_staff_mark_an_active_suggestion_common_and_it_is_carried(db_session, people, at):
    """set_nature once raised a TypeError (its detail named `before`, `_event`'s own parameter)."""
    s = db_session
    suggestion = _assigned(s, people, title="关于全县路灯统一管护的建议")
    entry = suggestions.set_nature(s, people["county"], suggestion, "common")
    assert suggestion.nature == "common"
    assert entry.from_status == entry.to_status == Status.ASSIGNED
    assert entry.detail["previous"] == "individual" and entry.detail["nature"] == "common"
    with pytest.raises(access.Forbidden):
        suggestions.set_nature(s, people["station"], suggestion, "individual")
    with pytest.raises(suggestions.DomainError):
        suggestions.set_nature(s, people["county"], suggestion, "neither")
    assert suggestion.nature == "common"
    suggestions.answer(s, people["jiaotong"], suggestion, "A", "已修复")
    suggestions.rate(s, people["lead"], suggestion, "satisfied")
    suggestions.rate(s, people["county"], suggestion, "satisfied")
    assert suggestion in ledger.ledger(s, people["county"], 2027).carried
    draft = suggestions.draft(s, people["lead"], title="草稿", problems="问题", proposals="建议")
    with pytest.raises(lifecycle.IllegalTransition):
        suggestions.set_nature(s, people["county"], draft, "common")
    assert draft.nature == "individual"
