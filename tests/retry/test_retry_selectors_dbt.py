"""The selectors and rewritten commands of retry.py, checked against real dbt 1.11 (``dbt ls``
on a copy of examples/shop with a versioned model, unit tests and a second package that has
a model of the same name)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.retry.helpers import failed_run, node

from dockyard.retry import node_selector, retry_steps

pytestmark = pytest.mark.slow

# Runs several `dbt ls` in one interpreter (partial parsing keeps them fast); prints
# {"<args as one string>": [unique ids]} as JSON.
LS_SCRIPT = textwrap.dedent("""\
    import json, sys
    from dbt.cli.main import dbtRunner
    out = {}
    runner = dbtRunner()
    for args in json.loads(sys.argv[1]):
        res = runner.invoke(["--quiet", "ls", "--profiles-dir", ".", "--output", "json",
                             "--output-keys", "unique_id", *args])
        if not res.success:
            raise SystemExit(f"dbt ls {args} failed: {res.exception}")
        out[" ".join(args)] = sorted(json.loads(line)["unique_id"] for line in res.result)
    print("@@" + json.dumps(out))
""")

EXTRA_FILES = {
    "models/marts/vm_v1.sql": "select 1 as id\n",
    "models/marts/vm_v2.sql": "select 2 as id\n",
    "models/marts/_retry_extras.yml": """\
        version: 2
        models:
          - name: vm
            latest_version: 2
            versions: [{v: 1}, {v: 2}]
        unit_tests:
          - name: fct_orders            # a unit test named like a model
            model: customer_ltv
            given: [{input: ref('fct_orders'), rows: [{customer_id: 1}]}]
            expect: {rows: [{customer_id: 1}]}
          - name: happy_path
            model: customer_ltv
            given: [{input: ref('fct_orders'), rows: [{customer_id: 1}]}]
            expect: {rows: [{customer_id: 1}]}
          - name: happy_path            # same name, another model
            model: dim_customers
            given: [{input: ref('customer_ltv'), rows: [{customer_id: 1}]}]
            expect: {rows: [{customer_id: 1}]}
    """,
    "packages.yml": "packages:\n  - local: extras\n",
    "extras/dbt_project.yml": "name: extras\nversion: '1.0.0'\nconfig-version: 2\n",
    # same model name as the root project's, in another package (its own relation name)
    "extras/models/stg_orders.sql": "{{ config(alias='extras_stg_orders') }}\nselect 1 as order_id\n",
}


@pytest.fixture(scope="module")
def shop_plus(tmp_path_factory) -> Path:
    import shutil

    from tests.conftest import ROOT

    base = tmp_path_factory.mktemp("retry_dbt")
    dest = base / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml", "dbt_packages"),
    )
    for rel, text in EXTRA_FILES.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(textwrap.dedent(text))
    (base / "db").mkdir()
    env = _env(base)
    proc = subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "deps", "--profiles-dir", "."],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


def _env(base: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(SHOP_DUCKDB_DIR=str(base / "db"), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    return env


def dbt_ls(project: Path, *arg_lists: list[str]) -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", LS_SCRIPT, json.dumps(arg_lists)],
        cwd=project,
        env=_env(project.parent),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = proc.stdout[proc.stdout.rindex("@@") + 2 :]
    return json.loads(payload)


NODES = [
    "model.shop.fct_orders",
    "model.shop.stg_orders",
    "model.extras.stg_orders",
    "model.shop.vm.v2",
    "seed.shop.raw_orders",
    "snapshot.shop.customers_snapshot",
    "source.shop.raw.raw_orders",
    "test.shop.not_null_fct_orders_order_id.4e687af8d0",
    "test.shop.assert_no_orders_before_signup",
    "test.shop.accepted_values_customer_ltv_ltv_tier__gold__silver__bronze__none.d85772aea8",
    "unit_test.shop.customer_ltv.fct_orders",
    "unit_test.shop.customer_ltv.happy_path",
    "unit_test.shop.dim_customers.happy_path",
]


def test_each_selector_selects_exactly_its_node(shop_plus):
    queries = {}
    for uid in NODES:
        rtype = uid.split(".")[0]
        queries[uid] = ["--resource-type", rtype, "--select", node_selector(uid)]
    # the same with --indirect-selection empty (the unit test selectors change then)
    for uid in NODES:
        rtype = uid.split(".")[0]
        queries[uid + " empty"] = [
            "--resource-type",
            rtype,
            "--indirect-selection",
            "empty",
            "--select",
            node_selector(uid, indirect_empty=True),
        ]
    # why not simpler forms: a bare name is ambiguous, <package>.<name> misses nested models
    queries["bare"] = ["--resource-type", "model", "--select", "stg_orders"]
    queries["bare unit"] = ["--resource-type", "all", "--select", "fct_orders"]
    queries["dotted"] = ["--resource-type", "model", "--select", "shop.fct_orders"]
    found = dbt_ls(shop_plus, *queries.values())
    by_key = dict(zip(queries, (found[" ".join(a)] for a in queries.values()), strict=True))
    for uid in NODES:
        assert by_key[uid] == [uid], (uid, node_selector(uid), by_key[uid])
        if uid.endswith(".happy_path"):
            # documented limit: without indirect selection a unit test is named by package and
            # name only, and unit test names are unique per model only
            assert by_key[uid + " empty"] == [
                "unit_test.shop.customer_ltv.happy_path",
                "unit_test.shop.dim_customers.happy_path",
            ]
        else:
            assert by_key[uid + " empty"] == [uid], (uid, by_key[uid + " empty"])
    assert by_key["bare"] == ["model.extras.stg_orders", "model.shop.stg_orders"]
    assert "unit_test.shop.customer_ltv.fct_orders" in by_key["bare unit"]
    assert by_key["dotted"] == []


def test_exclude_semantics_behind_the_design(shop_plus):
    fct = node_selector("model.shop.fct_orders")
    ltv = node_selector("model.shop.customer_ltv")
    queries = [
        ["--resource-type", "model", "--exclude", fct, "--exclude", ltv],  # repeated --exclude
        ["--resource-type", "model", "--exclude", fct, ltv],  # one --exclude, two values
        ["--resource-type", "model", "--exclude", f"{fct} {ltv}"],  # one value with a space
        ["--resource-type", "test", "--exclude", fct],  # eager: drops fct_orders' tests
        ["--resource-type", "model"],
    ]
    found = dbt_ls(shop_plus, *queries)
    results = [found[" ".join(q)] for q in queries]
    everything = set(results[4])
    assert (
        set(results[0])
        == set(results[1])
        == set(results[2])
        == everything - {"model.shop.fct_orders", "model.shop.customer_ltv"}
    )
    assert "test.shop.not_null_fct_orders_order_id.4e687af8d0" not in results[3]
    assert "test.shop.not_null_customer_ltv_customer_id.6e2035d30b" in results[3]


def test_rewritten_commands_select_what_dbt_should_rerun(shop_plus):
    ok = [
        "model.shop.stg_orders",
        "model.shop.stg_customers",
        "model.shop.stg_products",
        "model.shop.stg_order_items",
        "model.extras.stg_orders",
        "model.shop.vm.v1",
        "model.shop.vm.v2",
    ]
    run_nodes = [node(u, "success") for u in ok] + [
        node("model.shop.fct_orders", "error", "boom"),
        node("model.shop.customer_ltv", "skipped"),
    ]
    complete = retry_steps(failed_run("dbt run --select shop.staging+ extras --exclude tag:nothing", run_nodes))
    # worker lost after these completed: dim_customers never started and has no record
    interrupted = retry_steps(
        failed_run("dbt run --exclude tag:nothing", run_nodes, exit_code=None, reason="worker_lost")
    )
    build = retry_steps(
        failed_run(
            "dbt build",
            [
                node("model.shop.fct_orders", "success"),
                node("test.shop.not_null_fct_orders_order_id.4e687af8d0", "fail", "Got 1 result"),
                node("model.shop.customer_ltv", "skipped"),
            ],
        )
    )

    def ls_args(command: str, rtype: str) -> list[str]:
        tokens = shlex.split(command)
        assert tokens[0] == "dbt"
        return ["--resource-type", rtype, *tokens[2:]]

    queries = [
        ls_args(complete[0].command, "model"),
        ls_args(interrupted[0].command, "model"),
        ls_args(build[0].command, "all"),
    ]
    found = dbt_ls(shop_plus, *queries)
    assert found[" ".join(queries[0])] == ["model.shop.customer_ltv", "model.shop.fct_orders"]
    assert found[" ".join(queries[1])] == [
        "model.shop.customer_ltv",
        "model.shop.dim_customers",
        "model.shop.fct_orders",
    ]
    rebuilt = found[" ".join(queries[2])]
    # the failed test of the model that succeeded is re-run; the model itself is not
    assert "test.shop.not_null_fct_orders_order_id.4e687af8d0" in rebuilt
    assert "model.shop.fct_orders" not in rebuilt and "model.shop.customer_ltv" in rebuilt
