"""The run page's node table at more than a page of nodes: paged, sorted and filtered on the
server (query parameters: deep links), the fragment ``GET /runs/{id}/nodes`` runpage.js swaps
in, failed nodes first, and the page's reads (no ``adapter_response``, no compiled-only nodes).

The run is written through the store (no dbt): 250 executed nodes of a ``dbt build`` step (3
failed) and a ``docs generate`` step that only compiled."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.app import App
from dockyard.app.run_nodes import PAGE_ROWS, node_table
from dockyard.domain import COMPILED, NodeResult, RunStatus
from dockyard.ui.site import create_site

ROOT = Path(__file__).resolve().parents[2]
HTML = {"Accept": "text/html"}
NODES = 250
FAILED = {7, 120, 249}
ROW = re.compile(r'<tr data-uid="([^"]+)" data-step="(\d+)" data-status="([^"]+)">')


def node(i: int, t0: datetime) -> NodeResult:
    failed = i in FAILED
    return NodeResult(
        unique_id=f"model.shop.node_{i:03d}",
        name=f"node_{i:03d}",
        resource_type="model",
        status="error" if failed else "success",
        started_at=t0 + timedelta(seconds=i),
        finished_at=t0 + timedelta(seconds=i + 1 + i % 17),
        execution_time_s=float(1 + i % 17) + i / 1000,
        rows_affected=None if i % 10 == 0 else i * 37 % 1000,
        adapter_response={"_message": "OK", "code": i},
        message=f"Database Error in node_{i:03d} <script>alert({i})</script>" if failed else "OK",
        thread=f"Thread-{i % 4 + 1}",
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-nodes")
    dest = tmp / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOP_DUCKDB_DIR", str(tmp))
    mp.delenv("DOCKYARD_STORE_URL", raising=False)
    app = App.open(dest / "dockyard.yml")
    app.sync()
    job = app.jobs.records()[0]
    run_id = app.store.runs.create_run(
        job.id, job.name, job.environment, ["dbt build", "dbt docs generate"], status=RunStatus.QUEUED
    )
    t0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    app.store.runs.upsert_nodes(run_id, 1, [node(i, t0) for i in range(NODES)])
    compiled = NodeResult(unique_id="model.shop.node_000", name="node_000", resource_type="model", status=COMPILED)
    app.store.runs.upsert_nodes(run_id, 2, [compiled])
    with TestClient(create_site(app), headers=HTML) as client:
        yield app, run_id, client
    app.close()
    mp.undo()


def rows(text: str) -> list[tuple[str, str, str]]:
    return ROW.findall(text)


def get(client, url: str) -> str:
    res = client.get(url)
    assert res.status_code == 200, (url, res.status_code, res.text[:1000])
    return res.text


def test_the_page_reads_only_the_executed_nodes_and_their_shown_columns(big):
    app, run_id, _ = big
    read = app.store.reader.run_pages.run_nodes(run_id)
    stored = app.runs.get(run_id)
    assert [(n.unique_id, n.step_index, n.status) for n in read] == [
        (n.unique_id, n.step_index, n.status) for n in stored.executed_nodes
    ]
    assert len(read) == NODES and all(n.adapter_response is None for n in read)
    assert {n.adapter_response["code"] for n in stored.executed_nodes} == set(range(NODES))  # in the store
    by_id = {n.unique_id: n for n in stored.executed_nodes}
    for n in read:
        full = by_id[n.unique_id]
        shown = (n.started_at, n.finished_at, n.execution_time_s, n.rows_affected, n.message, n.thread)
        assert shown == (
            full.started_at,
            full.finished_at,
            full.execution_time_s,
            full.rows_affected,
            full.message,
            full.thread,
        )


def test_the_first_page_has_the_failed_nodes_first_and_the_counts_of_all(big):
    app, run_id, client = big
    text = get(client, f"/runs/{run_id}")
    shown = rows(text)
    assert len(shown) == PAGE_ROWS
    assert [uid for uid, _, _ in shown[: len(FAILED)]] == [f"model.shop.node_{i:03d}" for i in sorted(FAILED)]
    assert all(status == "success" for _, _, status in shown[len(FAILED) :])
    header = re.search(r'<dd id="node-counts">(.*?)</dd>', text, re.S).group(1)
    assert header.startswith(str(NODES)) and f"{NODES - len(FAILED)} success" in header and "3 error" in header
    assert f"Nodes 1–{PAGE_ROWS} of {NODES}" in text and "page 1 of 3" in text
    assert text.count('class="card failed-node"') == len(FAILED)
    assert "<script>alert(" not in text and "&lt;script&gt;alert(7)" in text
    # the Gantt chart still has every node with times
    assert len(re.findall(r'"k":\d+', re.search(r'id="gantt-data">(.*?)</script>', text, re.S).group(1))) >= NODES


def test_pages_together_hold_every_node_once(big):
    app, run_id, client = big
    seen = []
    for page in (1, 2, 3):
        seen += rows(get(client, f"/runs/{run_id}?page={page}"))
    stored = app.runs.get(run_id).executed_nodes
    assert Counter(seen) == Counter((n.unique_id, str(n.step_index), n.status) for n in stored)
    last = get(client, f"/runs/{run_id}?page=3")
    assert f"Nodes 201–{NODES} of {NODES}" in last and 'rel="next"' not in last and 'rel="prev"' in last
    assert rows(get(client, f"/runs/{run_id}?page=99")) == rows(last)  # past the end: the last page
    assert rows(get(client, f"/runs/{run_id}?page=x")) == rows(get(client, f"/runs/{run_id}"))


def test_sorting_orders_all_nodes_not_only_the_page(big):
    app, run_id, client = big
    stored = app.runs.get(run_id).executed_nodes
    text = get(client, f"/runs/{run_id}?sort=-time")
    times = [float(t) for t in re.findall(r'<td class="num" data-sort="([-\d.]+)">[^<]*</td>\s*<td class="num"', text)]
    assert times == sorted((n.execution_time_s for n in stored), reverse=True)[:PAGE_ROWS]
    assert 'aria-sort="descending"' in text and 'href="?sort=time#nodes-section"' in text  # the next click
    ascending = rows(get(client, f"/runs/{run_id}?sort=node&page=3"))
    assert [uid for uid, _, _ in ascending] == [f"model.shop.node_{i:03d}" for i in range(200, NODES)]
    unknown = rows(get(client, f"/runs/{run_id}?sort=nope"))
    assert unknown == rows(get(client, f"/runs/{run_id}"))


def test_a_deep_link_with_filters_shows_the_matching_nodes(big):
    _, run_id, client = big
    text = get(client, f"/runs/{run_id}?q=NODE_01&sort=-rows")
    matched = [uid for uid, _, _ in rows(text)]
    assert sorted(matched) == [f"model.shop.node_{i:03d}" for i in range(10, 20)]
    assert 'name="q" value="NODE_01"' in text and "of 10 matching" in text
    assert 'href="?q=NODE_01&amp;sort=rows#nodes-section"' in text  # sorts keep the filter
    errors = get(client, f"/runs/{run_id}?status=error")
    assert sorted(uid for uid, _, _ in rows(errors)) == sorted(f"model.shop.node_{i:03d}" for i in FAILED)
    assert '<option value="error" selected>' in errors
    by_message = rows(get(client, f"/runs/{run_id}?q=database%20error"))  # the message, any case
    assert len(by_message) == len(FAILED)
    assert "No node" in get(client, f"/runs/{run_id}?q=nothing-has-this")
    assert len(rows(get(client, f"/runs/{run_id}?status=nope"))) == PAGE_ROWS  # an unknown status: all


def test_the_table_alone_for_runpage_js(big):
    _, run_id, client = big
    res = client.get(f"/runs/{run_id}/nodes?status=success&sort=-time&page=2")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    fragment = res.text
    assert "<html" not in fragment and "<table" in fragment and 'name="sort" value="-time"' in fragment
    assert rows(fragment) == rows(get(client, f"/runs/{run_id}?status=success&sort=-time&page=2"))
    assert client.get("/runs/999999/nodes").status_code == 404


def test_node_table_directly():
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    nodes = [node(i, t0) for i in range(5)]
    table = node_table(1, nodes, {"sort": "-rows", "page": "1"}, per_page=2)
    assert [n.name for n in table.rows] == ["node_004", "node_003"] and table.pages == 3
    assert table.query(page=2) == "sort=-rows&page=2" and table.link(sort=None) == "/runs/1#nodes-section"
    assert (
        table.next_sort("rows") == "rows" and table.next_sort("node") == "node" and table.next_sort("time") == "-time"
    )
    assert node_table(1, [], {}).rows == [] and node_table(1, [], {}).first == 0
