"""RQ job functions: small, importable, taking ids and calling the domain.

They run in RQ's work horse (a forked child of `python -m jobs.worker`) or on the embedded in-process
queue; either way `liaison.runtime` is already configured for the process.
"""
from __future__ import annotations

import logging

from jobs.broadcast_tasks import resume_broadcasts
from jobs.interop_tasks import handoff_sweep
from jobs.media_tasks import media_sweep
from liaison.messaging import delivery
from liaison.messaging.models import OutboxMessage
from liaison.tenancy.service import in_row_county, per_county

log = logging.getLogger(__name__)


@in_row_county(OutboxMessage)
def deliver_outbox(outbox_id: int) -> str:
    """Send one outbox message (idempotent: a duplicate or retried job does nothing)."""
    return delivery.deliver(outbox_id)


class RowsFailed(Exception):
    """Some rows of a `deliver_outbox_rows` job failed (the others were delivered)."""


def deliver_outbox_rows(outbox_ids: list[int]) -> dict[int, str]:
    """The outbox rows one transaction wrote, in one job: each delivered as `deliver_outbox` would
    (its own county, its own session and claim), in order. A row that fails is logged and left to
    the outbox's retry state, and the next row goes on; the job then fails naming the failed rows'
    ids, so a retry of it redoes only those (the others' claims make them "skipped")."""
    results: dict[int, str] = {}
    failed: list[int] = []
    for outbox_id in outbox_ids:
        try:
            results[outbox_id] = deliver_outbox(outbox_id)
        except Exception:  # noqa: BLE001 - one row's fault must not hold back the others
            log.exception("outbox row %s failed; the job goes on with the next row", outbox_id)
            failed.append(outbox_id)
    if failed:
        raise RowsFailed(f"outbox rows {failed} failed (of {len(outbox_ids)})")
    return results


@per_county  # a county's deadlines, staff and deputies are its own
def relay_outbox() -> int:
    """Hand due outbox rows to the queue (retries, and jobs lost when Redis restarted)."""
    from jobs.queues import current_queue
    from liaison.core import db
    from liaison.messaging import outbox

    with db.session_scope() as session:
        return outbox.relay_due(session, current_queue().enqueue_outbox)


@per_county  # a county's deadlines, staff and deputies are its own
def run_timers() -> int:
    """Deadline reminders, escalation, rating reminders and expiry for every case that is due."""
    from liaison.case import sweep
    from liaison.core import db

    with db.session_scope() as session:
        return sweep.run_due(session)


@per_county  # a county's reply limits, staff and departments are its own
def run_suggestion_timers() -> int:
    """代表建议: reply-limit reminders and escalation for every suggestion that is due."""
    from liaison.core import db
    from liaison.suggestion import timers

    with db.session_scope() as session:
        return timers.run_due(session)


@per_county  # a county's projects and staff are its own
def run_project_timers() -> int:
    """民生实事 三色督办: turn the lights of projects whose milestones fell due or near due."""
    from liaison.core import db
    from liaison.project import timers

    with db.session_scope() as session:
        return timers.run_due(session)


@per_county  # a county's deadlines, staff and deputies are its own
def send_digests() -> int:
    """Each deputy's daily digest of open and overdue cases (once a day; safe to run hourly)."""
    from liaison.case import timers
    from liaison.core import db

    with db.session_scope() as session:
        return timers.send_digests(session)


@per_county  # a county's stations, rota and residents are its own
def run_rota() -> int:
    """Plan duty shifts ahead, the grids' notice three days ahead, the day-before reminder, missed shifts."""
    from liaison.core import db
    from liaison.rota import timers as rota_timers

    with db.session_scope() as session:
        return sum(rota_timers.run_due(session).values())


@per_county  # a county's standard and deputies are its own
def sync_points() -> int:
    """Add this year's new events (cases, shifts, visits, approved activities) to the points ledger."""
    from liaison.core import db
    from liaison.core.clock import utcnow
    from liaison.core.workcalendar import CHINA_TZ
    from liaison.points import service as points

    with db.session_scope() as session:
        return points.sync(session, utcnow().astimezone(CHINA_TZ).year)


@per_county  # a county's deputies and residents are its own
def close_appraisals() -> int:
    """Close every 述职测评 whose voting period ended (under 90 %: 整改)."""
    from liaison.appraisal import service as appraisal
    from liaison.core import db

    with db.session_scope() as session:
        return appraisal.close_due(session)


@per_county  # a county's deadlines, staff and deputies are its own
def purge_idempotency_keys() -> int:
    """Forget the mini-program's stored POST answers once no client retries them (after two days)."""
    from liaison.core import db
    from liaison.people import service as accounts

    with db.session_scope() as session:
        return accounts.purge_idempotency_keys(session)


@per_county  # a county's statistics are its own
def recount_console_summary() -> int:
    """Recount the statistics' daily summary for the days whose cases changed since the last run."""
    from liaison.console import service as figures
    from liaison.core import db

    with db.session_scope() as session:
        return figures.recount_summary(session)


def replay_spool() -> int:
    """Store the webhook deliveries spooled while the database was down, oldest first."""
    from datetime import timedelta

    from liaison import runtime
    from liaison.conversation import spool

    rt = runtime.current()
    if rt.redis is None:  # embedded mode has no spool
        return 0
    return spool.replay(rt.redis, join_window=timedelta(seconds=rt.settings.message_join_window_seconds))


# (name, every seconds, function): run by the one scheduler process (jobs.scheduler).
PERIODIC = [
    ("replay_spool", 2, replay_spool),  # residents wait for these answers; an empty spool costs one EXISTS
    ("run_timers", 60, run_timers),
    ("run_suggestion_timers", 60, run_suggestion_timers),
    ("run_project_timers", 300, run_project_timers),

    ("run_rota", 300, run_rota),  # reminders and notices are due from 9:00 on a day, missed shifts at their end
    ("sync_points", 900, sync_points),
    ("close_appraisals", 600, close_appraisals),  # the ledger follows the events within a quarter of an hour
    ("send_digests", 900, send_digests),
    ("resume_broadcasts", 60, resume_broadcasts),  # chunks whose jobs were lost carry on
    ("purge_idempotency_keys", 3600, purge_idempotency_keys),
    ("handoffs", 10, handoff_sweep),  # 直通车: file pending hand-offs, poll the filed ones
    ("media", 30, media_sweep),  # chat photos and voice whose fetch did not happen at once
    # The statistics count days still marked stale live, so this bounds their work, not their truth.
    ("recount_console_summary", 60, recount_console_summary),
]
