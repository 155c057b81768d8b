"""`GET /metrics`: the Prometheus figures, only for a scraper that presents `METRICS_TOKEN`.

The figures (queue lengths, failed jobs, outbox states, WeChat errors, open cases by alert) take
database aggregates, so they are computed at most once per `METRICS_CACHE_SECONDS` per process and
every scrape in between gets the cached text: scraping harder cannot load the database.
Without `METRICS_TOKEN` the endpoint does not exist (404): the public port never shows the figures.
"""
from __future__ import annotations

import hmac
import threading
import time

from flask import Flask, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class CachedExposition:
    """The registry's text exposition, regenerated when older than `ttl` seconds (one at a time)."""

    def __init__(self, registry: CollectorRegistry, ttl: float):
        self.registry, self.ttl = registry, ttl
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._at = 0.0

    def get(self) -> bytes:
        with self._lock:  # concurrent scrapes wait for one computation instead of running their own
            now = time.monotonic()
            if self._body is None or now - self._at >= self.ttl:
                self._body = generate_latest(self.registry)
                self._at = now
            return self._body


def register(app: Flask, settings, redis_client) -> None:
    """Add `/metrics` to `app`."""
    from jobs.metrics import LiaisonCollector

    registry = CollectorRegistry()
    registry.register(LiaisonCollector(redis_client))
    cache = CachedExposition(registry, settings.metrics_cache_seconds)

    @app.get("/metrics")
    def metrics():
        """Prometheus scrape endpoint (bearer token `METRICS_TOKEN`)."""
        if not settings.metrics_token:
            abort(404)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 settings.metrics_token.encode()):
            return Response("metrics need the bearer token METRICS_TOKEN\n", status=401,
                            mimetype="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(cache.get(), mimetype=CONTENT_TYPE_LATEST)
