"""The webhook's hand-over of a transaction's outbox rows to RQ (`RQJobQueue.enqueue_outbox_many`)
writes its Redis commands itself: the keys it leaves must be the ones RQ's own `Queue.enqueue_many`
leaves for the same job, and an unmodified RQ worker must run the job."""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.utils import utcparse

from jobs import queues
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.messaging import outbox
from liaison.people.models import Resident
from tests.test_outbox import CUSTOM_SEND, make_message, row

# Set by RQ from the clock when it enqueues: compared as timestamps, not as values.
TIMES = ("created_at", "enqueued_at")


def _rq_enqueue_many(redis_client, rows: list[tuple[int, int]]) -> None:
    """The hand-over as it was written with RQ's API: `Queue.prepare_data` + `Queue.enqueue_many`."""
    pipe = redis_client.pipeline()
    if len(rows) == 1:
        (outbox_id, attempt), = rows
        job = Queue.prepare_data(queues.DELIVER_ROW, (outbox_id,), job_id=f"outbox-{outbox_id}-{attempt}",
                                 result_ttl=3600, failure_ttl=7 * 24 * 3600)
    else:
        (first_id, first_attempt), ids = rows[0], [outbox_id for outbox_id, _ in rows]
        job = Queue.prepare_data(queues.DELIVER_ROWS, (ids,),
                                 job_id=f"outbox-{first_id}-{first_attempt}-rows-{len(rows)}",
                                 timeout=queues.ROW_TIMEOUT * len(rows), result_ttl=3600,
                                 failure_ttl=7 * 24 * 3600)
    Queue(queues.URGENT, connection=redis_client).enqueue_many([job], pipeline=pipe)
    pipe.execute()


def _written(redis_client) -> dict:
    """Every key in the (flushed beforehand) Redis DB: its type, expiry and contents."""
    contents = {b"hash": redis_client.hgetall, b"list": lambda key: redis_client.lrange(key, 0, -1),
                b"set": redis_client.smembers}
    keys = {}
    for key in redis_client.keys("*"):
        kind = redis_client.type(key)
        keys[key] = (kind, redis_client.ttl(key), contents[kind](key))
    return keys


@pytest.mark.parametrize("rows", [
    [(10, 2)],
    [(7, 0), (8, 0), (9, 1)],
    [(1_000_000 + n, 0) for n in range(30)],  # a description RQ cuts after 75 characters
], ids=["one row", "several rows", "many rows"])
def test_the_hand_over_writes_what_rq_enqueue_many_writes(redis_client, rows):
    queues.RQJobQueue(redis_client).enqueue_outbox_many(rows)
    ours = _written(redis_client)
    redis_client.flushdb()
    _rq_enqueue_many(redis_client, rows)
    rqs = _written(redis_client)

    assert ours.keys() == rqs.keys()
    for key, (kind, ttl, value) in rqs.items():
        assert ours[key][:2] == (kind, ttl), key
        if kind != b"hash":
            assert ours[key][2] == value, key
            continue
        our_hash = ours[key][2]
        assert our_hash.keys() == value.keys(), key  # field by field: none missing, none extra
        for field, expected in value.items():
            if field.decode() in TIMES:
                utcparse(our_hash[field].decode())  # RQ can read it back
            else:
                assert our_hash[field] == expected, field


def test_rq_reads_the_hand_overs_job_as_the_job_it_was_given(redis_client):
    handed = queues.RQJobQueue(redis_client)
    handed.enqueue_outbox_many([(7, 0), (8, 0), (9, 1)])
    handed.enqueue_outbox_many([(10, 2)])
    several, single = Queue(queues.URGENT, connection=redis_client).get_jobs()
    assert (several.id, several.func_name, several.args, several.kwargs, several.timeout) == (
        "outbox-7-0-rows-3", queues.DELIVER_ROWS, ([7, 8, 9],), {}, 3 * queues.ROW_TIMEOUT)
    assert (single.id, single.func_name, single.args, single.timeout) == (
        "outbox-10-2", queues.DELIVER_ROW, (10,), queues.ROW_TIMEOUT)
    for job in several, single:
        assert (job.origin, job.get_status(), job.result_ttl, job.failure_ttl) == (
            queues.URGENT, JobStatus.QUEUED, 3600, 7 * 24 * 3600)
        assert job.description == job.get_call_string()
        assert job.created_at is not None and job.enqueued_at is not None


@pytest.fixture
def runtime(settings):
    from liaison import runtime as rt

    configured = rt.configure(settings)
    queues.install(settings, configured.redis)
    return configured


def _messages_in_one_transaction(count: int) -> list[int]:
    """`count` outbox rows written by one transaction: its commit hands them over as one job."""
    with db.session_scope() as session:
        wrote = utcnow() - timedelta(minutes=5)  # a 48 h window open: sent as customer-service texts
        resident = Resident(oa_openid="o_hand_over", last_message_at=wrote, window_kind="message",
                            window_opened_at=wrote, window_used=0)
        session.add(resident)
        session.flush()
        rows = [outbox.add(session, "resident_text", f"test:hand-over:{n}", {"text": f"第{n}条"},
                           resident_id=resident.id) for n in range(count)]
        session.flush()
        return [r.id for r in rows]


def test_an_rq_worker_runs_the_jobs_the_commit_handed_over(runtime, fake_wechat):
    alone = make_message(text="一条")  # its commit hands it over: one deliver_outbox job
    together = _messages_in_one_transaction(2)  # one deliver_outbox_rows job
    urgent = Queue(queues.URGENT, connection=runtime.redis)
    assert urgent.job_ids == [f"outbox-{alone}-0", f"outbox-{together[0]}-0-rows-2"]

    SimpleWorker([urgent], connection=runtime.redis).work(burst=True)

    assert [row(i).status for i in [alone, *together]] == ["sent", "sent", "sent"]
    assert len(fake_wechat.calls(CUSTOM_SEND)) == 3
    single = Job.fetch(f"outbox-{alone}-0", connection=runtime.redis)
    several = Job.fetch(f"outbox-{together[0]}-0-rows-2", connection=runtime.redis)
    assert (single.get_status(), single.return_value()) == (JobStatus.FINISHED, "sent")
    assert (several.get_status(), several.return_value()) == (
        JobStatus.FINISHED, {together[0]: "sent", together[1]: "sent"})
    assert 0 < runtime.redis.ttl(single.key) <= 3600  # result_ttl: kept an hour after it finished
    assert urgent.count == 0


def test_a_redis_error_reaches_the_caller(redis_client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free: closed again before the client connects
    dead = redis_lib.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis_lib.ConnectionError):  # `kick` hands the rows back to the relay sweep
        queues.RQJobQueue(dead).enqueue_outbox_many([(1, 0)], [("INCR", "x")])


@pytest.mark.parametrize("value", ["", "urgent", 604800, "引号\"'\\\n]]", b"\x00\xff\x80"])
def test_a_constant_of_the_job_script_reaches_redis_as_redis_py_would_send_it(redis_client, value):
    sent = value if isinstance(value, bytes) else str(value).encode()
    assert redis_client.eval(f"return {queues._lua_string(value)}", 0) == sent
