"""The run page's node table in Chromium at more than a page of nodes: the pager, a sort and
the filter box swap the table in place (the same document) and move the address; the
address is a deep link that opens the same rows; the counts shown are the store's.

The run (no job, environment ``dev``, final) is written straight into the server's store:
240 nodes of one step, 40 of them skipped, so no worker picks it up and no alert fires."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.domain import NodeResult

pytestmark = pytest.mark.slow

NODES = 240
MARK = "() => { window.dockyardSameDocument = true; }"
SAME_DOCUMENT = "() => window.dockyardSameDocument === true"
ROWS = "() => [...document.querySelectorAll('#nodes tbody tr')].map(r => [r.dataset.uid, r.dataset.status])"


@pytest.fixture(scope="module")
def big_run(ui_server) -> int:
    from dockyard.store.tables import run_steps, runs

    t0 = datetime.now(UTC) - timedelta(hours=1)
    with ui_server.app() as app:
        with app.store.db.write() as conn:
            run_id = conn.execute(
                runs.insert().returning(runs.c.id),
                {
                    "job_name": "UI many nodes",
                    "environment": "dev",
                    "status": "success",
                    "status_code": 10,
                    "trigger": "manual",
                    "created_at": t0,
                    "updated_at": t0 + timedelta(seconds=NODES + 30),
                    "queued_at": t0,
                    "started_at": t0,
                    "finished_at": t0 + timedelta(seconds=NODES + 30),
                    "lease_epoch": 1,
                },
            ).scalar_one()
            conn.execute(
                run_steps.insert(),
                {"run_id": run_id, "index": 1, "command": "dbt build", "status": "success", "exit_code": 0},
            )
        nodes = [
            NodeResult(
                unique_id=f"model.shop.many_{i:03d}",
                name=f"many_{i:03d}",
                resource_type="model",
                status="skipped" if i % 6 == 0 else "success",
                started_at=t0 + timedelta(seconds=i),
                finished_at=t0 + timedelta(seconds=i + 1 + i % 13),
                execution_time_s=float(1 + i % 13),
                rows_affected=i,
                message="OK",
            )
            for i in range(NODES)
        ]
        app.store.runs.upsert_nodes(run_id, 1, nodes)
    return int(run_id)


def test_the_node_table_pages_sorts_and_filters_in_place(admin_page, ui_server, big_run, watch):
    page = admin_page
    page.goto(f"/runs/{big_run}")
    with ui_server.app() as app:
        stored = app.runs.get(big_run).executed_nodes
    assert len(stored) == NODES
    header = page.locator("#node-counts").inner_text()
    for status, count in Counter(n.status for n in stored).items():
        assert f"{count} {status}" in header, header
    assert page.locator("#nodes tbody tr").count() == 100
    assert f"Nodes 1–100 of {NODES}" in page.locator("#nodes-summary").inner_text()
    page.evaluate(MARK)
    # the pages, fetched in place: together every node of the store, once
    seen = page.evaluate(ROWS)
    for number in (2, 3):
        page.locator("nav.pager a[rel=next]").click()
        page.wait_for_url(re.compile(rf"/runs/{big_run}\?page={number}#nodes-section$"))
        page.locator("#nodes-summary", has_text=f"Nodes {(number - 1) * 100 + 1}–").wait_for()
        seen += page.evaluate(ROWS)
    assert Counter(map(tuple, seen)) == Counter((n.unique_id, n.status) for n in stored)
    assert page.evaluate(SAME_DOCUMENT)
    # a sort orders all nodes, not only the page
    page.locator("#nodes thead a.sort", has_text="Time").click()
    page.locator("#nodes thead th[aria-sort=descending]", has_text="Time").wait_for()
    times = page.evaluate(
        "() => [...document.querySelectorAll('#nodes tbody tr td:nth-child(6)')].map(td => Number(td.dataset.sort))"
    )
    assert times == sorted((n.execution_time_s for n in stored), reverse=True)[:100]
    assert "sort=-time" in page.url and "page=" not in page.url
    # typing filters (the sort kept); the status list narrows it
    page.locator("#nodes-form input[name=q]").fill("many_1")
    page.wait_for_url(re.compile(r"q=many_1"))
    page.locator("#nodes-summary", has_text="matching").wait_for()
    wanted = {n.unique_id for n in stored if "many_1" in n.name}
    assert {uid for uid, _ in page.evaluate(ROWS)} == wanted
    assert "sort=-time" in page.url
    page.locator("#nodes-form select[name=status]").select_option("skipped")
    page.wait_for_url(re.compile(r"status=skipped"))
    page.locator("#nodes-summary", has_text="with status skipped").wait_for()
    skipped = {n.unique_id for n in stored if "many_1" in n.name and n.status == "skipped"}
    assert {uid for uid, _ in page.evaluate(ROWS)} == skipped
    assert page.evaluate(SAME_DOCUMENT)
    # the address is a deep link: a fresh load shows the same rows and the same form
    deep = page.url
    filtered = page.evaluate(ROWS)
    page.goto(deep)
    assert page.evaluate(ROWS) == filtered
    assert page.locator("#nodes-form input[name=q]").input_value() == "many_1"
    assert page.locator("#nodes-form select[name=status]").input_value() == "skipped"
    # "show all" clears the filters, the form follows
    page.locator("#nodes-summary a", has_text="show all").click()
    page.locator("#nodes-summary", has_text=f"of {NODES}.").wait_for()
    assert page.locator("#nodes-form input[name=q]").input_value() == ""
    assert watch.clean(), watch
