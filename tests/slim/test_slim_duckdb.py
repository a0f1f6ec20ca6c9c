"""Slim CI on DuckDB, against one prod build of the module's project (tests/slim/conftest.py):
what each change selects and why, what is built where, and dropping PR schemas."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from datetime import timedelta

import duckdb
import pytest
import uvicorn

from dockyard import clock
from dockyard.api.app import create_app
from dockyard.app import App

pytestmark = pytest.mark.slow

FCT = "models/marts/fct_orders.sql"
FCT_CHANGED = "select o.id, o.customer_id, {{ cents('o.amount') }} as amount, 1 as x\nfrom {{ ref('stg_orders') }} o\n"
FCT_TESTS = {"test.slimshop.not_null_fct_orders_id.600c7b2b67", "test.slimshop.unique_fct_orders_id.2a20231a0b"}


@pytest.fixture
def shop(slimshop):
    """The module's project (tests/slim/conftest.py), built once in prod."""
    return slimshop


def reasons(result) -> dict[str, str]:
    out = {s["unique_id"]: s["reason"] for s in result.selected}
    assert "selected by dbt" not in out.values(), out  # dockyard's account and dbt's selection agree
    return out


def built(result) -> set[str]:
    """The nodes the run's dbt actually ran (exposures aside)."""
    return {n["unique_id"] for n in result.report["results"] if n["resource_type"] != "exposure"}


def test_one_model_changed_builds_it_and_its_downstream_in_the_pr_schema(shop):
    with shop.changed({FCT: FCT_CHANGED}):
        result = shop.app.ci.build(11)
    assert result.ok, shop.app.runs.logs(result.run.id)
    assert result.schema == "dbt_ci_pr_11"
    assert reasons(result) == {
        "model.slimshop.fct_orders": "body changed",
        "model.slimshop.customer_totals": "downstream of model.slimshop.fct_orders",
        **{t: "downstream of model.slimshop.fct_orders" for t in FCT_TESTS},
    }
    # the source renders to the PR schema under the CI target, yet is not modified (the
    # unrendered comparison): only the changed model and its downstream were built
    assert built(result) == set(reasons(result))
    assert result.report["exposures"] == ["exposure.slimshop.weekly_report"]
    assert result.report["base_source"] == "store" and result.report["base_run_id"] == 1
    assert set(result.report["base_timings"]) >= {"model.slimshop.fct_orders", "model.slimshop.stg_orders"}
    # in the warehouse: the two models in the PR schema, the new column there only
    assert shop.tables("dbt_ci_pr_11") == {"fct_orders", "customer_totals"}
    assert [c[0] for c in shop.query("describe dbt_ci_pr_11.fct_orders")] == ["id", "customer_id", "amount", "x"]
    assert "x" not in [c[0] for c in shop.query("describe prod.fct_orders")]
    # upstream deferred to prod: the PR model's compiled SQL reads the prod relation
    results = json.loads((shop.app.runs.artifact_root(result.run.id) / "step-1" / "run_results.json").read_text())
    compiled = next(r["compiled_code"] for r in results["results"] if r["unique_id"] == "model.slimshop.fct_orders")
    assert '"prod"."stg_orders"' in compiled
    # rows and columns of the changed table model against production
    assert result.report["comparisons"] == [
        {
            "unique_id": "model.slimshop.fct_orders",
            "rows_pr": 4,
            "rows_base": 4,
            "columns_added": ["x"],
            "columns_removed": [],
            "columns_changed": [],
        }
    ]
    record = shop.app.store.pr_schemas.get("ci", 11)
    assert (record.schema, record.state) == ("dbt_ci_pr_11", "open")
    assert "Running with dbt" in shop.app.runs.logs(result.run.id)


def test_macro_change_selects_the_models_using_it(shop):
    with shop.changed({"macros/cents.sql": "{% macro cents(col) %}({{ col }} * 1000){% endmacro %}\n"}):
        result = shop.app.ci.build(12)
    assert result.ok
    assert reasons(result)["model.slimshop.fct_orders"] == "macro cents changed"
    assert reasons(result)["model.slimshop.customer_totals"] == "downstream of model.slimshop.fct_orders"
    assert built(result) == set(reasons(result))
    assert shop.query("select max(amount) from dbt_ci_pr_12.fct_orders") == [(20000,)]


def test_config_change(shop):
    marts = (shop.root / "models/marts/_marts.yml").read_text()
    marts = marts.replace(
        "  - name: fct_orders\n", "  - name: dim_customers\n    config: {materialized: view}\n  - name: fct_orders\n"
    )
    with shop.changed({"models/marts/_marts.yml": marts}):
        result = shop.app.ci.build(13)
    assert result.ok
    assert reasons(result) == {"model.slimshop.dim_customers": "config changed"}
    assert built(result) == {"model.slimshop.dim_customers"}
    views = shop.query(
        "select table_name from information_schema.tables where table_schema = 'dbt_ci_pr_13' and table_type = 'VIEW'"
    )
    assert views == [("dim_customers",)]


def test_new_model(shop):
    new = {"models/marts/big_orders.sql": "select * from {{ ref('stg_orders') }} where amount > 8\n"}
    with shop.changed(new):
        result = shop.app.ci.build(14)
    assert result.ok
    assert reasons(result) == {"model.slimshop.big_orders": "new"}
    assert shop.tables("dbt_ci_pr_14") == {"big_orders"}
    assert shop.query("select count(*) from dbt_ci_pr_14.big_orders") == [(2,)]


def test_deleted_model_is_reported_not_built(shop):
    marts = (shop.root / "models/marts/_marts.yml").read_text().split("exposures:")[0]
    with shop.changed({"models/marts/customer_totals.sql": None, "models/marts/_marts.yml": marts}):
        result = shop.app.ci.build(15)
    assert result.ok, shop.app.runs.logs(result.run.id)
    assert result.deleted == [{"unique_id": "model.slimshop.customer_totals", "resource_type": "model"}]
    assert result.selected == []
    assert built(result) == set()
    assert "dbt_ci_pr_15" not in shop.schemas()


def test_a_pull_request_that_does_not_parse_fails_before_building(shop):
    with shop.changed({FCT: "select {{ ref('stg_orders' }}\n"}):
        result = shop.app.ci.build(22)
    assert not result.ok and result.run.reason == "setup_failed"
    text = shop.app.runs.logs(result.run.id)
    assert "dbt parse of pull request #22 failed" in text and "fct_orders" in text
    assert "dbt_ci_pr_22" not in shop.schemas()


def test_state_from_a_folder(shop, tmp_path):
    base = shop.app.ci.base_run("prod")
    assert base is not None
    shutil.copy(base[1], tmp_path / "manifest.json")
    with shop.changed({FCT: FCT_CHANGED}):
        result = shop.app.ci.build(16, state=tmp_path)
    assert result.ok
    assert result.report["base_source"] == "path"
    assert reasons(result)["model.slimshop.fct_orders"] == "body changed"


def test_no_base_manifest_builds_everything_when_full(shop):
    result = shop.app.ci.build(17, base="empty")
    assert result.ok, shop.app.runs.logs(result.run.id)
    assert result.report["base_source"] == "none"
    assert "no base manifest" in shop.app.runs.logs(result.run.id)
    assert shop.tables("dbt_ci_pr_17") >= {"stg_orders", "fct_orders", "customer_totals", "dim_customers"}
    assert all(s["reason"] == "new" for s in result.selected)


def test_no_base_manifest_fails_when_configured(shop):
    shop.app.config.ci.without_base = "fail"
    try:
        result = shop.app.ci.build(18, base="empty")
    finally:
        shop.app.config.ci.without_base = "full"
    assert not result.ok
    assert result.run.reason == "setup_failed"
    text = shop.app.runs.logs(result.run.id)
    assert "no base manifest for pull request #18" in text and "ci.without_base: full" in text
    assert "dbt_ci_pr_18" not in shop.schemas()


def test_cleanup_drops_the_pr_schema(shop):
    with duckdb.connect(str(shop.db)) as con:  # as a build leaves them, with a custom-schema variant
        con.execute("create schema dbt_ci_pr_19; create table dbt_ci_pr_19.fct_orders as select 1 as a")
        con.execute("create schema dbt_ci_pr_19_marts; create table dbt_ci_pr_19_marts.t as select 1 as a")
        con.execute("create schema dbt_ci_pr_190")  # another pull request's
    shop.app.store.pr_schemas.built("ci", 19, "dbt_ci_pr_19")
    dropped = shop.app.ci.cleanup(19)
    assert sorted(dropped) == ["dbt_ci_pr_19", "dbt_ci_pr_19_marts"]
    assert not {"dbt_ci_pr_19", "dbt_ci_pr_19_marts"} & shop.schemas()
    assert shop.app.store.pr_schemas.get("ci", 19).state == "dropped"
    assert "dbt_ci_pr_190" in shop.schemas()
    with duckdb.connect(str(shop.db)) as con:
        con.execute("drop schema dbt_ci_pr_190")
    assert "prod" in shop.schemas() and shop.tables("prod") >= {"fct_orders"}


def test_janitor_drops_orphans_closed_and_stale_prs(shop):
    with duckdb.connect(str(shop.db)) as con:  # 99: left by a crash, no record in the store
        con.execute("create schema dbt_ci_pr_99; create table dbt_ci_pr_99.t as select 1 as a")
        con.execute("create schema dbt_ci_pr_98; create schema dbt_ci_pr_97; create schema dbt_ci_pr_97_marts")
    shop.app.store.pr_schemas.built("ci", 98, "dbt_ci_pr_98")
    shop.app.store.pr_schemas.built("ci", 97, "dbt_ci_pr_97")
    open_prs = {r.pr_number for r in shop.app.store.pr_schemas.list(environment="ci", states=("open",))} - {98}
    dropped = shop.app.ci.janitor(open_prs=open_prs)  # 98 was closed
    assert sorted(dropped) == ["dbt_ci_pr_98", "dbt_ci_pr_99"]
    assert not {"dbt_ci_pr_98", "dbt_ci_pr_99"} & shop.schemas()
    assert shop.app.store.pr_schemas.get("ci", 98).state == "dropped"
    assert {"dbt_ci_pr_97", "dbt_ci_pr_97_marts", "prod"} <= shop.schemas()
    # without the open pull requests: what saw no build for ci.janitor_after_hours (72)
    assert shop.app.ci.janitor(now=clock.now() + timedelta(hours=1)) == []
    dropped = shop.app.ci.janitor(now=clock.now() + timedelta(hours=73))
    assert {"dbt_ci_pr_97", "dbt_ci_pr_97_marts"} <= set(dropped)
    assert shop.app.store.pr_schemas.get("ci", 97).state == "dropped"
    assert "prod" in shop.schemas() and shop.tables("prod") >= {"fct_orders"}


def test_state_from_a_dockyard_server(shop, tmp_path):
    """A CI machine with a store of its own reads the base from the server's API."""
    _, token = shop.app.tokens.create("ci-reader", "read")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(shop.app), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client_root = tmp_path / "checkout"
    shutil.copytree(shop.root, client_root, ignore=shutil.ignore_patterns(".dockyard", "store.db", "target"))
    client = App.open(client_root / "dockyard.yml", f"sqlite:///{tmp_path / 'client.db'}")
    try:
        while not server.started:
            time.sleep(0.05)
        (client_root / FCT).write_text(FCT_CHANGED)
        result = client.ci.build(20, server=f"http://127.0.0.1:{port}", token=token)
        assert result.ok, client.runs.logs(result.run.id)
        assert result.report["base_source"] == "server" and result.report["base_run_id"] == 1
        assert result.report["base_timings"]["model.slimshop.fct_orders"] > 0
        assert reasons(result)["model.slimshop.fct_orders"] == "body changed"
        assert "model.slimshop.stg_orders" not in reasons(result)
        assert token not in json.dumps(result.report) and token not in client.runs.logs(result.run.id)
        bad = client.ci.build(21, server=f"http://127.0.0.1:{port}", token="dy_wrong")
        assert not bad.ok and "answered 401" in client.runs.logs(bad.run.id)
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
