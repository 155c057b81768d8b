"""RQ job functions: small, importable, taking ids and calling the domain.

They run in RQ's work horse (a forked child of `python -m jobs.worker`) or on the embedded in-process
queue; either way `liaison.runtime` is already configured for the process.
"""
from __future__ import annotations

from liaison import delivery


def deliver_outbox(outbox_id: int) -> str:
    """Send one outbox message (idempotent: a duplicate or retried job does nothing)."""
    return delivery.deliver(outbox_id)


def relay_outbox() -> int:
    """Hand due outbox rows to the queue (retries, and jobs lost when Redis restarted)."""
    from jobs.queues import current_queue
    from liaison import db, outbox

    with db.session_scope() as session:
        return outbox.relay_due(session, current_queue().enqueue_outbox)
