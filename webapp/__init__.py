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
    from miniprogram_api import bp as api_bp

    logs.configure()
    settings = settings or load_settings()
    rt = runtime.configure(settings)
    _warn_about_webhook_mode(settings)
    queues.install(settings, rt.redis, background_hand_over=True)  # no request waits for RQ
    if settings.embedded and start_background:
        _start_embedded_scheduler()
    if start_background:
        _preload_classifier()

    app = Flask(__name__)
    app.config.update(SETTINGS=settings, SECRET_KEY=settings.secret_key,
                      MAX_CONTENT_LENGTH=max(settings.api_max_body_bytes, settings.webhook_max_body_bytes),
                      JSON_AS_ASCII=False)
    app.json.ensure_ascii = False
    from jobs.broadcast_tasks import enqueue_chunk

    app.extensions["liaison.enqueue_broadcast_chunk"] = enqueue_chunk  # the API starts broadcasts
    app.register_blueprint(wechat_bp)
    app.register_blueprint(api_bp)
    from miniprogram_api.media_views import files_bp

    app.register_blueprint(files_bp)  # the local media backend's signed URLs (/media/<token>)
    from open311 import init_app as init_open311

    init_open311(app)
    from miniprogram_api import docs, ratelimit

    ratelimit.init_app(app)
    docs.init_app(app)
    init_console(app)

    from webapp import metrics

    metrics.register(app, settings, rt.redis)

    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(error):
        """Outside the API (which has its own JSON answer): 503 + Retry-After while the database is down."""
        from liaison.core import db

        if not db.is_unavailable(error):
            raise error
        logging.getLogger("webapp").warning("database unavailable: %s",
                                            type(getattr(error, "orig", None) or error).__name__)
        return jsonify(status="unavailable"), 503, {"Retry-After": "10"}

    @app.get("/healthz")
    def healthz():
        from sqlalchemy import text

        from liaison.core import db, tenant

        with tenant.use(tenant.all_counties("health check")), db.session_scope() as session:
            session.execute(text("SELECT 1"))
        return jsonify(status="ok", mode="embedded" if settings.embedded else "production")

    return app


def _warn_about_webhook_mode(settings: Settings) -> None:
    """Say loudly at start-up when the webhook accepts unsigned bodies, or can accept nothing at all."""
    log = logging.getLogger("webapp")
    if settings.wechat_allow_plaintext:
        log.warning("WECHAT_ALLOW_PLAINTEXT is on: the webhook accepts plaintext messages, whose body "
                    "nobody signs; anyone holding one signed query string can post as any resident. "
                    "For tests and demos only; never in production.")
    elif not settings.wechat_encrypted:
        log.error("WECHAT_ENCODING_AES_KEY is not set and plaintext is not allowed: the webhook will "
                  "refuse every message. Set the key (safe mode), or WECHAT_ALLOW_PLAINTEXT for a demo.")


def _preload_classifier() -> None:
    """Load the classifier and jieba's dictionary (seconds) in the background while the server starts,
    so the first resident's message does not wait for them (a message arriving earlier waits on the
    same load, never a second one)."""
    import threading

    def load():
        from classifiers import get_classifier

        get_classifier().classify("小区路灯坏了")  # the first cut builds jieba's prefix dictionary

    threading.Thread(target=load, name="classifier-preload", daemon=True).start()


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
