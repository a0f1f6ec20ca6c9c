"""The runs list, run page (Gantt, failed nodes, live part, artifacts, cancel/rerun) and model
page, over ONE real dbt run of a copy of the shop (DuckDB) with a model that fails on purpose
(its error message carries a ``<script>``). Tests share it and run in file order: the
read-only viewer's test creates a token, which turns login on, so it comes last."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.app import App
from dockyard.app.ci_run import write_report
from dockyard.domain import RunStatus
from dockyard.ui.site import create_site
from dockyard.ui.templating import duration

ROOT = Path(__file__).resolve().parents[2]
JOB = "UI build"
BROKEN = "model.shop.broken_model"
HTML = {"Accept": "text/html"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-runs")
    dest = tmp / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (tmp / "db").mkdir()
    (dest / "models" / "marts" / "broken_model.sql").write_text(
        "select customer_id from {{ ref('stg_customers') }} where \"<script>alert(1)</script>\" = 1\n"
    )
    config = (dest / "dockyard.yml").read_text()
    config = config.replace(
        "jobs:\n", f'jobs:\n  - name: "{JOB}"\n    environment: dev\n    commands: ["dbt seed", "dbt build"]\n', 1
    )
    (dest / "dockyard.yml").write_text(config)
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOP_DUCKDB_DIR", str(tmp / "db"))
    mp.delenv("DOCKYARD_STORE_URL", raising=False)
    mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    app = App.open(dest / "dockyard.yml")
    app.sync()
    run = app.run_job(JOB)
    yield app, run
    app.close()
    mp.undo()


@pytest.fixture(scope="module")
def client(shop_app):
    app, _ = shop_app
    with TestClient(create_site(app), headers=HTML) as c:
        yield c


def page(client, url: str, **kw) -> str:
    res = client.get(url, **kw)
    assert res.status_code == 200, (url, res.status_code, res.text[:2000])
    return res.text


def json_block(text: str, block: str):
    found = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', text, re.S)
    assert found, block
    return json.loads(found.group(1))


def csrf(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def test_the_run_failed_on_the_broken_model(shop_app):
    app, run = shop_app
    assert run.status == RunStatus.ERROR
    stored = app.runs.get(run.id)
    assert any(n.unique_id == BROKEN and n.status == "error" for n in stored.nodes)


def test_the_run_page_shows_the_stores_numbers(shop_app, client):
    app, run = shop_app
    stored = app.runs.get(run.id)
    text = page(client, f"/runs/{run.id}")
    executed = stored.executed_nodes
    rows = re.findall(r'<tr data-uid="([^"]+)" data-step="(\d+)" data-status="([^"]+)">', text)
    assert sorted(rows) == sorted((n.unique_id, str(n.step_index), n.status) for n in executed)
    counts = {}
    for n in executed:
        counts[n.status] = counts.get(n.status, 0) + 1
    header = re.search(r'<dd id="node-counts">(.*?)</dd>', text, re.S).group(1)
    assert header.startswith(str(len(executed)))
    for status, n in counts.items():
        assert f"{n} {status}" in header
    # steps with their status and duration
    for s in stored.steps:
        assert f'<tr data-step="{s.index}">' in text
    assert "st-error" in text and "Rerun from failure" in text and "Cancel run" not in text
    # durations: each node's time is the store's
    for n in executed:
        if n.execution_time_s is not None:
            uid = re.escape(n.unique_id)
            row = re.search(rf'<tr data-uid="{uid}" data-step="{n.step_index}".*?</tr>', text, re.S).group(0)
            assert f'data-sort="{n.execution_time_s}"' in row


def test_the_gantt_has_every_node_and_a_real_critical_path(shop_app, client):
    app, run = shop_app
    stored = app.runs.get(run.id)
    data = json_block(page(client, f"/runs/{run.id}"), "gantt-data")
    timed = [n for n in stored.executed_nodes if n.started_at and n.finished_at]
    assert len(data["bars"]) == len(timed) > 10
    assert {(b["step"], b["id"]) for b in data["bars"]} == {(n.step_index, n.unique_id) for n in timed}
    assert data["peak"] >= 1 and data["lanes"] >= 1 and data["critical"]
    manifest = json.loads(app.runs.artifact_path(run.id, f"step-{stored.steps[-1].index}/manifest.json").read_text())
    bars = {b["k"]: b for b in data["bars"]}
    assert [x["c"] for x in data["links"]] == data["critical"][1:]
    for link in data["links"]:
        parent, child = bars[link["p"]], bars[link["c"]]
        assert parent["e"] <= child["s"] + 0.05
        if link["kind"] == "dependency":
            assert parent["id"] in manifest["nodes"][child["id"]]["depends_on"]["nodes"]
            assert parent["step"] == child["step"]
        else:
            assert parent["step"] < child["step"]
    # the last node of the path is the one that finished last
    assert bars[data["critical"][-1]]["e"] == max(b["e"] for b in data["bars"])


def test_failed_nodes_come_first_with_their_error_and_sql_escaped(shop_app, client):
    app, run = shop_app
    text = page(client, f"/runs/{run.id}")
    assert "<script>alert(1)</script>" not in text  # escaped everywhere
    failed = text.index('<section class="card failed-node">')
    assert BROKEN in text[failed : failed + 500]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text[failed:]
    sql = re.search(r'<pre class="sql">(.*?)</pre>', text, re.S).group(1)
    assert "stg_customers" in html.unescape(sql)
    first_row = re.search(r'<tr data-uid="([^"]+)" data-step', text)
    assert first_row.group(1) == BROKEN  # the node table starts with the failure
    # the gantt block cannot be ended by a message either
    assert "</script>" not in json.dumps(json_block(text, "gantt-data"))


def test_artifacts_download_through_the_session_and_traversal_is_refused(shop_app, client):
    app, run = shop_app
    text = page(client, f"/runs/{run.id}")
    links = re.findall(rf'href="(/runs/{run.id}/artifacts/[^"]+)"', text)
    assert any(link.endswith("manifest.json") for link in links)
    res = client.get(links[0])
    assert res.status_code == 200 and res.headers["content-security-policy"].startswith("sandbox")
    assert "attachment" in res.headers["content-disposition"]
    assert client.get(f"/runs/{run.id}/artifacts/../../../dockyard.yml").status_code == 404
    assert client.get(f"/runs/{run.id}/artifacts/%2e%2e/%2e%2e/dockyard.yml").status_code == 404


def test_runs_list_filters_and_pagination(shop_app, client):
    app, run = shop_app
    text = page(client, "/runs")
    assert f'href="/runs/{run.id}"' in text
    assert f'href="/runs/{run.id}"' in page(client, "/runs?status=error&environment=dev")
    assert f'href="/runs/{run.id}"' not in page(client, "/runs?status=success")
    assert "No runs match these filters." in page(client, "/runs?environment=prod")
    assert f'href="/runs/{run.id}"' in page(client, f"/runs?job={run.job_id}&since=2000-01-01")
    assert "No runs match" in page(client, "/runs?until=2000-01-01")
    assert client.get("/runs?pr=abc").status_code == 400


def test_model_page(shop_app, client):
    app, run = shop_app
    text = page(client, "/models/dev/model.shop.fct_orders")
    stored = [n for n in app.runs.get(run.id).nodes if n.unique_id == "model.shop.fct_orders" and n.executed]
    assert f'href="/runs/{run.id}"' in text
    assert f'data-sort="{stored[0].execution_time_s}">{duration(stored[0].execution_time_s)}<' in text
    assert "model.shop.stg_orders" in text  # upstream
    assert "model.shop.customer_ltv" in text  # downstream
    assert 'id="tests"' in text and "unique_fct_orders_order_id" in text
    assert "select=%2Bfct_orders%2B" in text  # lineage link
    assert 'id="compiled-sql"' in text
    assert "Not enough runs for a trend yet." in text  # one run so far
    broken = page(client, f"/models/dev/{BROKEN}")
    assert "<script>alert(1)</script>" not in broken and "st-error" in broken
    assert "not run in this environment" in page(client, "/models/prod/model.shop.fct_orders")
    assert client.get("/models/nowhere/model.shop.fct_orders").status_code == 404


def test_ci_run_shows_its_selection(shop_app, client):
    app, run = shop_app
    job = app.jobs.get(JOB).record
    run_id = app.store.runs.create_run(
        job.id, JOB, "ci", ["dbt build"], overrides={"github_pull_request_id": 42}, status=RunStatus.QUEUED
    )
    folder = app.runs.folder(run_id)
    write_report(
        folder,
        {
            "pr": 42,
            "schema": "ci_pr_42",
            "base_run_id": run.id,
            "base_environment": "prod",
            "base_source": "run",
            "selected": [{"unique_id": "model.shop.fct_orders", "resource_type": "model", "reason": "body changed"}],
        },
    )
    text = page(client, f"/runs/{run_id}")
    assert "Pull request</dt><dd>#42" in text
    assert "body changed" in text and "ci_pr_42" in text
    assert "This run has no node results." in text  # empty states
    assert "No node has both a start and an end time yet." in text
    data = page(client, f"/runs/{run_id}/live?log_offset=0", headers={"Accept": "application/json"})
    assert json.loads(data)["nodes_total"] == 0
    # the runs list finds it by its pull request, by branch it does not have
    assert f'href="/runs/{run_id}"' in page(client, "/runs?pr=42")
    assert f'href="/runs/{run_id}"' not in page(client, "/runs?pr=4")
    assert f'href="/runs/{run.id}"' not in page(client, "/runs?pr=42")
    assert "No runs match" in page(client, "/runs?branch=main")
    # overrides rewritten: the pull-request column follows them
    app.store.runs.set_run_fields(run_id, overrides={"gitlab_merge_request_id": 4})
    assert f'href="/runs/{run_id}"' in page(client, "/runs?pr=4")
    assert f'href="/runs/{run_id}"' not in page(client, "/runs?pr=42")


def test_live_endpoint_and_cancel_with_and_without_csrf(shop_app, client):
    app, run = shop_app
    queued = app.triggers.enqueue(JOB, trigger="manual").run_id
    live = client.get(f"/runs/{queued}/live?log_offset=-1", headers={"Accept": "application/json"}).json()
    assert live["status"] == "queued" and live["final"] is False and live["log"] == ""
    text = page(client, f"/runs/{queued}")
    assert 'id="live-log"' in text and "Cancel run" in text
    assert json_block(text, "run-data") == {"id": queued, "final": False, "status": "queued"}
    refused = client.post(f"/runs/{queued}/cancel", data={"csrf_token": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.post(f"/runs/{queued}/cancel", data={}, follow_redirects=False).status_code == 403
    assert app.runs.summary(queued).status == RunStatus.QUEUED
    done = client.post(f"/runs/{queued}/cancel", data={"csrf_token": csrf(text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{queued}"
    assert app.runs.summary(queued).status == RunStatus.CANCELLED
    # a final run's whole log is readable from any offset
    full = client.get(f"/runs/{run.id}/live?log_offset=0", headers={"Accept": "application/json"}).json()
    assert full["final"] and full["log"].startswith("== step 1: dbt seed") and full["log_offset"] == full["log_size"]
    part = client.get(f"/runs/{run.id}/live?log_offset=10", headers={"Accept": "application/json"}).json()
    assert full["log"][10:] == part["log"]


def test_rerun_from_failure(shop_app, client):
    app, run = shop_app
    text = page(client, f"/runs/{run.id}")
    assert client.post(f"/runs/{run.id}/rerun", data={"csrf_token": "x"}).status_code == 403
    res = client.post(f"/runs/{run.id}/rerun", data={"csrf_token": csrf(text)}, follow_redirects=False)
    assert res.status_code == 303
    new_id = int(res.headers["location"].rsplit("/", 1)[1])
    new = app.runs.summary(new_id)
    assert new.retry_of == run.id and new.trigger == "retry" and new.status == RunStatus.QUEUED
    app.runs.cancel(new_id)


def test_a_read_only_viewer_sees_no_buttons_and_cannot_act(shop_app, client):
    app, run = shop_app
    _, read = app.store.tokens.create_token("ui-read", "read")
    auth = {"Authorization": f"Token {read}", "Accept": "text/html"}
    text = page(client, f"/runs/{run.id}", headers=auth)
    assert "Rerun from failure" not in text and 'action="/runs/' not in text
    assert client.post(f"/runs/{run.id}/rerun", headers=auth).status_code == 403
    # without any credentials now that tokens exist: to the login page
    res = client.get(f"/runs/{run.id}", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].startswith("/login?next=")
    assert client.get(f"/runs/{run.id}/live", headers={"Accept": "application/json"}).status_code == 401


def test_runs_list_query_walks_an_index(shop_app):
    app, _ = shop_app
    from sqlalchemy import text as sql_text

    from dockyard.store.run_pages import RunFilter

    reader = app.store.reader.run_pages
    engine = app.store.engine
    for f, walk in (
        (RunFilter(), "SCAN runs"),  # the primary key's order: newest first, stops after the page
        (RunFilter(statuses=["error"]), "USING INDEX ix_runs_status"),
        (RunFilter(job_ids=[1]), "USING INDEX ix_runs_job_id_id"),
        (RunFilter(pr=42), "USING INDEX ix_runs_pr_number_id"),  # a column, not the overrides' JSON
    ):
        query = reader.list_query(f, limit=25).compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.execute(sql_text(f"EXPLAIN QUERY PLAN {query}")))
        assert walk in plan and "TEMP B-TREE" not in plan, plan  # never a sort of every run
    # the count stops at its cap
    count = str(reader.count_query(RunFilter(), cap=10).compile(engine, compile_kwargs={"literal_binds": True}))
    assert "LIMIT 11" in count
    found, total, more = reader.list_page(RunFilter(), limit=1, cap=2)
    assert len(found) == 1 and total == 2 and more  # four runs by now: "2+"
    assert reader.list_page(RunFilter(), limit=1, cap=100)[1:] == (app.runs.count(), False)
