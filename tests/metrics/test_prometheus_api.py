"""``GET /metrics`` (parsed with prometheus-client's own parser: bounded label sets, no secret)
and the metrics API routes, with their auth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from tests.metrics.conftest import record_run

from dockyard import clock
from dockyard.api.app import create_app
from dockyard.domain import RunStatus


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _values(family, sample_name: str | None = None) -> dict:
    return {
        tuple(sorted(s.labels.items())): s.value for s in family.samples if sample_name is None or s.name == sample_name
    }


@pytest.fixture
def seeded(make_app):
    app = make_app("metrics: {histogram_models: 2}\n")
    now = clock.now()
    for i in range(3):
        record_run(
            app.store,
            "nightly",
            "prod",
            {"model.p.m1": 1.0 + i, "model.p.m2": 20.0, "test.p.t": (0.1, "fail" if i == 0 else "pass")},
            at=now - timedelta(hours=5 - i),
            wait_s=3.0,
        )
    record_run(app.store, "hourly", "dev", {"model.p.m3": 0.3, "model.p.m4": 700.0}, at=now - timedelta(hours=1))
    record_run(app.store, "hourly", "dev", {"model.p.m3": 0.4}, at=now, status=RunStatus.ERROR)
    for run_id in range(1, 6):  # what the dockyard.metrics consumer does when each run ends
        app.store.metric_state.count_run(run_id)
    app.store.runs.create_run(None, "nightly", "prod", ["dbt build"])  # queued
    app.store.leases.register_process("host:1:abcd", "worker", "host", 1, now=now - timedelta(seconds=7))
    app.store.leases.register_process("host:2:gone", "worker", "host", 2, now=now - timedelta(hours=3))
    return app


def test_exposition_parses_with_bounded_labels(seeded):
    with TestClient(create_app(seeded)) as c:
        response = c.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"] == CONTENT_TYPE_LATEST
    fams = _families(response.text)
    assert _values(fams["dockyard_runs"], "dockyard_runs_total") == {
        (("environment", "prod"), ("job", "nightly"), ("status", "success")): 3.0,
        (("environment", "dev"), ("job", "hourly"), ("status", "success")): 1.0,
        (("environment", "dev"), ("job", "hourly"), ("status", "error")): 1.0,
    }
    counts = _values(fams["dockyard_run_duration_seconds"], "dockyard_run_duration_seconds_count")
    assert counts[(("job", "nightly"), ("status", "success"))] == 3.0
    assert _values(fams["dockyard_queue_depth"]) == {(("environment", "dev"),): 0.0, (("environment", "prod"),): 1.0}
    waits = _values(fams["dockyard_queue_wait_seconds"], "dockyard_queue_wait_seconds_bucket")
    assert (
        waits[(("environment", "prod"), ("le", "5.0"))] == 3.0 and waits[(("environment", "prod"), ("le", "1.0"))] == 0
    )
    assert _values(fams["dockyard_workers"]) == {(): 1.0}
    [(labels, age)] = _values(fams["dockyard_worker_heartbeat_age_seconds"]).items()
    assert labels == (("worker", "host:1:abcd"),) and 6 <= age < 60
    models = {dict(k)["model"] for k in _values(fams["dockyard_model_duration_seconds"])}
    assert models == {"model.p.m3", "model.p.m4"}  # histogram_models: 2, the most recently run
    m4 = _values(fams["dockyard_model_duration_seconds"], "dockyard_model_duration_seconds_bucket")
    assert m4[(("environment", "dev"), ("le", "600.0"), ("model", "model.p.m4"))] == 0
    assert m4[(("environment", "dev"), ("le", "+Inf"), ("model", "model.p.m4"))] == 1
    assert _values(fams["dockyard_test_failures"], "dockyard_test_failures_total") == {(("environment", "prod"),): 1.0}
    assert "dockyard_notifications" in fams and "dockyard_source_freshness_age_seconds" in fams
    assert "hooks/ops" not in response.text  # the webhook URL is a secret


def test_metrics_need_a_read_token_unless_public(seeded, make_app):
    _, token = seeded.store.tokens.create_token("scraper", "read")
    with TestClient(create_app(seeded)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/api/v1/metrics/models").status_code == 401
    public = make_app("server: {metrics_public: true}\n", name="public")
    public.store.tokens.create_token("someone", "admin")
    with TestClient(create_app(public)) as c:
        assert c.get("/metrics").status_code == 200
        assert c.get("/api/v1/metrics/models").status_code == 401  # only /metrics is public


def test_metrics_routes(seeded):
    with TestClient(create_app(seeded)) as c:
        models = c.get("/api/v1/metrics/models", params={"days": 2}).json()["data"]
        assert [m["unique_id"] for m in models][:2] == ["model.p.m4", "model.p.m2"]
        m1 = next(m for m in models if m["unique_id"] == "model.p.m1")
        assert m1["runs"] == 3 and m1["median_s"] == 2.0 and m1["last"]["execution_time_s"] == 3.0
        assert [m["unique_id"] for m in c.get("/api/v1/metrics/models?environment=prod").json()["data"]] == [
            "model.p.m2",
            "model.p.m1",
        ]
        assert len(c.get("/api/v1/metrics/models?limit=1&days=99999").json()["data"]) == 1  # clamped
        one = c.get("/api/v1/metrics/models/model.p.m3").json()["data"]
        assert [h["status"] for h in one["history"]] == ["success", "success"] and one["max_s"] == 0.4
        assert one["history"][0]["finished_at"].endswith("Z")
        [test] = c.get("/api/v1/metrics/tests").json()["data"]
        assert (test["pass"], test["fail"], test["executions"]) == (2, 1, 3)
        assert test["failure_rate"] == pytest.approx(1 / 3)
        jobs = {(j["job"], j["environment"]): j for j in c.get("/api/v1/metrics/jobs").json()["data"]}
        assert jobs[("nightly", "prod")]["by_status"] == {"success": 3, "queued": 1}
        assert jobs[("nightly", "prod")]["queue_wait"]["mean_s"] == pytest.approx(3.0)
        assert jobs[("hourly", "dev")]["by_status"] == {"success": 1, "error": 1}
        costs = c.get("/api/v1/costs?environment=dev&days=7").json()["data"]
        assert [m["unique_id"] for m in costs["models"]] == ["model.p.m4", "model.p.m3"]
