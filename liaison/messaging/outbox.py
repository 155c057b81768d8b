"""The transactional outbox: side effects are rows written with the change that caused them.

Flow: `add()` writes the row inside the domain transaction, already marked `enqueued` with a lease →
after that commit, the hook in `jobs.queues` hands it to the queue (`fresh_rows`) with a job id unique
to the attempt → the job calls `claim()`, which atomically moves the row to `sending`; only the one
claimer sends; `finish_*` records the outcome. The scheduler's relay (`relay_due`) hands over what the
fast path missed: retries that fell due, and rows whose job was lost (Redis restarted) after their lease.

A row found in `sending` after its lease expired means a worker died mid-send. WeChat's customer-service
API has no idempotency key, so we cannot know whether the message left: the row becomes `unknown`
(counted in the metrics, listed by `manage.py outbox failed`) instead of being sent again. The content
is never lost: it stays on the case timeline, which the resident sees in the mini-program.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.messaging import lifecycle
from liaison.messaging.lifecycle import move
from liaison.messaging.models import DeliveryAttempt, OutboxMessage

SEND_LEASE = timedelta(seconds=120)
ENQUEUE_LEASE = timedelta(seconds=300)
MAX_ATTEMPTS = 6
BACKOFF_SECONDS = (10, 30, 120, 600, 1800)


def add(session: Session, kind: str, dedup_key: str, payload: dict[str, Any], *,
        case_id: int | None = None, resident_id: int | None = None,
        not_before: datetime | None = None, new_key: bool = False) -> OutboxMessage | None:
    """Queue a side effect in the caller's transaction; a repeated `dedup_key` adds nothing.

    `new_key=True` says the caller knows the key cannot exist yet (it names a row created in this
    transaction): no lookup, and the row waits for the caller's next flush instead of its own.
    """
    if not new_key:
        existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key))
        if existing is not None:
            return None
    row = OutboxMessage(kind=kind, dedup_key=dedup_key, payload=payload, case_id=case_id,
                        resident_id=resident_id, **initial_state(utcnow(), not_before))
    session.add(row)
    if not new_key:
        session.flush()
    if not_before is None:
        session.info.setdefault("outbox_fresh_rows", []).append(row)
    return row


def initial_state(now: datetime, not_before: datetime | None = None) -> dict[str, Any]:
    """The queue columns of a new row (`add`, and statements that insert rows themselves)."""
    if not_before is not None:
        return {"status": lifecycle.PENDING, "next_attempt_at": not_before, "lease_until": None}
    # Handed to the queue right after this commit (the after-commit hook): marked so in the same
    # insert, which keeps a second transaction out of every request. Should that hand-over fail,
    # the hook puts the row back to pending, or at worst the relay takes it after the lease.
    return {"status": lifecycle.ENQUEUED, "next_attempt_at": now, "lease_until": now + ENQUEUE_LEASE}


def inserted_fresh(session: Session, ids: Iterable[int]) -> None:
    """Rows a statement inserted with `initial_state(now)` (no not_before): hand them to the queue
    after this commit, like the rows `add` writes."""
    session.info.setdefault("outbox_fresh_ids", []).extend(ids)


def relay_due(session: Session, enqueue: Callable[[int, int], None], *, now: datetime | None = None,
              limit: int = 500) -> int:
    """Hand due rows to the queue. `enqueue(outbox_id, attempt)` must be idempotent per (id, attempt).

    Picks pending rows that are due, and enqueued rows whose enqueue lease expired (the job was lost,
    e.g. Redis restarted). Safe to run concurrently: rows are claimed with a conditional update.
    """
    now = now or utcnow()
    candidates = session.scalars(
        select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.next_attempt_at).limit(limit)).all()
    handed = 0
    for outbox_id in candidates:
        handed += _enqueue_one(session, outbox_id, enqueue, now)
    expire_stale_sends(session, now=now)
    return handed


def _due(now: datetime):
    """Rows the relay hands over: due ones ("hand_over"), and those whose job was lost ("hand_over_again")."""
    return or_(OutboxMessage.status.in_(lifecycle.sources("hand_over")) & (OutboxMessage.next_attempt_at <= now),
               OutboxMessage.status.in_(lifecycle.sources("hand_over_again")) & (OutboxMessage.lease_until < now))


def fresh_rows(session: Session) -> list[tuple[int, int]]:
    """(id, attempt) of the rows this session's transaction marked for the queue; forgets them."""
    added = [row.id for row in session.info.pop("outbox_fresh_rows", [])]
    added += session.info.pop("outbox_fresh_ids", [])
    # In the order they were written (ids are): a notice's pushes before what the transaction wrote
    # after it, whichever way each row was inserted.
    return [(outbox_id, 0) for outbox_id in sorted(added)] + session.info.pop("outbox_fresh", [])


def back_to_pending(session: Session, ids: Iterable[int]) -> None:
    """The queue could not take these rows after all (Redis down): the next relay takes them."""
    session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(list(ids)),
                                                OutboxMessage.status.in_(lifecycle.sources("hand_back")))
                    .values(status=lifecycle.target("hand_back"), lease_until=None))
    session.commit()


def _enqueue_one(session: Session, outbox_id: int, enqueue, now: datetime) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .where(_due(now))
        .values(status=lifecycle.target("hand_over"), lease_until=now + ENQUEUE_LEASE)
        .returning(OutboxMessage.attempts))
    attempts = result.scalar_one_or_none()
    session.commit()
    if attempts is None:
        return 0
    try:
        enqueue(outbox_id, attempts)
    except Exception:
        # The queue is unreachable (Redis down): hand the row back so the next relay takes it at
        # once instead of after the enqueue lease. A job that did get in is harmless: it claims.
        session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id,
                                                    OutboxMessage.status.in_(lifecycle.sources("hand_back")))
                        .values(status=lifecycle.target("hand_back"), lease_until=None))
        session.commit()
        raise
    return 1


def claim(session: Session, outbox_id: int, *, now: datetime | None = None) -> OutboxMessage | None:
    """Atomically take the row for sending; None when it is done, gone or held by another worker."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .where(OutboxMessage.status.in_(lifecycle.sources("claim")))
        .values(status=lifecycle.target("claim"), lease_until=now + SEND_LEASE, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id))
    if result.scalar_one_or_none() is None:
        session.rollback()
        return None
    session.commit()  # the claim must be durable before anything leaves the building
    return session.get(OutboxMessage, outbox_id, populate_existing=True)


def record_attempt(session: Session, row: OutboxMessage, channel: str, ok: bool,
                   errcode: int | None = None, error: str | None = None) -> None:
    session.add(DeliveryAttempt(outbox_id=row.id, channel=channel, ok=ok, errcode=errcode,
                                error=error))


def finish_sent(row: OutboxMessage, channel: str) -> None:
    """WeChat accepted it on `channel`."""
    move(row, "sent")
    row.channel, row.sent_at, row.lease_until, row.last_error = channel, utcnow(), None, None


def finish_waiting(row: OutboxMessage, reason: str) -> None:
    """No channel WeChat allows right now: keep it for the mini-program and the next open window."""
    move(row, "wait")
    row.lease_until, row.last_error = None, reason


def finish_inapp(row: OutboxMessage) -> None:
    """An account's push with no channel: the notice is in the mini-program, nothing else to do."""
    move(row, "in_app")
    row.lease_until = None


def finish_retry(row: OutboxMessage, error: str,
                 delay: timedelta | None = None) -> None:
    """A transient failure: try again later with backoff, or give up after MAX_ATTEMPTS."""
    row.last_error = error
    row.lease_until = None
    if row.attempts >= MAX_ATTEMPTS:
        move(row, "give_up")
        return
    backoff = BACKOFF_SECONDS[min(row.attempts - 1, len(BACKOFF_SECONDS) - 1)]
    move(row, "retry")
    row.next_attempt_at = utcnow() + (delay or timedelta(seconds=backoff))


def finish_unknown(row: OutboxMessage, error: str | None) -> None:
    """The request was on the wire when it failed: WeChat may have delivered it; never resent blindly."""
    move(row, "maybe_delivered")
    row.lease_until, row.last_error = None, error


def finish_dead(row: OutboxMessage, error: str) -> None:
    """Given up: refused on every channel, or nobody to send to."""
    move(row, "give_up")
    row.last_error, row.lease_until = error, None


def expire_stale_sends(session: Session, *, now: datetime | None = None) -> int:
    """Rows stuck in `sending` past their lease: a worker died mid-send. Mark them `unknown`."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status.in_(lifecycle.sources("expire_send")), OutboxMessage.lease_until < now)
        .values(status=lifecycle.target("expire_send"), last_error="worker died while sending; not resent to avoid a duplicate"))
    session.commit()
    return result.rowcount or 0


def release_waiting(session: Session, resident_id: int, limit: int) -> int:
    """A resident's window opened: their waiting messages (oldest first) go out again."""
    rows = session.execute(select(OutboxMessage.id, OutboxMessage.attempts).where(
        OutboxMessage.resident_id == resident_id,
        OutboxMessage.status.in_(lifecycle.sources("window_opened")))
        .order_by(OutboxMessage.id).limit(limit)).all()
    if rows:
        now = utcnow()
        session.execute(update(OutboxMessage).where(
            OutboxMessage.id.in_([r.id for r in rows]),
            OutboxMessage.status.in_(lifecycle.sources("window_opened")))
            .values(status=lifecycle.target("window_opened"), next_attempt_at=now, lease_until=now + ENQUEUE_LEASE))
        session.info.setdefault("outbox_fresh", []).extend((r.id, r.attempts) for r in rows)
    return len(rows)


def requeue(session: Session, outbox_id: int) -> bool:
    """Operator action: send a dead/unknown/waiting row again (after checking it did not arrive)."""
    result = session.execute(
        update(OutboxMessage).where(OutboxMessage.id == outbox_id)
        .where(OutboxMessage.status.in_(lifecycle.sources("requeue")))
        .values(status=lifecycle.target("requeue"), next_attempt_at=utcnow(), lease_until=None))
    session.commit()
    return bool(result.rowcount)
