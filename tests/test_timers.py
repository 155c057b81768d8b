"""Deadlines, reminders, escalation and the rating loop, moving time forward on the 2026 calendar
(国庆 1–7 October off, Saturday 10 October a make-up working day) — no sleeping.

Messages are delivered by the in-process queue against the fake WeChat API; every message sent is
checked there: which channel, to whom, once.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from sqlalchemy import select

from jobs import queues
from liaison.case import service as cases
from liaison.case import sweep as timer_sweep
from liaison.case import timers
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseEvent, Notice
from liaison.core import clock as domain_clock
from liaison.core import db
from liaison.core.workcalendar import CHINA_TZ
from liaison.people.models import Account, Department, NotificationConsent

CUSTOM = "/cgi-bin/message/custom/send"
BIZSEND = "/cgi-bin/message/subscribe/bizsend"
MINI = "/cgi-bin/message/subscribe/send"
TEMPLATE = "/cgi-bin/message/template/send"


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self):
        return self.now

    def to(self, *args) -> datetime:
        self.now = datetime(*args, tzinfo=CHINA_TZ)
        return self.now


@pytest.fixture
def clock(app, settings):
    """A frozen domain clock, and jobs run on the in-process queue (it shares the clock)."""
    queues.install(dataclasses.replace(settings, redis_url=None), None)
    clock = Clock(datetime(2026, 9, 30, 10, 0, tzinfo=CHINA_TZ))
    domain_clock.set_clock(clock)
    yield clock
    domain_clock.set_clock(None)


def settle():
    """Let the in-process queue deliver everything enqueued so far.

    Call it before moving the clock or before the resident writes again: a job still waiting would
    otherwise run against a later clock or a window the resident's message just opened."""
    queues.current_queue().join()


def sweep(clock, *args):
    clock.to(*args)
    with db.session_scope() as session:
        timer_sweep.run_due(session)
    settle()


def sends(fake, path):
    return [c for c in fake.calls(path) if c.get("errcode") in (0, None) and c["json"]]


def local_date(moment):
    return moment.astimezone(CHINA_TZ).date().isoformat()


def make_accounts():
    """The grid deputy (who accepted the 'todo' subscription once) and station staff."""
    with db.session_scope() as session:
        deputy = Account(role="deputy", name="张建华", deputy_id=1, mp_openid="o_mp_deputy_zhang", active=True)
        staff = Account(role="staff", name="联络站 小周", station_id=1, mp_openid="o_mp_staff_zhou", active=True)
        session.add_all([deputy, staff])
        session.flush()
        session.add(NotificationConsent(account_id=deputy.id, template_id="MP_HANDLER_TODO",
                                        last_result="accept", credits=3, accepted_total=3))
        return deputy.id, staff.id


def test_a_case_across_national_day(clock, fake_wechat, simulator):
    deputy_account, staff_account = make_accounts()
    openid = "o_timer_resident"
    # The resident accepts the official account's long-term 订阅通知 (case progress) once.
    simulator.send_subscribe_msg_event(openid, [("OA_CASE_PROGRESS", "accept")])
    reply = simulator.send_text(openid, "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑")
    number = reply.content.split("编号 ")[1][:11]
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        # 7 working days: 8, 9, 10 (make-up Saturday), 12, 13, 14, 15 October; accept within 1.
        assert local_date(case.deadline) == "2026-10-15"
        assert local_date(case.accept_deadline) == "2026-10-08"
        assert case.alert == "none" and case.handler_kind == "deputy"
    settle()
    # The grid deputy is told at once that the case waits for them (代表接单), not only by the digest.
    (new_work,) = sends(fake_wechat, MINI)
    assert new_work["json"]["touser"] == "o_mp_deputy_zhang"
    assert new_work["json"]["data"]["character_string1"]["value"] == number

    sweep(clock, 2026, 10, 3, 12, 0)  # mid-holiday: nothing is due
    assert len(sends(fake_wechat, MINI)) == 1

    sweep(clock, 2026, 10, 9, 0, 10)  # acceptance overdue since the end of 8 October
    mini = sends(fake_wechat, MINI)
    assert [c["json"]["touser"] for c in mini] == ["o_mp_deputy_zhang"] * 2
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, cases.Actor("deputy", 1))

    sweep(clock, 2026, 10, 13, 12, 0)  # not yet: the reminder is due at 09:00 on the 14th
    assert len(sends(fake_wechat, MINI)) == 2
    sweep(clock, 2026, 10, 14, 9, 5)  # one working day before the deadline
    mini = sends(fake_wechat, MINI)
    assert len(mini) == 3 and mini[2]["json"]["touser"] == "o_mp_deputy_zhang"  # the last credit
    with db.session_scope() as session:
        assert cases.case_by_number(session, number).alert == "yellow"

    sweep(clock, 2026, 10, 16, 0, 5)  # overdue: level 1 (the deputy handles it: station staff too)
    sweep(clock, 2026, 10, 16, 0, 6)  # a second sweep at once changes nothing
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.alert == "red" and case.escalation_level == 1
        staff_notices = session.scalars(select(Notice).where(Notice.account_id == staff_account)).all()
        assert [n.kind for n in staff_notices] == ["escalate"]
    assert len(sends(fake_wechat, MINI)) == 3  # no credit left: the escalation waits in the mini-program

    sweep(clock, 2026, 10, 20, 0, 5)  # level 2 after 2 more working days (16th, 19th)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.escalation_level == 2
        reply_text = "已联系供电所更换灯具。"
        cases.reply(session, case, cases.Actor("deputy", 1), reply_text)
    settle()
    # The 48 h window is long closed: the reply goes by 订阅通知, not as a customer-service message.
    assert sends(fake_wechat, CUSTOM) == []
    biz = sends(fake_wechat, BIZSEND)
    assert len(biz) == 1 and biz[0]["json"]["touser"] == openid
    assert biz[0]["json"]["data"]["character_string1"]["value"] == number

    clock.to(2026, 10, 21, 15, 0)
    with db.session_scope() as session:
        cases.close(session, cases.case_by_number(session, number), cases.Actor("deputy", 1), "灯具已更换。")
    settle()
    assert len(sends(fake_wechat, BIZSEND)) == 2  # the rating prompt

    sweep(clock, 2026, 10, 23, 12, 0)  # closed cases do not escalate; nothing due yet
    assert len(sends(fake_wechat, BIZSEND)) == 2
    sweep(clock, 2026, 10, 24, 15, 1)  # three days without a rating: one reminder
    sweep(clock, 2026, 10, 26, 15, 1)
    assert len(sends(fake_wechat, BIZSEND)) == 3
    sweep(clock, 2026, 10, 28, 15, 1)  # seven days: recorded as 未评价
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.status == Status.UNRATED and case.next_action_at is None
        actions = [e.action for e in session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
    assert actions == ["submit", "assign", "accept_overdue", "accept", "remind", "escalate", "escalate",
                       "reply", "close", "rating_reminder", "expire_rating"]
    # Every message, once, on its channel: 3 mini-program pushes, 3 订阅通知, nothing else.
    assert len(sends(fake_wechat, MINI)) == 3 and sends(fake_wechat, TEMPLATE) == []


def test_unsatisfied_reopens_escalated_with_a_fresh_deadline(clock, fake_wechat, simulator):
    make_accounts()
    reply = simulator.send_text("o_timer_two", "幸福里小区垃圾站很久没人清运")
    number = reply.content.split("编号 ")[1][:11]
    settle()  # the case's own notices go out before time moves on
    clock.to(2026, 10, 9, 10, 0)
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, cases.Actor("deputy", 1))
        cases.close(session, case, cases.Actor("deputy", 1), "已清运。")
        first_deadline = case.deadline
    # Round 1's rating prompt is delivered before the resident answers it. Without this wait the
    # job raced the resident's "3": on a busy machine it ran after the reply had opened a new
    # window and went as a customer-service message instead of a template message.
    settle()
    # The resident rates 3 by chat (their reply opens a new window).
    answer = simulator.send_text("o_timer_two", "3")
    assert "二次办理" in answer.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        assert case.status == Status.REOPENED and case.round == 2 and case.escalation_level == 1
        assert case.deadline > first_deadline
        assert local_date(case.deadline) == "2026-10-19"  # 7 working days from 9 October (10th works)
        assert case.next_action_at is not None
    settle()
    # Closing round 2 asks again, by customer-service message inside the fresh window.
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, cases.Actor("deputy", 1))
        cases.close(session, case, cases.Actor("deputy", 1), "已重新清运并加密频次。")
    settle()
    # Round 1's prompt went as a template message (window closed, no consent); round 2's inside
    # the window the resident's "3" opened.
    assert len(sends(fake_wechat, TEMPLATE)) == 1
    prompts = [c["json"]["text"]["content"] for c in sends(fake_wechat, CUSTOM)]
    assert len(prompts) == 1 and number in prompts[0] and "1 满意" in prompts[0]


def test_waiting_messages_go_out_when_the_resident_writes_again(clock, fake_wechat, simulator, monkeypatch):
    from liaison.messaging import channels

    monkeypatch.setitem(channels.config()["resident_templates"], "template", {})
    reply = simulator.send_text("o_timer_wait", "青山村的自来水停了")
    number = reply.content.split("编号 ")[1][:11]
    settle()
    clock.to(2026, 10, 12, 10, 0)  # window long closed, no consent, no template: must wait
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        cases.accept(session, case, cases.Actor("deputy", 3))
        cases.reply(session, case, cases.Actor("deputy", 3), "已通知水厂抢修。")
    settle()
    assert sends(fake_wechat, CUSTOM) == []
    simulator.send_text("o_timer_wait", "什么时候能来水？")  # a new window opens
    settle()
    texts = [c["json"]["text"]["content"] for c in sends(fake_wechat, CUSTOM)]
    assert len(texts) == 1 and "已通知水厂抢修" in texts[0]


def test_daily_digest_once_a_day(clock, fake_wechat, simulator):
    simulator.send_text("o_digest", "幸福里小区路灯坏了")
    settle()
    clock.to(2026, 10, 8, 7, 0)
    with db.session_scope() as session:
        assert timers.send_digests(session) == 0  # before 08:00
    clock.to(2026, 10, 8, 8, 30)
    with db.session_scope() as session:
        assert timers.send_digests(session) >= 1
        assert timers.send_digests(session) == 0  # idempotent within the day
        digest = session.scalar(select(Notice).where(Notice.kind == "digest", Notice.deputy_id == 1))
        assert "在办诉求 1 件" in digest.text


def test_a_new_deadline_clears_the_alert(clock, simulator):
    simulator.send_text("o_ext", "东关小区下水道堵塞")
    settle()
    clock.to(2026, 10, 20, 10, 0)
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        timer_sweep.run_due(session)
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        assert case.alert == "red"
        department = session.scalar(select(Department).where(Department.code == "zhujian"))
        cases.dispatch(session, case, cases.Actor("deputy", 2), department)
        assert case.alert == "none" and local_date(case.deadline) == "2026-10-29"


def test_a_timer_due_exactly_now_fires_once_and_the_sweep_ends(clock, simulator):
    simulator.send_text("o_edge", "幸福里小区路灯坏了")
    settle()
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        clock.now = case.deadline  # the very instant the deadline passes
        assert timer_sweep.run_due(session) == 1
    with db.session_scope() as session:
        case = session.scalar(select(Case))
        assert case.alert == "red" and case.escalation_level == 1 and case.next_action_at > clock.now
        assert timer_sweep.run_due(session) == 0
