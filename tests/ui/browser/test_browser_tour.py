"""Every page of the navigation (and a model page) opens in Chromium with no script error,
no Content-Security-Policy violation and no failed request, and is kept as a screenshot."""

from __future__ import annotations

import pytest
from tests.ui.browser.browsing import shoot

pytestmark = pytest.mark.slow

PAGES = {
    "dashboard": "/",
    "runs": "/runs",
    "jobs": "/jobs",
    "lineage": "/lineage?env=prod",
    "environments": "/environments",
    "freshness": "/freshness",
    "monitors": "/monitors",
    "workers": "/workers",
    "model": "/models/prod/model.shop.fct_orders",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_opens_cleanly(admin_page, ui_server, watch, name):
    page = admin_page
    response = page.goto(PAGES[name])
    assert response.status == 200, f"{PAGES[name]}: {response.status}"
    page.wait_for_load_state("networkidle")
    nav = page.locator("header nav a[aria-current=page]")
    if name != "model":
        assert nav.count() == 1, f"{name}: the navigation does not mark the page"
    assert page.locator("h1").count() >= 1
    shoot(page, name)
    assert watch.clean(), watch


def test_job_page(admin_page, ui_server, watch):
    page = admin_page
    job = ui_server.job_ids["Daily Production Run"]
    page.goto(f"/jobs/{job}")
    assert page.locator("h1").inner_text() == "Daily Production Run"
    with ui_server.app() as app:
        total = app.runs.count(job=job)
    assert page.locator("table.sortable tbody tr").count() == total
    shoot(page, "job")
    assert watch.clean(), watch
