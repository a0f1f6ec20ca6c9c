"""Catalogs: dockyard export catalog on the shop's real artifacts (golden, with the run ids and
times normalised), the seeds' atlan and metabase meta blocks passing through, lineage and the
last run status; GET /api/v1/environments/{name}/artifacts/{file}: a token, 404s, and the
newest SUCCESSFUL run's file (a later failed run kept artifacts too)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dockyard.api.app import create_app
from dockyard.app.catalog import FORMAT
from dockyard.cli.main import cli

from .golden import check

pytestmark = pytest.mark.slow


def _export(shop_runs, tmp_path, *args) -> dict:
    out = tmp_path / "catalog.json"
    result = CliRunner().invoke(
        cli, ["export", "catalog", "--out", str(out), "--config", str(shop_runs.app.loaded.path), *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def _normalised(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["generated_at"] = doc["source_run"]["finished_at"] = "<time>"
    doc["source_run"]["id"] = "<run>"
    doc["dbt_version"] = "<dbt>"
    for node in doc["nodes"]:
        if node["last_run"]:
            node["last_run"].update(run_id="<run>", finished_at="<time>", execution_time_s="<s>")
    return doc


def test_the_export_matches_its_golden_file(shop_runs, tmp_path):
    doc = _export(shop_runs, tmp_path, "--env", "dev")
    assert doc["format"] == FORMAT and doc["environment"] == "dev" and doc["adapter"] == "duckdb"
    assert doc["source_run"]["id"] == shop_runs.good.id  # not the later failed run
    check("catalog.json", json.dumps(_normalised(doc), indent=2, sort_keys=True) + "\n")


def test_meta_owners_lineage_types_and_status(shop_runs, tmp_path):
    doc = _export(shop_runs, tmp_path)  # default: the environment of the newest successful run
    nodes = {n["unique_id"]: n for n in doc["nodes"]}
    seed = nodes["seed.shop.raw_customers"]
    assert seed["meta"]["atlan"] == {"attributes": {"certificateStatus": "VERIFIED"}}
    assert seed["meta"]["metabase"] == {"display_name": "Raw customers"}
    assert seed["owner"] == "data-team@example.com"
    orders = nodes["model.shop.fct_orders"]
    assert orders["owner"] == "analytics" and orders["meta"]["looker"]["label"] == "Orders"
    assert orders["upstream"] == ["model.shop.stg_order_items", "model.shop.stg_orders", "model.shop.stg_products"]
    assert "model.shop.customer_ltv" in orders["downstream"]
    assert any(d.startswith("test.shop.unique_fct_orders_order_id") for d in orders["downstream"])
    columns = {c["name"]: c for c in orders["columns"]}
    assert columns["order_id"]["description"] == "The order." and columns["order_id"]["type"]  # from catalog.json
    assert orders["last_run"]["status"] == "success" and orders["last_run"]["run_id"] == shop_runs.good.id
    assert orders["relation"] == '"shop_dev"."dev"."fct_orders"' and orders["materialized"] == "table"
    assert {n["resource_type"] for n in doc["nodes"]} == {"model", "seed", "snapshot", "source"}


@pytest.fixture(scope="module")
def api(shop_runs):
    _, token = shop_runs.app.tokens.create("catalog", "read")
    with TestClient(create_app(shop_runs.app)) as client:
        yield client, {"Authorization": f"Token {token}"}


def test_artifact_urls_serve_the_newest_successful_run(shop_runs, api):
    client, auth = api
    url = "/api/v1/environments/dev/artifacts/manifest.json"
    assert client.get(url).status_code == 401
    response = client.get(url, headers=auth)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["x-dockyard-run-id"] == str(shop_runs.good.id)
    manifest = response.json()
    assert "model.shop.fct_orders" in manifest["nodes"]
    assert "model.shop.broken" not in manifest["nodes"]  # the failed run's manifest is not served
    for name in ("catalog.json", "run_results.json"):
        assert client.get(f"/api/v1/environments/dev/artifacts/{name}", headers=auth).status_code == 200
    results = client.get("/api/v1/environments/dev/artifacts/run_results.json", headers=auth).json()
    assert results["args"]["which"] == "generate"  # the run's last step that kept one


def test_artifact_urls_404(shop_runs, api):
    client, auth = api
    for url in (
        "/api/v1/environments/nope/artifacts/manifest.json",  # unknown environment
        "/api/v1/environments/dev/artifacts/secrets.json",  # not an artifact
        "/api/v1/environments/dev/artifacts/sources.json",  # no successful run kept one
        "/api/v1/environments/prod/artifacts/manifest.json",  # no run at all
    ):
        response = client.get(url, headers=auth)
        assert response.status_code == 404, url
