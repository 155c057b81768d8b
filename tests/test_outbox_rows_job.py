"""One RQ job for the outbox rows of one transaction: one row failing neither blocks nor repeats the
others, and the job's timeout grows with its rows."""
from __future__ import annotations

import pytest
from rq import Queue

from jobs import queues, tasks
from liaison.messaging import delivery
from tests.test_outbox import CUSTOM_SEND, make_message, row


@pytest.fixture
def runtime(settings):
    from liaison import runtime as rt

    configured = rt.configure(settings)
    queues.install(settings, configured.redis)
    return configured


def test_one_failing_row_does_not_hold_back_or_repeat_the_others(runtime, fake_wechat, monkeypatch):
    ids = [make_message(text=f"第{n}条", openid=f"o_rows_{n}") for n in range(3)]
    real = delivery.deliver

    def deliver(outbox_id, *args, **kwargs):
        if outbox_id == ids[1]:
            raise RuntimeError("boom")
        return real(outbox_id, *args, **kwargs)

    before = row(ids[1]).status
    monkeypatch.setattr(delivery, "deliver", deliver)
    with pytest.raises(tasks.RowsFailed, match=str(ids[1])):
        tasks.deliver_outbox_rows(ids)
    assert [row(i).status for i in ids] == ["sent", before, "sent"]

    monkeypatch.setattr(delivery, "deliver", real)  # the job again (a requeue): only the failed row is sent
    assert tasks.deliver_outbox_rows(ids) == {ids[0]: "skipped", ids[1]: "sent", ids[2]: "skipped"}
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 3


def test_a_transactions_rows_are_one_job_with_a_timeout_per_row(runtime):
    urgent = Queue(queues.URGENT, connection=runtime.redis)
    urgent.empty()
    queues.current_queue().enqueue_outbox_many([(7, 0), (8, 0), (9, 1)])
    queues.current_queue().enqueue_outbox_many([(10, 2)])
    several, single = urgent.get_jobs()
    assert (several.func_name, several.args, several.timeout) == (
        "jobs.tasks.deliver_outbox_rows", ([7, 8, 9],), 3 * queues.ROW_TIMEOUT)
    assert (single.id, single.func_name, single.args) == ("outbox-10-2", "jobs.tasks.deliver_outbox", (10,))
    urgent.empty()
