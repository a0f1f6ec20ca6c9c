"""OpenLineage: the events of a real shop run on DuckDB, received by an HTTP server on
127.0.0.1 (the dockyard.openlineage consumer, delivered by the foreground run) and validated
against the OpenLineage JSON schema (schema/OpenLineage.json); a failed run's FAIL events;
an endpoint that is down or slow never holds the consumer past its budget."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from dockyard.app.openlineage import OpenLineageConsumer
from dockyard.events import Event, RunEvent

from .conftest import API_KEY, Receiver

pytestmark = pytest.mark.slow
SCHEMA = json.loads((Path(__file__).parent / "schema" / "OpenLineage.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _of_run(events: list[dict], runs, run) -> list[dict]:
    parent = _parent_id(events, run.job)
    return [e for e in events if e["run"]["runId"] == parent or _parent(e) == parent]


def _parent(event: dict) -> str | None:
    return ((event["run"].get("facets") or {}).get("parent") or {}).get("run", {}).get("runId")


def _parent_id(events: list[dict], job: str) -> str:
    return next(e["run"]["runId"] for e in events if e["job"]["name"] == job and e["eventType"] == "START")


def _executed(shop_runs, run) -> dict[str, str]:
    """unique id -> status of each node that run's executing steps ran (from its artifacts)."""
    root = shop_runs.app.runs.artifact_root(run)
    found = {}
    for ref in shop_runs.app.runs.artifacts(run.id):
        if ref.name != "run_results.json":
            continue
        results = json.loads((root / ref.path).read_text())
        if results["args"]["which"] in ("generate", "compile"):
            continue
        for r in results["results"]:
            if r["status"] != "skipped" and r["unique_id"].split(".")[0] in ("model", "seed", "snapshot", "test"):
                found[r["unique_id"]] = r["status"]
    return found


def test_every_event_is_valid_against_the_openlineage_schema(shop_runs):
    events = shop_runs.receiver.events
    assert len(events) > 50
    for event in events:
        VALIDATOR.validate(event)
        datetime.fromisoformat(event["eventTime"])  # date-time (jsonschema checks it only with rfc3339-validator)
        uuid.UUID(event["run"]["runId"])
        assert event["producer"].startswith("https://")
    assert all(h.get("Authorization") == f"Bearer {API_KEY}" for h in shop_runs.receiver.headers)


def test_each_executed_node_has_a_start_then_complete_under_the_dockyard_run(shop_runs):
    run = shop_runs.good
    events = _of_run(shop_runs.receiver.events, shop_runs, run)
    parent = _parent_id(events, run.job)
    assert events[0]["run"]["runId"] == parent and events[0]["eventType"] == "START"
    assert events[-1]["run"]["runId"] == parent and events[-1]["eventType"] == "COMPLETE"
    assert events[0]["job"] == {
        "namespace": "shop-dev",
        "name": "Build and docs",
        "facets": events[0]["job"]["facets"],
    }
    executed = _executed(shop_runs, run)
    assert len(executed) == 4 + 7 + 24
    by_job: dict[str, list[str]] = {}
    for e in events[1:-1]:
        assert _parent(e) == parent
        parent_facet = e["run"]["facets"]["parent"]
        assert (parent_facet["job"]["namespace"], parent_facet["job"]["name"]) == ("shop-dev", "Build and docs")
        assert parent_facet["root"]["run"]["runId"] == parent
        by_job.setdefault(e["job"]["name"], []).append(e["eventType"])
    assert set(by_job) == set(executed)
    assert all(states == ["START", "COMPLETE"] for states in by_job.values())


def test_a_model_has_its_inputs_outputs_sql_and_job_type(shop_runs):
    events = _of_run(shop_runs.receiver.events, shop_runs, shop_runs.good)
    done = next(e for e in events if e["job"]["name"] == "model.shop.fct_orders" and e["eventType"] == "COMPLETE")
    namespace = f"duckdb://{shop_runs.db_dir / 'shop_dev.duckdb'}"
    assert [(d["namespace"], d["name"]) for d in done["outputs"]] == [(namespace, "shop_dev.dev.fct_orders")]
    assert sorted(d["name"] for d in done["inputs"]) == [
        "shop_dev.dev.stg_order_items",
        "shop_dev.dev.stg_orders",
        "shop_dev.dev.stg_products",
    ]
    facets = done["job"]["facets"]
    assert facets["jobType"]["jobType"] == "MODEL" and facets["jobType"]["processingType"] == "BATCH"
    assert "stg_orders" in facets["sql"]["query"] and "{{" not in facets["sql"]["query"]  # compiled, not Jinja
    assert facets["sql"]["dialect"] == "duckdb"
    fields = {f["name"] for f in done["outputs"][0]["facets"]["schema"]["fields"]}
    assert {"order_id", "customer_id"} <= fields
    seed = next(e for e in events if e["job"]["name"] == "seed.shop.raw_customers")
    assert seed["inputs"] == [] and seed["outputs"][0]["name"] == "shop_dev.dev.raw_customers"
    source_reader = next(e for e in events if e["job"]["name"] == "model.shop.stg_customers")
    assert [d["name"] for d in source_reader["inputs"]] == ["shop_dev.dev.raw_customers"]  # the source's relation


def test_a_test_reads_its_model_and_writes_nothing(shop_runs):
    events = _of_run(shop_runs.receiver.events, shop_runs, shop_runs.good)
    tests = [e for e in events if e["job"]["name"].startswith("test.")]
    assert tests and all(e["outputs"] == [] for e in tests)
    assert all(e["job"]["facets"]["jobType"]["jobType"] == "TEST" for e in tests)
    unique = next(e for e in tests if e["job"]["name"].startswith("test.shop.unique_fct_orders_order_id"))
    assert [d["name"] for d in unique["inputs"]] == ["shop_dev.dev.fct_orders"]


def test_a_failed_model_and_its_run_fail(shop_runs):
    events = _of_run(shop_runs.receiver.events, shop_runs, shop_runs.broken)
    states = [(e["job"]["name"], e["eventType"]) for e in events]
    assert states == [
        ("Broken", "START"),
        ("model.shop.broken", "START"),
        ("model.shop.broken", "FAIL"),
        ("Broken", "FAIL"),
    ]
    fail = events[2]
    assert "no_such_column" in fail["run"]["facets"]["errorMessage"]["message"]
    assert "ended error" in events[-1]["run"]["facets"]["errorMessage"]["message"]


def _consumer(shop_runs, **settings) -> OpenLineageConsumer:
    consumer = OpenLineageConsumer(shop_runs.app)
    consumer.settings = consumer.settings.model_copy(update=settings)
    return consumer


def _final(run) -> Event:
    return Event(id=1, key=f"run:{run.id}:final", type=RunEvent.SUCCEEDED, run_id=run.id, created_at=None, payload={})


def test_redelivery_sends_the_same_run_ids(shop_runs):
    first = [e.run.runId for e in _consumer(shop_runs).events(shop_runs.good.id)]
    again = [e.run.runId for e in _consumer(shop_runs).events(shop_runs.good.id)]
    assert first == again and len(set(first)) == 1 + 35


def test_an_endpoint_that_is_down_is_skipped_with_a_warning(shop_runs, caplog):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    consumer = _consumer(shop_runs, url=f"http://127.0.0.1:{port}", timeout_seconds=1.0, retries=1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "dockyard.app.openlineage"):
        consumer.deliver(_final(shop_runs.good))  # returns: the cursor moves on
    # one failed send (1 s timeout, 1 retry), then the rest skipped: a few seconds with the
    # events built, even on a loaded machine (6.3 s seen in CI); a send per event would be 72+ s
    assert time.monotonic() - started < 20
    assert "endpoint unreachable after 1 retries, 72 of 72 events skipped" in caplog.text


def test_a_slow_endpoint_is_cut_at_the_budget(shop_runs, caplog):
    receiver = Receiver()
    server, url = receiver.start(delay_s=0.3)
    try:
        consumer = _consumer(shop_runs, url=url, timeout_seconds=1.0, retries=0)
        consumer.budget_s = 2.0
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "dockyard.app.openlineage"):
            consumer.deliver(_final(shop_runs.good))
        assert time.monotonic() - started < 2.0 + 0.5
        assert 1 <= len(receiver.events) < 72
        assert "events not sent within 2 s" in caplog.text
    finally:
        server.shutdown()


def test_a_rejected_event_does_not_stop_the_others(shop_runs, caplog):
    receiver = Receiver()
    server, url = receiver.start(status=400)
    try:
        with caplog.at_level(logging.WARNING, "dockyard.app.openlineage"):
            _consumer(shop_runs, url=url).deliver(_final(shop_runs.broken))
        assert len(receiver.events) == 4
        assert caplog.text.count("an event was rejected (HTTP 400)") == 4
    finally:
        server.shutdown()
