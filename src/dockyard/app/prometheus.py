"""The Prometheus exposition of ``GET /metrics``: a custom collector that reads the store at
scrape time (prometheus-client's ``Collector`` protocol), so every API process answers the
same figures and nothing is kept in memory between scrapes.

Every label set is bounded: jobs, environments and statuses are the configured ones; models
are at most ``metrics.histogram_models`` (the most recently run); workers are the live ones.
No label or value holds a secret. See docs/metrics.md for the table of metrics.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from dockyard import clock
from dockyard.store.metrics import MODEL_BUCKETS

log = logging.getLogger("dockyard.app.prometheus")

RUN_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def _histogram(name: str, doc: str, labels: list[str], rows: list[dict], bounds) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for row in rows:
        buckets = [(repr(float(b)), float(n or 0)) for b, n in zip(bounds, row["le"], strict=True)]
        buckets.append(("+Inf", float(row["count"])))
        family.add_metric([str(v) for v in row["labels"]], buckets, row["sum"])
    return family


class StoreCollector:
    """Collects dockyard's figures from ``app``'s store on every scrape."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []  # no scrape at registration

    def collect(self):
        reader = self.app.store.reader.metrics
        config = self.app.config
        runs = CounterMetricFamily(
            "dockyard_runs", "Runs that ended, by job, environment and status", labels=["job", "environment", "status"]
        )
        for job, env, status, n in reader.run_totals():
            runs.add_metric([job, env, status], n)
        yield runs
        yield _histogram(
            "dockyard_run_duration_seconds",
            "Duration of the runs that ended (started to finished), by job and status",
            ["job", "status"],
            reader.run_duration_buckets(RUN_BUCKETS),
            RUN_BUCKETS,
        )
        stats = self.app.store.queue.queue_stats()
        depth = GaugeMetricFamily("dockyard_queue_depth", "Runs waiting in the queue", labels=["environment"])
        for env in sorted(set(config.environments) | set(stats["by_environment"])):
            depth.add_metric([env], stats["by_environment"].get(env, {}).get("queued", 0))
        yield depth
        yield _histogram(
            "dockyard_queue_wait_seconds",
            "Time from queued to started of the runs that started, by environment",
            ["environment"],
            reader.queue_wait_buckets(WAIT_BUCKETS),
            WAIT_BUCKETS,
        )
        now = clock.now()
        alive = reader.live_workers(now - timedelta(seconds=max(60.0, 3 * config.server.lost_after_seconds)))
        workers = GaugeMetricFamily("dockyard_workers", "Worker processes heartbeating")
        workers.add_metric([], len(alive))
        yield workers
        age = GaugeMetricFamily(
            "dockyard_worker_heartbeat_age_seconds", "Seconds since each live worker's heartbeat", labels=["worker"]
        )
        for worker, beat in alive:
            age.add_metric([worker], max(0.0, (now - beat).total_seconds()))
        yield age
        yield _histogram(
            "dockyard_model_duration_seconds",
            f"Execution time of the models (the {config.metrics.histogram_models} run most recently), by environment, "
            "counted when their runs ended",
            ["model", "environment"],
            reader.model_duration_buckets(config.metrics.histogram_models),
            MODEL_BUCKETS,
        )
        failures = CounterMetricFamily(
            "dockyard_test_failures", "Test executions that failed or errored", labels=["environment"]
        )
        for env, n in reader.test_failure_totals():
            failures.add_metric([env], n)
        yield failures
        fresh = GaugeMetricFamily(
            "dockyard_source_freshness_age_seconds",
            "Age of each source's newest row at its last freshness check, now",
            labels=["source", "environment"],
        )
        try:
            checks = self.app.metrics.freshness()
        except Exception:  # noqa: BLE001 - a broken part must not fail the scrape
            log.exception("source freshness not collected")
            checks = []
        for check in checks:
            if check["age_s"] is not None and check["unique_id"]:
                fresh.add_metric([check["unique_id"], check["environment"] or ""], float(check["age_s"]))
        yield fresh
        sent = CounterMetricFamily(
            "dockyard_notifications", "Alert deliveries by channel type and status", labels=["channel_type", "status"]
        )
        for channel_type, status, n in reader.notification_totals():
            sent.add_metric([channel_type, status], n)
        yield sent


def exposition(app) -> bytes:
    """The text exposition of every dockyard metric, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app))
    return generate_latest(registry)
