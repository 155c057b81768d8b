"""Start-up shared by every process that runs or enqueues jobs."""
from __future__ import annotations

from config.settings import Settings, load_settings


def boot(settings: Settings | None = None):
    """Load settings, configure the domain runtime and this process's job queue; return the runtime."""
    from jobs import queues
    from liaison import runtime
    from liaison.core import logs

    logs.configure()
    settings = settings or load_settings()
    rt = runtime.configure(settings)
    queues.install(settings, rt.redis)
    return rt
