"""The browser tests' harness: ONE real ``dockyard serve`` for the session, driven by a real
headless Chromium through Playwright.

The server runs on a copy of examples/shop (plain HTTP on a free loopback port, two worker
slots) after one real foreground production run (``dockyard run "Daily Production Run"``), with
an admin and a read-scope token from ``dockyard tokens create`` (and, for the tests that ask,
a read-scope user from ``dockyard users create``). The copy adds a quick job ("API smoke"), a slow one ("UI slow", many
steps, to cancel) and a model description with ``<script>`` in it (``XSS``).

Chromium is ``/usr/bin/chromium`` (``apt-get install -y chromium``; never ``playwright install``).
Without it the tests skip, except in CI (``CI`` or ``DOCKYARD_CI=1``) where they fail.
Screenshots of every page go to ``test-artifacts/ui/`` (kept, ignored by git);
``DOCKYARD_UI_DOCS_IMAGES=1`` also writes the documented ones to ``docs/images/ui-<page>.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.api.served import free_port
from tests.ui.browser.browsing import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    PROD_JOB,
    USER,
    UiServer,
    Watch,
    dockyard,
    in_ci,
    last_line,
    login_with_token,
    prepare_shop,
    wait_healthy,
)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory) -> Iterator[UiServer]:
    tmp = tmp_path_factory.mktemp("ui-serve")
    shop = prepare_shop(tmp)
    env = {k: v for k, v in os.environ.items() if k != "DOCKYARD_STORE_URL"}
    env.update(SHOP_DUCKDB_DIR=str(tmp / "db"), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    prod = dockyard(env, shop, "run", PROD_JOB, "--quiet", "--json")
    assert prod.returncode == 0, prod.stdout[-3000:] + prod.stderr[-3000:]
    prod_run = json.loads(prod.stdout)["id"]
    admin = last_line(dockyard(env, shop, "tokens", "create", "ui-admin", "--scope", "admin"))
    read = last_line(dockyard(env, shop, "tokens", "create", "ui-read", "--scope", "read"))
    port = free_port()
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--workers", "2", "--config", str(shop / "dockyard.yml")],
            cwd=shop,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = UiServer(f"http://127.0.0.1:{port}", shop, shop / "dockyard.yml", env, admin, read, prod_run, proc, log)
    try:
        wait_healthy(served)
        with served.app() as app:
            served.job_ids = app.job_ids()
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert admin not in log.read_text() and read not in log.read_text(), "a token reached the server's log"


@pytest.fixture(scope="session")
def read_user(ui_server) -> tuple[str, str]:
    """A read-scope user made by ``dockyard users create`` (name, password)."""
    user = dockyard(
        ui_server.env,
        ui_server.shop,
        "users",
        "create",
        USER,
        "--scope",
        "read",
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert user.returncode == 0, user.stdout + user.stderr
    return USER, PASSWORD


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if in_ci():
            pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser, ui_server, watch, request):
    """A new browser context (cookies, storage) per test, at 1280 x 900."""
    ctx = browser.new_context(base_url=ui_server.url, viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    ctx.set_default_timeout(15_000)

    def on_page(page):
        def dialog(d):
            watch.dialogs.append(d.message)
            d.dismiss()

        def console(msg):
            if msg.type != "error":
                return
            if "Content Security Policy" in msg.text:
                watch.csp.append(msg.text)
            elif msg.text.startswith("Failed to load resource"):
                watch.loads.append(f"{msg.text} ({msg.location.get('url')})")
            else:
                watch.errors.append(msg.text)

        page.on("dialog", dialog)
        page.on("console", console)
        page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))

    ctx.on("page", on_page)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def admin_page(page, ui_server):
    login_with_token(page, ui_server.admin_token)
    return page


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.exists() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"UI screenshots: {ARTIFACTS}")
