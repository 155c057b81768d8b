"""The webhook's spool: deliveries taken while the database could not be written, replayed in order.

WeChat gives a delivery three tries about 5 s apart and then drops it, so a database outage longer
than ~15 s used to lose residents' messages. Now, when the database cannot be written, the webhook
puts the parsed delivery here (Redis, which production runs with AOF), answers the resident that the
message is received and the answer follows, and `replay()` (a scheduler sweep) stores the deliveries
once the database is back: in arrival order, each with the time it was received, and sends each stored
reply as a customer-service message through the outbox.

De-duplication holds across spool and database:
- one item per WeChat dedup key (`SET NX`): a retry of a spooled delivery gets the same answer and
  spools nothing;
- while a resident has items waiting, their new deliveries are spooled behind them (per-resident
  order), and so is a retry of a waiting one;
- the replay stores through `service.handle`, whose `InboundMessage` unique key makes a delivery that
  did reach the database (a commit whose answer was lost) a no-op; the item leaves the spool only
  after its transaction committed, and a retry arriving after that finds the stored reply.

Keys share one hash tag, so the scripts also run on a Redis Cluster.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.conversation import service as inbox
from liaison.core import db, tenant
from liaison.messaging import outbox
from liaison.messaging.models import InboundMessage
from liaison.messaging.texts import say
from liaison.wechat.privacy import mask

log = logging.getLogger(__name__)

PREFIX = "liaison:{spool}:"
QUEUE = PREFIX + "queue"          # list of dedup keys, oldest first
ITEM = PREFIX + "item:"           # + dedup key -> the delivery (JSON)
WAITING = PREFIX + "waiting"      # hash: openid -> number of items waiting
DEAD = PREFIX + "dead"            # deliveries the domain refused on replay (for an operator)
REPLAY_LOCK = PREFIX + "replay"

# The passive answer to a spooled message (events get the literal "success"): what happened, what next.
RECEIVED_TEXT = say("received")

_PUT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  return 1
end
return 0
"""
_DONE = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
if redis.call('DEL', KEYS[2]) == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
end
return 1
"""


def passive_answer(incoming: inbox.Incoming) -> str | None:
    """What a spooled delivery is answered (the same for every retry of it); None = "success"."""
    return None if incoming.msg_type == "event" else RECEIVED_TEXT


def encode(incoming: inbox.Incoming, received_at: datetime,
           county_id: int = tenant.DEFAULT_COUNTY_ID) -> str:
    data = dataclasses.asdict(incoming)
    data["received_at"] = received_at.timestamp()
    data["county_id"] = county_id
    return json.dumps(data, ensure_ascii=False)


def county_of(raw: bytes | str) -> int:
    """The county whose official account took the delivery (items spooled before counties: the default)."""
    return int(json.loads(raw).get("county_id") or tenant.DEFAULT_COUNTY_ID)


def decode(raw: bytes | str) -> tuple[inbox.Incoming, datetime]:
    data = json.loads(raw)
    received_at = datetime.fromtimestamp(data.pop("received_at"), tz=timezone.utc)
    data.pop("county_id", None)
    report = data.pop("report", None)
    data["subscriptions"] = tuple(tuple(pair) for pair in data.get("subscriptions") or ())
    return inbox.Incoming(**data, report=inbox.MassJobReport(**report) if report else None), received_at


class Spool:
    """The spool in one Redis database."""

    def __init__(self, redis_client):
        self.redis = redis_client
        self._put = redis_client.register_script(_PUT)
        self._done = redis_client.register_script(_DONE)

    def holds(self, openid: str) -> bool:
        """Whether deliveries of this resident wait in the spool (new ones must queue behind them).

        With Redis itself unreachable nothing can be read from the spool, so the delivery goes straight
        to the database: a Redis outage must not stop the webhook while the database is up.
        """
        try:
            return bool(self.redis.hexists(WAITING, openid))
        except RedisError as error:
            log.warning("spool unreachable (%s): storing the delivery directly", type(error).__name__)
            return False

    @staticmethod
    def holds_field(openid: str) -> tuple[str, str]:
        """`holds`'s question as (hash, field), for a caller asking it with its own command on the
        same Redis: the resident's deliveries wait when the hash has the field."""
        return WAITING, openid

    def put(self, incoming: inbox.Incoming, received_at: datetime,
            county_id: int = tenant.DEFAULT_COUNTY_ID) -> bool:
        """Spool a delivery taken by `county_id`'s official account; False when it is spooled already."""
        key = incoming.dedup_key
        return bool(self._put(keys=[ITEM + key, QUEUE, WAITING],
                              args=[encode(incoming, received_at, county_id), key, incoming.openid]))

    def __len__(self) -> int:
        return int(self.redis.llen(QUEUE))

    def oldest(self) -> tuple[str, bytes | None] | None:
        """(dedup key, item) at the head of the queue, or None when the spool is empty."""
        key = self.redis.lindex(QUEUE, 0)
        if key is None:
            return None
        key = key.decode()
        return key, self.redis.get(ITEM + key)

    def done(self, dedup_key: str, openid: str) -> None:
        self._done(keys=[QUEUE, ITEM + dedup_key, WAITING], args=[dedup_key, openid])


def replay(redis_client, *, join_window: timedelta, budget_seconds: float = 20.0) -> int:
    """Store spooled deliveries oldest first until the spool is empty, the database fails again or
    the time budget is spent; returns how many were stored. One replayer at a time (a Redis lock):
    a second caller returns 0 at once."""
    spool = Spool(redis_client)
    if not redis_client.exists(QUEUE):
        return 0
    lock = redis_client.lock(REPLAY_LOCK, timeout=max(60, int(budget_seconds * 3)))
    if not lock.acquire(blocking=False):
        return 0
    stored = 0
    deadline = time.monotonic() + budget_seconds
    try:
        while time.monotonic() < deadline:
            head = spool.oldest()
            if head is None:
                break
            key, raw = head
            if raw is None:  # its item is gone (cleaned by hand): drop the orphaned queue entry
                redis_client.lrem(QUEUE, 1, key)
                continue
            incoming, received_at = decode(raw)
            try:
                with tenant.use(tenant.county(county_of(raw))):
                    store(incoming, join_window=join_window, received_at=received_at)
            except Exception as error:
                if db.is_unavailable(error):
                    log.info("spool replay paused: database still unavailable (%d waiting)", len(spool))
                    break
                # The domain refuses this one for good: keep it for an operator, go on with the rest.
                log.exception("spooled %s from %s could not be stored; moved to %s",
                              incoming.msg_type, mask(incoming.openid), DEAD)
                redis_client.rpush(DEAD, raw)
            else:
                stored += 1
            spool.done(key, incoming.openid)
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: harmless, the next replayer takes over
            pass
    if stored:
        log.info("spool replay stored %d deliveries (%d still waiting)", stored, len(spool))
    return stored


def store(incoming: inbox.Incoming, *, join_window: timedelta, received_at: datetime) -> None:
    """Store one spooled delivery as the webhook would have, then queue its reply for sending.

    A unique violation on the dedup key means it was stored already (the webhook's commit succeeded
    but its answer was lost, or a retry got through): only the reply is made sure of. Another unique
    violation is a lost race (two first messages of a new resident) and is retried.
    """
    for attempt in range(3):
        try:
            with db.session_scope() as session:
                inbox.handle(session, incoming, join_window=join_window, now=received_at)
                _queue_reply(session, incoming.dedup_key)
            return
        except IntegrityError as error:
            if inbox.is_duplicate_error(error):
                break
            if attempt == 2:
                raise
    with db.session_scope() as session:
        _queue_reply(session, incoming.dedup_key)


def _queue_reply(session: Session, dedup_key: str) -> None:
    """The stored passive reply goes out as a customer-service message (once: the outbox key)."""
    session.flush()
    record = session.scalar(select(InboundMessage).where(InboundMessage.dedup_key == dedup_key))
    if record is None or not record.reply_text or record.resident_id is None:
        return
    outbox.add(session, "resident_text", f"inbound-reply:{record.id}", {"text": record.reply_text},
               case_id=record.case_id, resident_id=record.resident_id)
