"""The runs list and the run page in Chromium show the store's numbers: the production run's
node counts, statuses and durations, its steps, and a Gantt chart with one bar per timed node
and its critical path highlighted."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.ui.browser.browsing import PROD_JOB, shoot

from dockyard.ui.templating import duration

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prod(ui_server):
    with ui_server.app() as app:
        return app.runs.get(ui_server.prod_run)


def test_runs_list_shows_the_store_runs(admin_page, ui_server, prod, watch):
    page = admin_page
    page.goto("/runs")
    with ui_server.app() as app:
        listed, total = app.runs.search(limit=25)
    rows = page.locator("table#runs tbody tr")
    assert rows.count() == min(25, total) > 0
    first = rows.first
    assert first.locator("td").nth(0).inner_text().startswith(f"#{listed[0].id}")
    assert listed[0].status.value in first.locator("td").nth(1).inner_text()
    prod_row = page.locator("table#runs tbody tr", has=page.locator(f'a[href="/runs/{prod.id}"]'))
    assert PROD_JOB in prod_row.inner_text() and "success" in prod_row.inner_text()
    assert prod_row.locator("td").nth(7).inner_text() == duration(prod.duration_s)
    shoot(page, "runs")
    page.goto(f"/runs?status=success&job={prod.job_id}")  # a deep link: the filters are the URL
    assert page.locator("select[name=status]").input_value() == "success"
    assert all("success" in t for t in page.locator("table#runs tbody tr td:nth-child(2)").all_inner_texts())
    assert watch.clean(), watch


def test_run_page_numbers_equal_the_store(admin_page, prod, watch):
    page = admin_page
    page.goto(f"/runs/{prod.id}")
    nodes = prod.executed_nodes
    assert nodes, "the production run executed no node"
    # counts: every executed node has a row, with its status; the header counts them by status
    rows = page.locator("table#nodes tbody tr")
    assert len(nodes) <= 100, "the shop's run fits one page of the node table (test_browser_nodes pages)"
    assert rows.count() == len(nodes)
    assert f"of {len(nodes)}." in page.locator("#nodes-summary").inner_text()
    shown = Counter(
        (r["uid"], int(r["step"]), r["status"])
        for r in rows.evaluate_all(
            "rs => rs.map(r => ({uid: r.dataset.uid, step: r.dataset.step, status: r.dataset.status}))"
        )
    )
    assert shown == Counter((n.unique_id, n.step_index, n.status) for n in nodes)
    header = page.locator("#node-counts").inner_text()
    assert header.startswith(str(len(nodes)))
    for status, count in Counter(n.status for n in nodes).items():
        assert f"{count} {status}" in header, header
    # durations: the run's, each step's, each node's time (the store's seconds, formatted)
    assert page.locator("#run-duration").inner_text() == duration(prod.duration_s)
    steps = page.locator("table#steps tbody tr")
    assert steps.count() == len(prod.steps)
    for step in prod.steps:
        row = page.locator(f'table#steps tbody tr[data-step="{step.index}"]')
        assert step.command in row.inner_text()
        assert step.status.value in row.locator(".step-status").inner_text()
        took = round((step.finished_at - step.started_at).total_seconds(), 3)  # the page's milliseconds
        assert row.locator(".step-duration").inner_text() == duration(took)
    node = max(nodes, key=lambda n: n.execution_time_s or 0)
    row = page.locator(f'table#nodes tbody tr[data-uid="{node.unique_id}"][data-step="{node.step_index}"]')
    assert row.locator("td").nth(5).inner_text() == duration(node.execution_time_s)
    assert "success" in page.locator("h1").inner_text()
    shoot(page, "run")
    assert watch.clean(), watch


def test_gantt_has_a_bar_per_node_and_the_critical_path(admin_page, prod, watch):
    page = admin_page
    page.goto(f"/runs/{prod.id}")
    timed = [n for n in prod.executed_nodes if n.started_at and n.finished_at]
    bars = page.locator("#gantt svg rect.bar")
    bars.first.wait_for()
    assert bars.count() == len(timed)
    titles = bars.evaluate_all("bs => bs.map(b => b.querySelector('title').textContent)")
    assert sorted(t.split(" (")[0] for t in titles) == sorted(n.name for n in timed)
    critical = page.locator("#gantt svg rect.bar.crit")
    listed = page.locator("#critical-path li")
    assert critical.count() >= 2 and critical.count() == listed.count()
    # the critical path ends with the node that finished last
    last = max(timed, key=lambda n: n.finished_at)
    crit_names = critical.evaluate_all("bs => bs.map(b => b.querySelector('title').textContent.split(' (')[0])")
    assert last.name in crit_names
    # highlighted: the critical bars are drawn differently from the others
    normal = page.locator("#gantt svg rect.bar:not(.crit)").first
    style = "b => [getComputedStyle(b).stroke, getComputedStyle(b).strokeWidth, getComputedStyle(b).opacity].join()"
    assert critical.first.evaluate(style) != normal.evaluate(style)
    peak = int(page.locator("#gantt-peak").inner_text())
    assert 1 <= peak <= max(len({n.thread for n in timed}), 1)
    page.locator("#gantt svg").focus()
    page.keyboard.press("ArrowRight")
    assert "·" in page.locator(".gantt-info").inner_text()
    shoot(page, "run-gantt", page.locator("#gantt"))
    assert watch.clean(), watch
