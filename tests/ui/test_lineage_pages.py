"""The lineage page and graph.json, the hosted dbt docs, the freshness and monitors pages,
on ONE real run of the shop's production job (dbt on DuckDB: seed, source freshness,
snapshot, run, test, docs generate) per module; selectors compared with ``dbt ls``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.app import App
from dockyard.ui.routes.docs import DOCS_CSP
from dockyard.ui.site import create_site

ROOT = Path(__file__).resolve().parents[2]
HTML = {"Accept": "text/html"}
EVIL = "Orders <script>alert('xss')</script> & more"
SELECTORS = [
    "+fct_orders",
    "stg_orders+",
    "1+customer_ltv",
    "dim_customers+1",
    "@stg_customers",
    "tag:nightly",
    "path:models/staging",
    "models/marts",
    "source:shop",
    "source:shop.raw_orders+",
    "resource_type:seed",
    "package:shop",
    "config.materialized:table",
    "fqn:shop.staging.*",
    "stg_orders,+fct_orders",
    "stg_* customers_snapshot",
]
SHOWN = {"model", "seed", "snapshot", "source", "exposure", "metric", "semantic_model", "saved_query"}


@pytest.fixture(scope="module")
def shop_site(tmp_path_factory):
    base = tmp_path_factory.mktemp("ui-lineage")
    dest = base / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    marts = dest / "models" / "marts" / "_marts.yml"
    text = marts.read_text()
    assert "One row per order with item count and total in dollars." in text
    marts.write_text(text.replace("One row per order with item count and total in dollars.", json.dumps(EVIL)))
    with (dest / "dockyard.yml").open("a") as fh:
        fh.write(
            """\
monitors:
  - name: orders_volume
    type: volume
    model: fct_orders
    environment: prod
    threshold: 1
  - name: orders_not_negative
    type: sql
    environment: prod
    sql: "select * from {{ relation('fct_orders') }} where order_total >= 0"
"""
        )
    (base / "db").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOP_DUCKDB_DIR", str(base / "db"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        mp.delenv("DOCKYARD_STORE_URL", raising=False)
        app = App.open(dest / "dockyard.yml")
        app.sync()
        run = app.run_job("Daily Production Run")
        assert run.status.value == "success", app.runs.logs(run.id)[-3000:]
        app.monitors.check(environment="prod")
        site = create_site(app)
        with TestClient(site, base_url="http://127.0.0.1", headers=HTML, follow_redirects=False) as client:
            yield {"app": app, "client": client, "run": run, "project": dest, "db": base / "db"}
        app.close()


@pytest.fixture(scope="module")
def dbt_ls(shop_site):
    """``dbt ls --select S`` on the shop for each selector (unique ids), one dbt process each."""
    project, out = shop_site["project"], {}
    env = {"SHOP_DUCKDB_DIR": str(shop_site["db"]), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PATH": ""}
    dbt = str(Path(sys.executable).parent / "dbt")
    for selector in SELECTORS:
        done = subprocess.run(
            [
                dbt,
                "ls",
                "--select",
                selector,
                "--output",
                "json",
                "--output-keys",
                "unique_id",
                "--quiet",
                "--target",
                "prod",
                "--profiles-dir",
                str(project),
                "--project-dir",
                str(project),
                "--target-path",
                str(project / "target-ls"),
            ],
            capture_output=True,
            text=True,
            env={**env, "HOME": str(project)},
            cwd=project,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        out[selector] = {r["unique_id"] for r in rows if r["unique_id"].split(".")[0] in SHOWN}
    return out


def graph(client, **params):
    got = client.get("/lineage/graph.json", params=params, headers={"Accept": "application/json"})
    assert got.status_code == 200, got.text
    return got.json()


def test_graph_json_has_the_shop_nodes_and_edges(shop_site):
    g = graph(shop_site["client"], env="prod")
    ids = {n["id"] for n in g["nodes"]}
    assert g["run_id"] == shop_site["run"].id
    assert {
        "model.shop.fct_orders",
        "model.shop.stg_orders",
        "seed.shop.raw_orders",
        "snapshot.shop.customers_snapshot",
    } <= ids
    assert any(i.startswith("source.shop.") for i in ids)
    assert not any(i.startswith("test.") for i in ids)
    index = {n["id"]: i for i, n in enumerate(g["nodes"])}
    edges = {(g["nodes"][a]["id"], g["nodes"][b]["id"]) for a, b in g["edges"]}
    assert ("model.shop.stg_orders", "model.shop.fct_orders") in edges
    fct = g["nodes"][index["model.shop.fct_orders"]]
    stg = g["nodes"][index["model.shop.stg_orders"]]
    assert fct["layer"] > stg["layer"] and fct["x"] > stg["x"]
    assert fct["status"] == "success" and stg["status"] == "success"  # from the run's node results
    src = next(n for n in g["nodes"] if n["type"] == "source")
    fresh = {r["unique_id"]: r["status"] for r in shop_site["app"].freshness.latest("prod")}
    assert src["status"] == fresh.get(src["id"])  # a source's status: its last freshness check


@pytest.mark.slow
@pytest.mark.parametrize("selector", SELECTORS)
def test_selectors_filter_as_dbt_ls(shop_site, dbt_ls, selector):
    g = graph(shop_site["client"], env="prod", select=selector)
    assert {n["id"] for n in g["nodes"]} == dbt_ls[selector]


def test_exclude_and_refused_selectors(shop_site):
    client = shop_site["client"]
    g = graph(client, env="prod", select="+fct_orders", exclude="resource_type:seed source:*")
    ids = {n["id"] for n in g["nodes"]}
    assert "model.shop.fct_orders" in ids and not any(i.startswith(("seed.", "source.")) for i in ids)
    bad = client.get(
        "/lineage/graph.json", params={"env": "prod", "select": "colour:red"}, headers={"Accept": "application/json"}
    )
    assert bad.status_code == 400 and "unknown selector method 'colour:'" in bad.json()["error"]
    page = client.get("/lineage", params={"env": "prod", "select": "colour:red"})
    assert page.status_code == 400 and "unknown selector method" in page.text and 'role="alert"' in page.text


def test_lineage_page(shop_site):
    client = shop_site["client"]
    page = client.get("/lineage", params={"env": "prod", "select": "+fct_orders"})
    assert page.status_code == 200
    text = page.text
    assert 'id="lineage-canvas"' in text and "/static/lineage.js" in text and "Last status" in text
    assert f"run #{shop_site['run'].id}" in text
    config = json.loads(text.split('id="lineage-config">', 1)[1].split("</script>", 1)[0])
    assert config["graph"].startswith("/lineage/graph.json?env=prod&select=%2Bfct_orders")
    assert config["models"] == "/models/prod/"
    assert (
        "<script" not in page.headers["content-security-policy"]
        and "script-src 'self';" in page.headers["content-security-policy"]
    )
    assert client.get("/static/lineage.js").status_code == 200
    # the default environment is prod (it has a manifest); dev has none yet: an empty state
    assert 'option value="prod" selected' in client.get("/lineage").text
    empty = client.get("/lineage", params={"env": "dev"})
    assert empty.status_code == 200 and "No lineage yet" in empty.text
    none = client.get("/lineage", params={"env": "prod", "select": "tag:no_such_tag"})
    assert "The selector matches no node." in none.text
    assert client.get("/lineage", params={"env": "nope"}).status_code == 400


def test_docs_served_sandboxed_with_data_inlined(shop_site):
    client = shop_site["client"]
    index = client.get("/docs")
    assert index.status_code == 200 and 'href="/docs/prod/"' in index.text
    got = client.get("/docs/prod/")
    assert got.status_code == 200, got.text
    csp = got.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;") and "allow-same-origin" not in csp
    scripts = next(d for d in csp.split(";") if d.strip().startswith("script-src")).split()
    # only the page's own inline scripts, by hash: an injected handler or script element is refused
    assert "'unsafe-inline'" not in scripts and any(s.startswith("'sha256-") for s in scripts), csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'self'" in csp
    body = got.text
    assert "MANIFEST.JSON INLINE DATA" not in body and "CATALOG.JSON INLINE DATA" not in body
    assert "<script>alert" not in body  # the description's tag is \u003c-escaped in the inlined JSON
    assert "\\u003cscript>alert('xss')\\u003c/script>" in body
    manifest = client.get("/docs/prod/manifest.json")
    assert manifest.status_code == 200 and manifest.headers["content-security-policy"] == DOCS_CSP.format(scripts="")
    assert manifest.json()["nodes"]["model.shop.fct_orders"]["description"] == EVIL
    assert client.get("/docs/prod").text == body


@pytest.mark.parametrize(
    "path",
    [
        "/docs/prod/../../etc/passwd",
        "/docs/prod/%2e%2e/%2e%2e/etc/passwd",
        "/docs/prod/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/docs/prod/..%2f..%2f..%2fetc%2fpasswd",
        "/docs/prod/%2fetc%2fpasswd",
        "/docs/prod/nothing-here.json",
        "/docs/dev/index.html",
        "/docs/nope/index.html",
    ],
)
def test_docs_traversal_refused(shop_site, path):
    got = shop_site["client"].get(path)
    assert got.status_code == 404, (path, got.status_code)
    assert "root:" not in got.text


def test_description_with_script_escaped_on_our_pages(shop_site):
    client = shop_site["client"]
    page = client.get("/models/prod/model.shop.fct_orders")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<script>alert" not in client.get("/lineage", params={"env": "prod"}).text


def test_freshness_page_shows_store_data(shop_site):
    client, app = shop_site["client"], shop_site["app"]
    rows = app.freshness.latest("prod")
    assert rows, "the production job ran dbt source freshness"
    page = client.get("/freshness")
    assert page.status_code == 200
    for r in rows:
        assert r["source"] in page.text
    assert f"All {len(rows)} sources fresh." in page.text or "stale" in page.text
    assert f'href="/runs/{shop_site["run"].id}"' in page.text
    assert "No freshness checks yet" in client.get("/freshness", params={"environment": "dev"}).text
    assert client.get("/freshness", params={"environment": "nope"}).status_code == 400


def test_monitors_page_failing_first(shop_site):
    client, app = shop_site["client"], shop_site["app"]
    states = {m["name"]: m["status"] for m in app.monitors.list()}
    assert states == {"orders_volume": "ok", "orders_not_negative": "alert"}, states
    page = client.get("/monitors").text
    assert "1</strong> of 2 monitors failing" in page
    assert page.index("orders_not_negative") < page.index("orders_volume")
    assert "st-alert" in page and "st-ok" in page


def test_empty_states_without_runs(ui_app):
    with TestClient(create_site(ui_app), base_url="http://127.0.0.1", headers=HTML) as client:
        assert "No lineage yet" in client.get("/lineage").text
        assert "No docs yet" in client.get("/docs").text
        assert client.get("/docs/prod/").status_code == 404
        assert "No freshness checks yet" in client.get("/freshness").text
        assert "No monitors" in client.get("/monitors").text
        g = client.get("/lineage/graph.json", params={"env": "prod"}, headers={"Accept": "application/json"}).json()
        assert g["nodes"] == [] and g["run_id"] is None
