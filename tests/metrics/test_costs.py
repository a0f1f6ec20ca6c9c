"""The cost report: ranking by warehouse time and by bytes, the least-squares trend, and the
table models whose runtime grows fastest (materializations from the newest manifest)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from tests.metrics.conftest import T0, record_run

from dockyard import clock
from dockyard.app.costs import slope_per_day
from dockyard.domain import ArtifactRef

GROWS, STEADY, VIEW, BIG = "model.p.grows", "model.p.steady", "model.p.view", "model.p.big"
MATERIALIZED = {GROWS: "table", STEADY: "table", VIEW: "view", BIG: "incremental"}


@pytest.fixture
def now(monkeypatch):
    at = T0 + timedelta(days=10)
    monkeypatch.setattr(clock, "now", lambda: at)
    return at


def _manifest(app, run_id: int) -> None:
    folder = app.runs.artifact_root(run_id, 1)
    folder.mkdir(parents=True, exist_ok=True)
    nodes = {uid: {"config": {"materialized": m}} for uid, m in MATERIALIZED.items()}
    (folder / "manifest.json").write_text(json.dumps({"nodes": nodes}))
    app.store.runs.add_artifacts(run_id, [ArtifactRef(1, "manifest.json", "step-1/manifest.json")])


def test_slope_is_least_squares_per_day():
    points = [(T0 + timedelta(days=d), 10.0 + 2.0 * d) for d in range(5)]
    assert slope_per_day(points) == pytest.approx(2.0)
    assert slope_per_day(points[:2]) is None  # too few points
    assert slope_per_day([(T0 + timedelta(minutes=m), float(m)) for m in range(5)]) is None  # one day


def test_ranking_trend_bytes_and_incremental_candidates(app, now):
    last = None
    for day in range(10):
        at = T0 + timedelta(days=day)
        last = record_run(
            app.store,
            "nightly",
            "prod",
            {
                GROWS: 5.0 + 3.0 * day,  # a table getting slower: 3 s a day
                STEADY: (20.0, "success", 10, {"bytes_processed": 1000, "bytes_billed": 2000, "slot_ms": 5}),
                VIEW: 1.0 + 5.0 * day,  # grows, but a view
                BIG: (100.0, "success", 1, {"bytes_processed": 10**9, "_message": "SCRIPT"}),
                "test.p.t": 0.5,
            },
            at=at,
        )
    record_run(app.store, "hourly", "dev", {GROWS: 999.0}, at=T0 + timedelta(days=9))
    record_run(app.store, "nightly", "prod", {GROWS: 999.0}, at=T0 - timedelta(days=40))  # outside the window
    _manifest(app, last)
    report = app.costs.report("prod", days=30)
    assert [m["unique_id"] for m in report["models"]] == [BIG, VIEW, STEADY, GROWS]  # 1000, 235, 200, 185 s
    by_id = {m["unique_id"]: m for m in report["models"]}
    assert by_id[GROWS]["total_s"] == pytest.approx(sum(5.0 + 3.0 * d for d in range(10)))
    assert by_id[GROWS]["runs"] == 10 and by_id[GROWS]["slope_s_per_day"] == pytest.approx(3.0)
    assert by_id[STEADY]["slope_s_per_day"] == pytest.approx(0.0)
    assert by_id[STEADY]["bytes_billed"] == 20000 and by_id[STEADY]["slot_ms"] == 50
    assert by_id[GROWS]["bytes_processed"] is None  # DuckDB-like: no bytes reported
    assert [m["unique_id"] for m in report["by_bytes"]] == [BIG, STEADY]
    assert [m["unique_id"] for m in report["incremental_candidates"]] == [GROWS]
    assert report["materializations_from"] == last
    assert "test.p.t" not in by_id
    everywhere = app.costs.report(days=30)
    assert {m["unique_id"]: m["environments"] for m in everywhere["models"]}[GROWS] == ["dev", "prod"]


def test_no_manifest_no_candidates(app, now):
    for day in range(5):
        record_run(app.store, "nightly", "prod", {GROWS: 5.0 + day}, at=T0 + timedelta(days=day))
    report = app.costs.report("prod")
    assert report["incremental_candidates"] == [] and report["materializations_from"] is None
    assert report["models"][0]["materialized"] is None


def test_dockyard_costs(app, now):
    from typer.testing import CliRunner

    from dockyard.cli.main import cli

    for day in range(5):
        record_run(app.store, "nightly", "prod", {GROWS: 5.0 + day, STEADY: 2.0}, at=T0 + timedelta(days=day))
    runner = CliRunner()
    result = runner.invoke(cli, ["costs", "--env", "prod", "--config", str(app.loaded.path)])
    assert result.exit_code == 0, result.output
    assert "Warehouse time in prod, last 30 days" in result.output and "grows" in result.output
    assert "+1.00 s/day" in result.output and "Incremental candidates: unknown" in result.output
    result = runner.invoke(cli, ["costs", "--json", "--days", "7", "--config", str(app.loaded.path)])
    assert result.exit_code == 0 and json.loads(result.output)["models"][0]["unique_id"] == GROWS
    result = runner.invoke(cli, ["costs", "--env", "nope", "--config", str(app.loaded.path)])
    assert result.exit_code == 1 and "unknown environment 'nope'" in result.output
