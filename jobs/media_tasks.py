"""RQ jobs keeping chat media (issue 15): ids in, one domain call (liaison.media)."""
from __future__ import annotations

from jobs.queues import DEFAULT
from liaison.media.models import MediaFile
from liaison.tenancy.service import in_row_county, per_county

FETCH_JOB = "jobs.media_tasks.fetch_media"


@in_row_county(MediaFile)
def fetch_media(media_file_id: int) -> str:
    """Fetch one chat photo or voice from WeChat and store it (a repeat does nothing)."""
    from liaison import runtime  # configured per process after the jobs modules are imported
    from liaison.core import db
    from liaison.media import service, storage

    with db.session_scope() as session:
        row = session.get(MediaFile, media_file_id)
        if row is None:
            return "gone"
        wechat = runtime.current().wechat_for(row.county_id, session)
        return service.fetch(session, media_file_id, wechat, storage.current())


def enqueue_fetches(queue, rows: list[tuple[int, int]]) -> None:
    """One job per media row and attempt (a re-enqueue of the same attempt is one job)."""
    for media_file_id, attempts in rows:
        queue.enqueue(DEFAULT, FETCH_JOB, media_file_id, job_id=f"media-{media_file_id}-{attempts}")


@per_county  # a county's cases and their media are its own
def media_sweep() -> int:
    """Queue the fetch of media still pending (Redis was down, or WeChat failed for a while)."""
    from jobs.queues import current_queue  # the queue this process installed at start-up
    from liaison.core import db
    from liaison.media import service

    with db.session_scope() as session:
        rows = service.due(session)
    enqueue_fetches(current_queue(), rows)
    return len(rows)
