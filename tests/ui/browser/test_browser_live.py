"""Live pages in Chromium against the real server's workers: a run triggered from its job page
is followed live on its run page to the end (the status changes without a reload), and a
running run is cancelled with the run page's button."""

from __future__ import annotations

import re

import pytest
from tests.ui.browser.browsing import shoot, wait_run

from dockyard.ui.templating import duration

pytestmark = pytest.mark.slow

MARK = "() => { window.dockyardNoReload = true; }"
SAME_DOCUMENT = "() => window.dockyardNoReload === true"
LIVE_STATUS = "() => (document.getElementById('live-status') || {}).textContent || ''"


def trigger_from_job_page(page, job_id: int, cause: str) -> int:
    page.goto(f"/jobs/{job_id}")
    form = page.locator("#trigger form")
    form.locator("input[name=cause]").fill(cause)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_trigger_from_the_job_page_and_watch_it_finish_live(admin_page, ui_server, watch):
    page = admin_page
    job = ui_server.job_ids["API smoke"]
    page.goto("/jobs")
    shoot(page, "jobs")
    run_id = trigger_from_job_page(page, job, "from the browser test")
    with ui_server.app() as app:
        run = app.runs.get(run_id)
    assert run.job_id == job and run.cause == "from the browser test" and run.trigger == "manual"
    page.evaluate(MARK)
    first = page.evaluate(LIVE_STATUS)
    assert any(s in first for s in ("queued", "starting", "running")), first
    # the live part moves (status, nodes done, the log) while this document stays
    page.wait_for_function(
        "() => window.dockyardNoReload === true && (document.getElementById('live-log') || {}).textContent.length > 0",
        timeout=120_000,
    )
    seen = page.evaluate(LIVE_STATUS)
    assert any(s in seen for s in ("running", "success")), seen
    assert page.evaluate(SAME_DOCUMENT)
    shoot(page, "run-live")
    final = wait_run(ui_server, run_id)
    assert final.status.value == "success"
    # once final the page shows the finished run (it reloads itself once, at the end)
    page.wait_for_function("() => !document.getElementById('live')", timeout=30_000)
    assert "success" in page.locator("h1").inner_text()
    assert page.locator("#run-duration").inner_text() == duration(final.duration_s)
    assert page.locator("table#nodes tbody tr").count() == len(final.executed_nodes)
    assert watch.clean(), watch


def test_cancel_a_running_run_from_its_page(admin_page, ui_server, watch):
    page = admin_page
    run_id = trigger_from_job_page(page, ui_server.job_ids["UI slow"], "to be cancelled")
    page.wait_for_function(
        "() => (document.getElementById('live-status') || {}).textContent.includes('running')", timeout=120_000
    )
    with ui_server.app() as app:
        assert app.runs.get(run_id).status.value == "running"
    page.locator("form[action$='/cancel'] button").click()
    page.wait_for_url(re.compile(rf"/runs/{run_id}$"))
    final = wait_run(ui_server, run_id, timeout=120)
    assert final.status.value == "cancelled"
    assert sum(1 for s in final.steps if s.status.value == "success") < len(final.steps) - 1
    page.wait_for_function("() => !document.getElementById('live')", timeout=30_000)
    assert "cancelled" in page.locator("h1").inner_text()
    assert page.locator("form[action$='/cancel']").count() == 0
    assert page.locator("form[action$='/rerun'] button").is_visible()
    shoot(page, "run-cancelled")
    assert watch.clean(), watch
