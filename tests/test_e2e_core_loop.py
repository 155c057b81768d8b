"""The whole loop on the real stack: simulator → webhook (safe mode, real HTTP) → PostgreSQL → outbox →
Redis → a real RQ worker process → the fake WeChat API; then the rating by chat reply."""
from __future__ import annotations

import re

from sqlalchemy import select

from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import CaseEvent
from liaison.core import db
from liaison.core.types import Actor
from liaison.messaging.models import OutboxMessage
from tests.conftest import wait_for

CUSTOM_SEND = "/cgi-bin/message/custom/send"


def custom_texts(fake, openid):
    return [c["json"]["text"]["content"] for c in fake.calls(CUSTOM_SEND)
            if c["json"] and c["json"].get("touser") == openid]


def handler_acts(number, action, **kwargs):
    with db.session_scope() as session:
        case = cases.case_by_number(session, number)
        actor = Actor("deputy", case.deputy_id) if case.handler_kind == "deputy" else Actor("staff")
        getattr(cases, action)(session, case, actor, **kwargs)


def status_of(number):
    with db.session_scope() as session:
        return cases.case_by_number(session, number).status


def test_message_to_archive_and_second_round(simulator, fake_wechat, rq_worker):
    openid = "o_e2e_resident"
    reply = simulator.send_text(openid, "幸福里小区3号楼门口的路灯坏了，晚上一片漆黑")
    assert reply.ok and reply.encrypted, reply.problems
    number = re.search(r"\d{4}-\d{6}", reply.content).group(0)
    assert "张建华" in reply.content

    handler_acts(number, "accept")
    handler_acts(number, "reply", text="已联系供电所，明天上午派人更换灯泡。")
    wait_for(lambda: custom_texts(fake_wechat, openid), message="the reply to reach WeChat")
    texts = custom_texts(fake_wechat, openid)
    assert len(texts) == 1 and "明天上午派人更换灯泡" in texts[0] and number in texts[0]

    handler_acts(number, "close", summary="路灯已更换，恢复照明。")
    wait_for(lambda: len(custom_texts(fake_wechat, openid)) == 2, message="the rating prompt")
    prompt = custom_texts(fake_wechat, openid)[1]
    assert number in prompt and "1 满意" in prompt

    rated = simulator.send_text(openid, "1")
    assert "销号" in rated.content
    assert status_of(number) == Status.ARCHIVED

    # A second case rated 不满意 goes to a second round with a fresh deadline.
    reply = simulator.send_text("o_e2e_second", "东关小区垃圾站很久没人清运，气味很大")
    second = re.search(r"\d{4}-\d{6}", reply.content).group(0)
    handler_acts(second, "accept")
    handler_acts(second, "close", summary="已协调环卫清运。")
    wait_for(lambda: custom_texts(fake_wechat, "o_e2e_second"), message="the second rating prompt")
    with db.session_scope() as session:
        first_deadline = cases.case_by_number(session, second).deadline
    answer = simulator.send_text("o_e2e_second", "3")
    assert "二次办理" in answer.content
    with db.session_scope() as session:
        case = cases.case_by_number(session, second)
        assert case.status == Status.REOPENED and case.round == 2
        assert case.deadline >= first_deadline
        actions = [e.action for e in session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
        assert actions == ["submit", "assign", "accept", "close", "rate_unsatisfied", "escalate"]
        assert case.escalation_level == 1  # 二次办理 goes one level up

    # Nothing sent twice: each outbox row went out once, and WeChat saw exactly those sends.
    wait_for(lambda: all_sent(), message="every outbox row sent")
    with db.session_scope() as session:
        to_residents = session.query(OutboxMessage).filter(OutboxMessage.resident_id.is_not(None)).count()
        assert to_residents == len(fake_wechat.calls(CUSTOM_SEND)) == 3


def all_sent():
    with db.session_scope() as session:
        return all(row.status == "sent" for row in session.scalars(select(OutboxMessage)))
