"""``triggers.fresh_sources_only`` with real dbt on the shop example: the first run builds
everything, a run without new source data ends ``success`` / ``no_new_data`` with its build
skipped, and newer ``updated_at`` values in ``raw_orders`` build only what is downstream."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fresh_sources_only(cluster_factory):
    c = cluster_factory(source=ROOT / "examples" / "shop")
    c.configure(
        [
            {"name": "load", "environment": "dev", "commands": ["dbt seed"]},
            {"name": "fresh", "environment": "dev", "commands": ["dbt run"], "triggers": {"fresh_sources_only": True}},
        ]
    )

    def run(job: str) -> dict:
        return json.loads(c.cli("run", job, "--json").stdout)

    def models(result: dict) -> set[str]:
        return {n["name"] for n in result.get("nodes", []) if n.get("resource_type") == "model"}

    run("load")
    first = run("fresh")
    assert first["status"] == "success" and first.get("reason") in (None, "")
    assert [s["command"] for s in first["steps"]] == ["dbt source freshness", "dbt run"]
    everything = models(first)
    assert {"stg_orders", "stg_products", "fct_orders"} <= everything

    second = run("fresh")  # nothing loaded since
    assert (second["status"], second["reason"]) == ("success", "no_new_data")
    assert [s["status"] for s in second["steps"]] == ["success", "skipped"]
    assert models(second) == set()

    seed = c.path / "seeds" / "raw_orders.csv"
    lines = seed.read_text().splitlines()
    head, row = lines[0].split(","), lines[1].split(",")
    row[head.index("updated_at")] = "2026-11-28 09:00:00"  # newer than every row
    seed.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    run("load")
    third = run("fresh")
    assert third["status"] == "success" and third.get("reason") in (None, "")
    built = models(third)
    assert "stg_orders" in built and "fct_orders" in built
    assert "stg_products" not in built and "stg_customers" not in built  # not downstream of raw_orders
    assert built < everything
