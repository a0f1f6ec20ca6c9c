"""``dockyard export airflow|prefect|dagster``: the generated files against golden files
(tests/integrations/golden/; ``DOCKYARD_UPDATE_GOLDEN=1`` rewrites them), parsed with ``ast``:
the dependency graph of each generated DAG, flow and asset list equals the dbt graph of the
shop's manifest (a real ``dbt parse``); grouping by folder and layer; the CLI on a store with
a real run."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.served import copy_shop
from typer.testing import CliRunner

from dockyard.app.exports import graph, model_edges, runs_tests
from dockyard.cli.main import cli
from dockyard.errors import DockyardError
from dockyard.integrations import render

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
JOB, ENV = "Daily Production Run", "prod"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    return copy_shop(tmp)


def dbt_env(shop: Path) -> dict:
    return {**os.environ, "SHOP_DUCKDB_DIR": str(shop.parent / "db"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


@pytest.fixture(scope="module")
def manifest(shop):
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [str(dbt), "parse", "--project-dir", str(shop), "--profiles-dir", str(shop), "--target", "prod"],
        check=True,
        capture_output=True,
        env=dbt_env(shop),
        timeout=180,
    )
    return json.loads((shop / "target" / "manifest.json").read_text())


def dbt_model_edges(manifest: dict) -> set[tuple[str, str]]:
    """(upstream model, model) straight from depends_on (the shop has no hops between models)."""
    nodes = manifest["nodes"]
    models = {k for k, v in nodes.items() if v["resource_type"] == "model"}
    return {(dep, uid) for uid in models for dep in nodes[uid]["depends_on"]["nodes"] if dep in models}


def name_of(manifest: dict) -> dict[str, str]:
    return {k: v["name"] for k, v in manifest["nodes"].items()}


def rendered(manifest: dict, target: str, group_by: str = "model") -> str:
    server = "https://dockyard:8580"
    g = graph(manifest, job=JOB, environment=ENV, source="run 1", group_by=group_by, server=server, tests=True)
    return render.RENDERERS[target](g)


@pytest.mark.parametrize(
    "target,group_by",
    [("airflow", "model"), ("airflow", "folder"), ("airflow", "layer"), ("prefect", "model"), ("dagster", "model")],
)
def test_golden(manifest, target, group_by):
    text = rendered(manifest, target, group_by)
    golden = GOLDEN / f"{target}_{group_by}.py.golden"  # not .py: kept as generated, not formatted
    if os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with DOCKYARD_UPDATE_GOLDEN=1 and review {golden}"
    assert rendered(manifest, target, group_by) == text  # deterministic
    compile(text, str(golden), "exec")


def airflow_graph(text: str) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """The sensors' nodes by task variable, and every ``a >> b`` / ``a >> [b, c]`` edge."""
    tree = ast.parse(text)
    tasks, edges = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if getattr(call.func, "id", None) == "DockyardModelSensor":
                kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("task_id", "nodes")}
                assert kw["task_id"] == node.targets[0].id
                tasks[kw["task_id"]] = kw["nodes"]
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.RShift):
            right = node.value.right
            downs = [e.id for e in right.elts] if isinstance(right, ast.List) else [right.id]
            edges |= {(node.value.left.id, d) for d in downs}
    return tasks, edges


def test_airflow_dag_graph_is_the_dbt_graph(manifest):
    tasks, edges = airflow_graph(rendered(manifest, "airflow"))
    names = name_of(manifest)
    models = {k for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert {n for ns in tasks.values() for n in ns} == models
    assert all(tasks[names[n]] == [n] for n in models)  # one task per model, named after it
    expected = {(names[a], names[b]) for a, b in dbt_model_edges(manifest)}
    assert {e for e in edges if e[0] != "trigger"} == expected
    downstream = {b for _, b in expected}
    assert {b for a, b in edges if a == "trigger"} == {names[m] for m in models} - downstream


def test_prefect_flow_and_dagster_assets_follow_the_dbt_graph(manifest):
    names = name_of(manifest)
    expected = {(names[a], names[b]) for a, b in dbt_model_edges(manifest)}
    flow_edges = set()
    for node in ast.walk(ast.parse(rendered(manifest, "prefect"))):
        call = node.value if isinstance(node, ast.Assign) else None
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "submit":
            waits = next(k.value for k in node.value.keywords if k.arg == "wait_for")
            flow_edges |= {(w.id, node.targets[0].id) for w in waits.elts}
            assert ast.literal_eval(node.value.args[1]) == [f"model.shop.{node.targets[0].id}"]
    assert flow_edges == expected
    asset_edges = set()
    for node in ast.walk(ast.parse(rendered(manifest, "dagster"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AssetSpec":
            key = ast.literal_eval(node.args[0])
            deps = next(ast.literal_eval(k.value) for k in node.keywords if k.arg == "deps")
            asset_edges |= {(d, key) for d in deps}
    assert asset_edges == expected


def test_groups_by_folder_and_layer(manifest):
    names = name_of(manifest)
    tasks, edges = airflow_graph(rendered(manifest, "airflow", "folder"))
    assert set(tasks) == {"staging", "marts"}
    assert {names[n] for n in tasks["staging"]} == {"stg_customers", "stg_order_items", "stg_orders", "stg_products"}
    assert edges == {("trigger", "staging"), ("staging", "marts")}
    # an edge inside a group is no edge; one group per folder, with all its models
    g = graph(manifest, job=JOB, environment=ENV, source="run 1", group_by="layer")
    assert [(t.name, t.select) for t in g.tasks] == [
        ("marts", ["customer_ltv", "dim_customers", "fct_orders"]),
        ("staging", ["stg_customers", "stg_order_items", "stg_orders", "stg_products"]),
    ]


def _node(uid: str, path: str, deps: list[str], kind: str = "model") -> dict:
    return {
        "unique_id": uid,
        "name": uid.split(".")[-1],
        "resource_type": kind,
        "path": path,
        "depends_on": {"nodes": deps},
    }


def test_edges_walk_through_other_nodes_and_group_cycles_are_refused():
    manifest = {
        "nodes": {
            "model.p.a": _node("model.p.a", "x/a.sql", []),
            "snapshot.p.s": _node("snapshot.p.s", "s.sql", ["model.p.a"], "snapshot"),
            "model.p.b": _node("model.p.b", "y/b.sql", ["snapshot.p.s"]),
            "model.p.c": _node("model.p.c", "x/c.sql", ["model.p.b"]),
        }
    }
    assert model_edges(manifest) == {"model.p.a": set(), "model.p.b": {"model.p.a"}, "model.p.c": {"model.p.b"}}
    with pytest.raises(DockyardError, match="cycle"):
        graph(manifest, job="j", environment="e", source="s", group_by="folder")
    with pytest.raises(DockyardError, match="--group-by"):
        graph(manifest, job="j", environment="e", source="s", group_by="tag")


@pytest.mark.slow
def test_cli_exports_from_the_local_store(shop, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DUCKDB_DIR", str(shop.parent / "db"))
    config = str(shop / "dockyard.yml")
    runner = CliRunner()
    before = runner.invoke(cli, ["export", "airflow", "API smoke", "--config", config])
    assert before.exit_code == 1 and "no successful run with a manifest" in before.output
    subprocess.run(
        [sys.executable, "-m", "dockyard", "run", "API smoke", "--config", config],
        check=True,
        capture_output=True,
        env=dbt_env(shop),
        cwd=shop,
        timeout=300,
    )
    out = tmp_path / "dag.py"
    result = runner.invoke(
        cli, ["export", "airflow", "API smoke", "--group-by", "folder", "--out", str(out), "--config", config]
    )
    assert result.exit_code == 0, result.output
    tasks, edges = airflow_graph(out.read_text())
    assert set(tasks) == {"staging", "marts"} and ("staging", "marts") in edges
    assert "JOB = 'API smoke'" in out.read_text() and "environment 'dev'" in out.read_text()
    printed = runner.invoke(cli, ["export", "dagster", "API smoke", "--config", config])
    assert printed.exit_code == 0 and "AssetSpec('fct_orders'" in printed.stdout


def test_dbt_tests_become_each_models_asset_checks(manifest):
    """The tests attached to a model (generic tests by ``attached_node``, a singular test on
    one model) are its checks; only for a job that runs tests."""
    checks = {t.name: t.tests for t in graph(manifest, job=JOB, environment=ENV, source="run 1", tests=True).tasks}
    tests = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "test"}
    # every shop test but the singular one over two models is on one model
    singular = {k for k, v in tests.items() if not v.get("attached_node")}
    assert sum(len(c) for c in checks.values()) == len(tests) - len(singular) and len(singular) == 1
    unique = next(k for k in tests if k.startswith("test.shop.unique_fct_orders_order_id."))
    assert checks["fct_orders"]["unique_fct_orders_order_id"] == unique
    relationship = next(k for k in tests if k.startswith("test.shop.relationships_fct_orders_customer_id"))
    assert relationship in checks["fct_orders"].values()  # on fct_orders, though it refs dim_customers
    without = graph(manifest, job=JOB, environment=ENV, source="run 1").tasks
    assert all(t.tests == {} for t in without)
    assert runs_tests(["dbt seed", "dbt build --exclude resource_type:seed"])
    assert runs_tests(["dbt --no-partial-parse test --select x"]) and not runs_tests(["dbt run", "dbt seed"])
