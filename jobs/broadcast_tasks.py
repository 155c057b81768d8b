"""RQ jobs of broadcast notices (BULK queue): ids in, domain call (liaison.broadcasts) out."""
from __future__ import annotations

from liaison.engagement.models import Broadcast
from liaison.tenancy.service import in_row_county, per_county

CHUNK_JOB = "jobs.broadcast_tasks.send_chunk"
JOB_TIMEOUT = 6 * 3600  # a chunk paced by the rate limiter may take long; the claims make it resumable


def enqueue_chunk(job_id: str, broadcast_id: int, chunk: int) -> None:
    """Put one chunk on the BULK queue (the job id is unique per chunk and resume round)."""
    from jobs.queues import BULK, current_queue

    current_queue().enqueue(BULK, CHUNK_JOB, broadcast_id, chunk, job_id=job_id, job_timeout=JOB_TIMEOUT)


@in_row_county(Broadcast)
def send_chunk(broadcast_id: int, chunk: int) -> dict:
    """Send one chunk of a broadcast (idempotent: only unclaimed recipients are sent to)."""
    from liaison.engagement import broadcasts

    return broadcasts.send_chunk(broadcast_id, chunk)


@per_county
def resume_broadcasts() -> int:
    """Periodic sweep: pick up broadcasts whose workers died or whose jobs were lost."""
    from liaison.core import db
    from liaison.engagement import broadcasts

    with db.session_scope() as session:
        return broadcasts.resume_all(session, enqueue_chunk)
