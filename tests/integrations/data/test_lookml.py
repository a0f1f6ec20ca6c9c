"""dockyard export lookml on the shop's real artifacts (dbt on DuckDB, docs generated):
golden files, parsed back with lkml, types from catalog.json, meta.looker overrides, an
explore per mart, --select."""

from __future__ import annotations

import lkml
import pytest
from typer.testing import CliRunner

from dockyard.cli.main import cli

from .golden import check

pytestmark = pytest.mark.slow


def _export(shop_runs, out, *args):
    result = CliRunner().invoke(
        cli, ["export", "lookml", "--out", str(out), "--config", str(shop_runs.app.loaded.path), *args]
    )
    assert result.exit_code == 0, result.output
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.lkml"))}


def test_marts_views_and_explores_match_their_golden_files(shop_runs, tmp_path):
    files = _export(shop_runs, tmp_path / "lookml")
    assert sorted(files) == [
        "explores.lkml",
        "views/customer_ltv.view.lkml",
        "views/dim_customers.view.lkml",
        "views/fct_orders.view.lkml",
    ]
    for name, text in files.items():
        check("lookml/" + name, text)
        lkml.load(text)  # parses


def test_types_descriptions_keys_and_overrides(shop_runs, tmp_path):
    files = _export(shop_runs, tmp_path / "lookml")
    [view] = lkml.load(files["views/fct_orders.view.lkml"])["views"]
    assert view["sql_table_name"] == '"shop_dev"."dev"."fct_orders"'
    assert view["label"] == "Orders"  # meta.looker.label
    assert view["description"].startswith("One row per order")
    dims = {d["name"]: d for d in view["dimensions"]}
    assert dims["order_id"]["primary_key"] == "yes" and dims["order_id"]["type"] == "number"  # unique + not_null
    assert dims["order_id"]["description"] == "The order."
    assert (
        dims["customer_id"]["label"] == "Customer" and dims["customer_id"]["hidden"] == "yes"
    )  # meta.looker.dimension
    assert "primary_key" not in dims["customer_id"]
    groups = {g["name"]: g for g in view.get("dimension_groups", [])}
    assert groups and all(g["type"] == "time" for g in groups.values())  # dates and timestamps from catalog.json
    measures = {m["name"]: m for m in view["measures"]}
    assert measures["count"]["type"] == "count"
    assert measures["order_count_distinct"] == {
        "name": "order_count_distinct",
        "type": "count_distinct",
        "sql": "${TABLE}.order_id",
    }
    explores = lkml.load(files["explores.lkml"])
    assert explores["includes"] == ["views/*.view.lkml"]
    assert [e["name"] for e in explores["explores"]] == ["customer_ltv", "fct_orders"]  # dim_customers: explore false


def test_select_by_name_tag_and_path(shop_runs, tmp_path):
    files = _export(shop_runs, tmp_path / "a", "--select", "stg_orders,fct_orders")
    assert sorted(files) == ["explores.lkml", "views/fct_orders.view.lkml", "views/stg_orders.view.lkml"]
    files = _export(shop_runs, tmp_path / "b", "--select", "path:models/staging")
    assert len([f for f in files if f.startswith("views/")]) == 4
    result = CliRunner().invoke(
        cli, ["export", "lookml", "--select", "nothing_such", "--config", str(shop_runs.app.loaded.path)]
    )
    assert result.exit_code != 0 and "no model selected" in result.output
