"""The Flask app factory: wires settings, the domain runtime, the job queue and the blueprints.

`bot` (official-account webhook) and `miniprogram_api` (JSON API) never import each other; this module
is the only place that knows both.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify

from config.settings import Settings, load_settings


def create_app(settings: Settings | None = None, *, start_background: bool = True) -> Flask:
    """Build the WSGI app. In embedded mode (no REDIS_URL) jobs and sweeps run in this process."""
    from bot import bp as wechat_bp
    from console import init_app as init_console
    from jobs import queues
    from liaison import runtime
    from liaison.core import logs

    logs.configure()
    settings = settings or load_settings()
    rt = runtime.configure(settings)
    queues.install(settings, rt.redis)
    if settings.embedded and start_background:
        _start_embedded_scheduler()

    app = Flask(__name__)
    app.config.update(SETTINGS=settings, SECRET_KEY=settings.secret_key,
                      MAX_CONTENT_LENGTH=max(settings.api_max_body_bytes, settings.webhook_max_body_bytes),
                      JSON_AS_ASCII=False)
    app.json.ensure_ascii = False
    from jobs.broadcast_tasks import enqueue_chunk

    app.extensions["liaison.enqueue_broadcast_chunk"] = enqueue_chunk  # the API starts broadcasts
    app.register_blueprint(wechat_bp)
    try:
        from miniprogram_api import bp as api_bp
    except ImportError:  # pragma: no cover - the API package is optional during bootstrap
        api_bp = None
    if api_bp is not None:
        app.register_blueprint(api_bp)
    init_console(app)

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from jobs.metrics import LiaisonCollector

    registry = CollectorRegistry()
    registry.register(LiaisonCollector(rt.redis))

    @app.get("/metrics")
    def metrics():
        """Prometheus scrape endpoint (queue lengths, job failures, WeChat errors, alerts)."""
        return app.response_class(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz():
        from sqlalchemy import text

        from liaison.core import db

        with db.session_scope() as session:
            session.execute(text("SELECT 1"))
        return jsonify(status="ok", mode="embedded" if settings.embedded else "production")

    return app


_scheduler_started = False


def _start_embedded_scheduler() -> None:
    global _scheduler_started
    if _scheduler_started:
        return
    import threading

    from jobs.scheduler import run_forever

    threading.Thread(target=run_forever, name="embedded-scheduler", daemon=True).start()
    _scheduler_started = True
    logging.getLogger(__name__).info("embedded mode: jobs and sweeps run in this process")
