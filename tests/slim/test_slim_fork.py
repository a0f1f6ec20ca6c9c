"""Slim CI in fork mode (``runner.mode: fork``): the build step's dbt child parses once, runs
the selection and the PR-schema check between its parse and the build, and builds with the
parsed manifest (dockyard.runner.fork). The project is tests/slim/conftest.py's, built once
in prod per module; the parses are counted in the forked children themselves (dbt's
``ManifestLoader.get_full_manifest`` wrapped in this process, which the children inherit)."""

from __future__ import annotations

import json
import shutil

import pytest
from dbt.parser.manifest import ManifestLoader

from .conftest import PROJECT, make_shop

pytestmark = pytest.mark.slow

FCT = "models/marts/fct_orders.sql"
FCT_CHANGED = "select o.id, o.customer_id, {{ cents('o.amount') }} as amount, 1 as x\nfrom {{ ref('stg_orders') }} o\n"
# a model routed to the production schema through adapter.dispatch (which dockyard does not
# wrap): the check after the parse refuses it
ESCAPING = {
    "models/marts/escape.sql": "{{ config(schema='prod') }}\nselect 1 as a\n",
    "macros/route.sql": (
        "{% macro default__generate_schema_name(custom_schema_name, node) -%}\n"
        "{{ (custom_schema_name or target.schema) | trim }}\n{%- endmacro %}\n"
    ),
}


@pytest.fixture(scope="module")
def fork_shop(tmp_path_factory, module_monkeypatch):
    tmp = tmp_path_factory.mktemp("slim_fork")
    config = PROJECT["dockyard.yml"].replace("mode: subprocess", "mode: fork")
    shop = make_shop(tmp, module_monkeypatch, {"dockyard.yml": config})
    yield shop
    shop.app.close()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def parses(tmp_path, monkeypatch):
    """A function answering how many times dbt parsed a project since the fixture started,
    counted by every forked dbt child (one line per parse in a file outside the state folder)."""
    counter = tmp_path / "parses.txt"
    counter.write_text("")
    original = ManifestLoader.get_full_manifest.__func__

    def counted(cls, *args, **kwargs):
        with open(counter, "a") as fh:
            fh.write("parse\n")
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(ManifestLoader, "get_full_manifest", classmethod(counted))
    return lambda: counter.read_text().count("parse")


def test_one_parse_for_the_selection_and_the_build(fork_shop, parses):
    shop = fork_shop
    with shop.changed({FCT: FCT_CHANGED}):
        result = shop.app.ci.build(31)
    logs = shop.app.runs.logs(result.run.id)
    assert result.ok, logs
    assert parses() == 1
    assert {s["unique_id"]: s["reason"] for s in result.selected}["model.slimshop.fct_orders"] == "body changed"
    built = {n["unique_id"] for n in result.report["results"] if n["resource_type"] != "exposure"}
    assert built == {s["unique_id"] for s in result.selected}
    assert shop.tables("dbt_ci_pr_31") == {"fct_orders", "customer_totals"}
    assert result.report["exposures"] == ["exposure.slimshop.weekly_report"]
    # deferred upstream: the base's source was aligned in the state the build read
    results = json.loads((shop.app.runs.artifact_root(result.run.id) / "step-1" / "run_results.json").read_text())
    compiled = next(r["compiled_code"] for r in results["results"] if r["unique_id"] == "model.slimshop.fct_orders")
    assert '"prod"."stg_orders"' in compiled
    # the build's own artifacts are still the step's: its manifest (from the one parse) and results
    step = shop.app.runs.artifact_root(result.run.id) / "step-1"
    assert "model.slimshop.fct_orders" in json.loads((step / "manifest.json").read_text())["nodes"]
    assert logs.count("Running with dbt") == 2  # the parse, then the build (which does not parse)
    assert shop.app.store.pr_schemas.get("ci", 31).schema == "dbt_ci_pr_31"
    assert result.report["comparisons"][0]["columns_added"] == ["x"]
    # compared by the build's own dbt process, on its parse: no second dbt process (ci/ops)
    assert result.report["compared"] is True and parses() == 1
    assert not (shop.app.state_dir / "ci" / "ops").exists()
    assert results["args"]["which"] == "build"  # the run-operation wrote no run_results.json over it


def test_the_next_push_starts_from_the_partial_parse_the_one_parse_kept(fork_shop, parses):
    shop = fork_shop
    with shop.changed({FCT: FCT_CHANGED}):
        first = shop.app.ci.build(32)
        second = shop.app.ci.build(32)
    assert first.ok and second.ok
    assert parses() == 2
    assert "Unable to do partial parsing" not in shop.app.runs.logs(second.run.id)
    assert second.selected == first.selected


def test_a_node_outside_the_pr_schema_stops_the_step_before_anything_is_built(fork_shop, parses):
    shop = fork_shop
    with shop.changed(ESCAPING):
        result = shop.app.ci.build(33)
    assert not result.ok and result.run.reason == "step_failed"
    logs = shop.app.runs.logs(result.run.id)
    assert "would write outside the PR schema dbt_ci_pr_33" in logs and "model.slimshop.escape -> prod" in logs
    assert "stopped before building anything" in logs
    assert parses() == 1
    assert result.run.executed_nodes == []
    assert "dbt_ci_pr_33" not in shop.schemas() and "escape" not in shop.tables("prod")
    assert result.selected == [{"unique_id": "model.slimshop.escape", "reason": "new"}]  # ci.json written first


def test_a_pull_request_that_does_not_parse_fails_the_step(fork_shop):
    shop = fork_shop
    with shop.changed({FCT: "select {{ ref('stg_orders' }}\n"}):
        result = shop.app.ci.build(34)
    assert not result.ok and result.run.reason == "step_failed"
    logs = shop.app.runs.logs(result.run.id)
    assert "fct_orders" in logs and "dbt parse failed: nothing was built" in logs
    assert "dbt_ci_pr_34" not in shop.schemas()


def test_no_base_manifest_builds_everything_with_one_parse(fork_shop, parses):
    shop = fork_shop
    result = shop.app.ci.build(35, base="empty")
    assert result.ok, shop.app.runs.logs(result.run.id)
    assert parses() == 1
    assert result.report["base_source"] == "none"
    assert shop.tables("dbt_ci_pr_35") >= {"stg_orders", "fct_orders", "customer_totals", "dim_customers"}
