"""A new resident's first case is not checked against the per-resident limit (nothing can have been
counted under a resident this delivery created) but is counted all the same: after the commit, with
the transaction's outbox jobs, in one Redis round trip; a process with no such hand-over counts it at
once."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from liaison.conversation import service as conversation
from liaison.core import db, ratelimit
from liaison.core.clock import utcnow
from liaison.people.models import Resident


def _windows(redis_client, resident_id: int) -> list[int]:
    keys = sorted(redis_client.keys(f"{ratelimit.KEY_PREFIX}*/cases_per_resident/resident/{resident_id}/*"))
    return [redis_client.llen(key) for key in keys]


def test_a_new_residents_first_case_is_counted_with_the_jobs(app, redis_client, monkeypatch):
    sent = []
    original = ratelimit.take_pending

    def take_pending(info):
        commands = original(info)
        sent.extend(commands)
        return commands

    monkeypatch.setattr(ratelimit, "take_pending", take_pending)
    incoming = conversation.Incoming(openid="o_rl_new", msg_type="text", create_time=1_700_000_000,
                                     msg_id="rl-new-1", content="幸福里小区3号楼门口的路灯坏了")
    with db.session_scope() as session:
        reply = conversation.handle(session, incoming, join_window=timedelta(minutes=10), now=utcnow())
    assert "已登记" in reply
    assert [command[0] for command in sent] == ["EVAL"]  # handed to the after-commit pipeline
    with db.session_scope() as session:
        resident_id = session.scalar(select(Resident.id).where(Resident.oa_openid == "o_rl_new"))
    windows = _windows(redis_client, resident_id)
    assert windows and all(length == 1 for length in windows)  # every limit of the rule counted once


def test_without_a_hand_over_the_count_is_made_at_once(app, redis_client):
    info: dict = {}
    previous = ratelimit.send_counts_after_commit(False)
    try:
        ratelimit.count_new(info, ratelimit.CASES_PER_RESIDENT, "resident", "987654")
    finally:
        ratelimit.send_counts_after_commit(previous)  # as it was, whatever the fixtures set
    assert ratelimit.take_pending(info) == []
    windows = _windows(redis_client, 987654)
    assert windows and all(length == 1 for length in windows)
