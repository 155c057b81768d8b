"""RQ jobs of the hand-off to other platforms (直通车): ids in, one domain call (liaison.interop)."""
from __future__ import annotations

from liaison.interop.models import ExternalLink
from liaison.tenancy.service import in_row_county, per_county

LINK_JOB = "jobs.interop_tasks.run_link"


def _timeout() -> float:
    from liaison import runtime

    return float(runtime.current().settings.handoff_timeout_seconds)


def _callback_base() -> str | None:
    from liaison import runtime

    return runtime.current().settings.public_base_url


@in_row_county(ExternalLink)
def run_link(link_id: int) -> str:
    """File a pending hand-off or poll a filed one (safe to repeat: the target dedups on the token)."""
    from liaison.core import db
    from liaison.interop import service
    from liaison.interop.models import ExternalLink as Link

    with db.session_scope() as session:
        link = session.get(Link, link_id)
        state = link.state if link else None
    if state == service.PENDING:
        return service.file_link(link_id, timeout=_timeout(), callback_base=_callback_base())
    return service.poll_link(link_id, timeout=_timeout())


@per_county  # a county's targets and links are its own
def handoff_sweep() -> int:
    """Hand new cases of configured categories off, and queue a job per link that is due."""
    from jobs.queues import DEFAULT, current_queue
    from liaison.core import db
    from liaison.interop import service

    with db.session_scope() as session:
        service.auto_hand_off(session)
        due = service.due_links(session)
    for link_id, state, due_at in due:  # one job id per link, state and due moment
        current_queue().enqueue(DEFAULT, LINK_JOB, link_id,
                                job_id=f"handoff-{link_id}-{state}-{int(due_at.timestamp())}")
    return len(due)
