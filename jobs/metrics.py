"""Prometheus metrics, computed at scrape time from Redis and the database (so every process and
every worker is counted without a shared in-memory registry)."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from liaison.core import tenant


class LiaisonCollector(Collector):
    """Queue lengths, failed jobs, outbox states, WeChat error counts, case alerts."""

    def __init__(self, redis_client=None):
        self.redis = redis_client

    def collect(self):
        from liaison.case import stats
        from liaison.core import db

        queue_length = GaugeMetricFamily("liaison_queue_length", "Jobs waiting per RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("liaison_jobs_failed", "Failed RQ jobs per queue", labels=["queue"])
        if self.redis is not None:
            from rq import Queue

            from jobs.queues import QUEUE_NAMES

            for name in QUEUE_NAMES:
                queue = Queue(name, connection=self.redis)
                queue_length.add_metric([name], queue.count)
                failed.add_metric([name], queue.failed_job_registry.count)
        yield queue_length
        yield failed
        # The deployment's figures: every county's rows, read only.
        with tenant.use(tenant.all_counties("metrics")), db.session_scope() as session:
            outbox = GaugeMetricFamily("liaison_outbox_messages", "Outbox rows by status", labels=["status"])
            for status, count in stats.outbox_counts(session).items():
                outbox.add_metric([status], count)
            yield outbox
            errors = CounterMetricFamily("liaison_wechat_errors", "Failed WeChat calls",
                                         labels=["channel", "errcode"])
            for (channel, errcode), count in stats.wechat_error_counts(session).items():
                errors.add_metric([channel, "http" if errcode is None else str(errcode)], count)
            yield errors
            alerts = GaugeMetricFamily("liaison_cases_open", "Open cases by alert", labels=["alert"])
            for alert, count in stats.case_alerts(session).items():
                alerts.add_metric([alert], count)
            yield alerts
