"""`python -m jobs.ops`: failed jobs and undelivered messages, listed and retried.

    python -m jobs.ops failed            # RQ's failed jobs on every queue, then undelivered outbox rows
    python -m jobs.ops retry JOB_ID ...  # requeue those RQ jobs
    python -m jobs.ops retry --all       # requeue every failed RQ job
"""
from __future__ import annotations

import argparse
import sys


def failed_jobs(redis_client) -> list[tuple[str, str, str]]:
    """(queue, job id, last error line) of every failed RQ job."""
    from rq import Queue
    from rq.job import Job

    from jobs.queues import QUEUE_NAMES
    from liaison.core.logs import redact

    rows = []
    for name in QUEUE_NAMES:
        registry = Queue(name, connection=redis_client).failed_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=redis_client)
            result = job.latest_result()
            info = ((result.exc_string if result else "") or "").strip().splitlines()
            rows.append((name, job_id, redact(info[-1]) if info else ""))
    return rows


def retry_jobs(redis_client, job_ids: list[str] | None) -> int:
    """Requeue the given failed jobs (all when None); returns how many."""
    from rq import Queue

    from jobs.queues import QUEUE_NAMES

    count = 0
    for name in QUEUE_NAMES:
        registry = Queue(name, connection=redis_client).failed_job_registry
        for job_id in registry.get_job_ids():
            if job_ids is None or job_id in job_ids:
                registry.requeue(job_id)
                count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    from jobs.bootstrap import boot

    parser = argparse.ArgumentParser(prog="python -m jobs.ops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("failed")
    retry = sub.add_parser("retry")
    retry.add_argument("job_ids", nargs="*")
    retry.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    rt = boot()
    if rt.redis is None:
        print("no REDIS_URL: the embedded queue keeps no failed jobs (see `manage.py outbox failed`)")
        return 0
    if args.command == "failed":
        rows = failed_jobs(rt.redis)
        for queue, job_id, error in rows:
            print(f"{queue}\t{job_id}\t{error}")
        print(f"{len(rows)} failed job(s)")
        return 0
    if not args.all and not args.job_ids:
        parser.error("name job ids or --all")
    print(f"requeued {retry_jobs(rt.redis, None if args.all else args.job_ids)} job(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
