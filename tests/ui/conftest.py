"""Web UI fixtures: an App over a copy of the shop (real SQLite store), the site of
``create_site`` over it, and browser-like clients (``Accept: text/html``). Runs are recorded
straight into the store (``seed_run``, as a worker would have), so no dbt runs here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import DAILY, seed_run  # noqa: F401 - re-exported for the UI tests

from dockyard.app import App
from dockyard.ui.site import create_site

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF_RE.search(page)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
def ui_app(shop: Path):
    app = App.open(shop / "dockyard.yml")
    app.sync()
    yield app
    app.close()


@pytest.fixture
def site(ui_app: App):
    return create_site(ui_app)


def browser(site, base_url: str = "http://127.0.0.1") -> TestClient:
    """A client that behaves like a browser: HTML wanted, cookies kept, no redirects followed."""
    return TestClient(site, base_url=base_url, headers=HTML, follow_redirects=False)


@pytest.fixture
def client(site):
    with browser(site) as c:
        yield c
