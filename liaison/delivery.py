"""Delivering outbox messages to residents over a channel WeChat allows.

`deliver(outbox_id)` is what a worker runs. It claims the row (so a duplicate or retried job is a no-op),
renders the text, picks the channel, sends once, and records the attempt and outcome.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from liaison import db, outbox
from liaison.inbox import rating_prompt_text
from liaison.models import OutboxMessage, Resident, utcnow
from liaison.wechat.errors import WeChatAPIError, WeChatTimeoutError
from liaison.wechat.privacy import mask

log = logging.getLogger(__name__)

CUSTOM_WINDOW = timedelta(hours=48)


def render(row: OutboxMessage) -> str:
    """The text a resident receives for an outbox row."""
    if row.kind == "rating_prompt":
        return rating_prompt_text(row.payload["case_number"], row.payload.get("summary"))
    return row.payload["text"]


def customer_service_window_open(resident: Resident, now=None) -> bool:
    """True while WeChat accepts customer-service messages to this resident (48 h after a message)."""
    now = now or utcnow()
    last = max([t for t in (resident.last_message_at, resident.last_event_at) if t is not None],
               default=None)
    return last is not None and now - last < CUSTOM_WINDOW


def deliver(outbox_id: int, client=None) -> str:
    """Send one outbox message; returns its final status for this attempt (or "skipped")."""
    from liaison import runtime

    client = client or runtime.current().wechat
    with db.session_scope() as session:
        row = outbox.claim(session, outbox_id)
        if row is None:
            return "skipped"
        return _send(session, row, client)


def _send(session: Session, row: OutboxMessage, client) -> str:
    resident = session.get(Resident, row.resident_id) if row.resident_id else None
    if resident is None or not resident.oa_openid:
        outbox.finish_waiting(session, row, "resident has no official-account identity")
        return row.status
    if not resident.subscribed:
        outbox.finish_waiting(session, row, "resident unsubscribed")
        return row.status
    if not customer_service_window_open(resident):
        outbox.finish_waiting(session, row, "customer-service window closed")
        return row.status
    channel = "custom"
    try:
        client.send_custom_text(resident.oa_openid, render(row))
    except WeChatAPIError as error:
        outbox.record_attempt(session, row, channel, False, error.errcode, str(error))
        log.info("outbox %s to %s failed: %s", row.id, mask(resident.oa_openid), error)
        if isinstance(error, WeChatTimeoutError) and error.maybe_delivered:
            # WeChat may have delivered it: resending could duplicate. Leave it to an operator.
            row.status, row.lease_until, row.last_error = "unknown", None, str(error)
        elif error.is_window_error:
            outbox.finish_waiting(session, row, str(error))
        elif error.is_rate_limited:
            outbox.finish_retry(session, row, str(error), delay=timedelta(minutes=10))
        elif error.retryable:
            outbox.finish_retry(session, row, str(error))
        else:
            outbox.finish_dead(session, row, str(error))
        return row.status
    outbox.record_attempt(session, row, channel, True)
    outbox.finish_sent(session, row, channel)
    return row.status
