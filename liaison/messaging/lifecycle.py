"""The outbox row's status and the one table of moves between statuses.

    pending ──hand_over──▶ enqueued ──claim──▶ sending ──▶ sent | failed | dead | waiting | inapp | unknown
       ▲  ◀──hand_back──     ▲                   ▲
       │                     │ window_opened     │ claim (a retry that fell due)
       └── requeue ◀── dead/unknown/waiting/failed

Every write of `OutboxMessage.status` goes through this table: `move(row, action)` for a loaded row,
`sources(action)` / `target(action)` for the conditional UPDATEs (which keep their own WHERE clauses for
leases and due times). `tests/test_outbox_lifecycle.py` walks it.
"""
from __future__ import annotations

from dataclasses import dataclass

PENDING = "pending"      # waits for the relay (a new row with a later not_before, or handed back)
ENQUEUED = "enqueued"    # handed to the queue, a job will claim it (enqueue lease)
SENDING = "sending"      # claimed by one worker (send lease); past it: the worker died
SENT = "sent"            # WeChat accepted it
FAILED = "failed"        # nothing delivered, retried at next_attempt_at (backoff)
DEAD = "dead"            # given up (refused everywhere, or MAX_ATTEMPTS)
WAITING = "waiting"      # no channel open: shown in the mini-program, sent when a window opens
INAPP = "inapp"          # an account's push with no channel: the mini-program shows it
UNKNOWN = "unknown"      # maybe delivered (read timeout, worker died mid-send): never resent blindly

STATUSES = (PENDING, ENQUEUED, SENDING, SENT, FAILED, DEAD, WAITING, INAPP, UNKNOWN)
INITIAL = (PENDING, ENQUEUED)  # what `outbox.add` writes
FINAL = (SENT, INAPP)  # nothing moves a row out of these
OPERATOR_ATTENTION = (DEAD, UNKNOWN, FAILED, WAITING)  # `manage.py outbox failed`


@dataclass(frozen=True)
class Move:
    """One row of the table: `action` is allowed from `sources` and leads to `target`."""

    action: str
    sources: tuple[str, ...]
    target: str


def _m(action: str, sources: tuple[str, ...], target: str) -> tuple[str, Move]:
    return action, Move(action, sources, target)


MOVES: dict[str, Move] = dict([
    _m("hand_over", (PENDING, FAILED), ENQUEUED),       # the relay: due rows to the queue
    _m("hand_over_again", (ENQUEUED,), ENQUEUED),       # the relay: the job was lost (lease expired)
    _m("hand_back", (ENQUEUED,), PENDING),              # the queue refused it (Redis down)
    _m("claim", (PENDING, ENQUEUED, FAILED), SENDING),  # a job takes it, alone
    _m("sent", (SENDING,), SENT),
    _m("retry", (SENDING,), FAILED),                    # nothing delivered; backoff
    _m("give_up", (SENDING,), DEAD),
    _m("wait", (SENDING,), WAITING),
    _m("in_app", (SENDING,), INAPP),
    _m("maybe_delivered", (SENDING,), UNKNOWN),         # failed while on the wire
    _m("expire_send", (SENDING,), UNKNOWN),             # the worker died mid-send
    _m("window_opened", (WAITING,), ENQUEUED),
    _m("requeue", OPERATOR_ATTENTION, PENDING),         # an operator checked it did not arrive
])


class IllegalOutboxMove(RuntimeError):
    """A status write the table does not allow: a bug in the sender, never a client's doing."""


def sources(action: str) -> tuple[str, ...]:
    """The statuses `action` may start from (for an UPDATE's WHERE clause)."""
    return MOVES[action].sources


def target(action: str) -> str:
    """The status `action` leads to (for an UPDATE's values)."""
    return MOVES[action].target


def move(row, action: str) -> str:
    """Apply `action` to a loaded outbox row; raises IllegalOutboxMove from a wrong status."""
    step = MOVES[action]
    if row.status not in step.sources:
        raise IllegalOutboxMove(f"outbox {row.id}: {action} not allowed from {row.status}")
    row.status = step.target
    return step.target
