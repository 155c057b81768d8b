"""`python -m jobs.worker`: an RQ worker on the urgent, default and bulk queues (in that priority)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from rq import Worker

    from jobs.bootstrap import boot
    from jobs.queues import QUEUE_NAMES

    argv = sys.argv[1:] if argv is None else argv
    rt = boot()
    if rt.redis is None:
        print("REDIS_URL is not set: the embedded service runs its jobs in-process; no worker needed.",
              file=sys.stderr)
        return 2
    names = argv or list(QUEUE_NAMES)
    worker = Worker(names, connection=rt.redis)
    worker.work(with_scheduler=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
