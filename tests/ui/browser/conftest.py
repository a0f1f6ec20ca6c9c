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
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from tests.api.served import copy_shop, free_port

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DOCS_IMAGES = ROOT / "docs" / "images"
CHROMIUM = Path(os.environ.get("DOCKYARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
PROD_JOB = "Daily Production Run"
SLOW_STEPS = 40
USER, PASSWORD = "viewer", "a long read-only password 7"
# a model description a hostile contributor could write: none of it may run on any page
XSS = (
    "Customers <script>window.dockyardXss = 'script'; alert('script')</script>"
    "<img src=x onerror=\"window.dockyardXss = 'img'; alert('img')\"> end."
)
UI_JOBS = f"""
  - name: "UI slow"
    environment: dev
    commands: {json.dumps(["dbt seed --select raw_customers"] + ["dbt run --select stg_customers"] * SLOW_STEPS)}
"""


def in_ci() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("DOCKYARD_CI") == "1"


@dataclass
class UiServer:
    url: str
    shop: Path
    config: Path
    env: dict
    admin_token: str
    read_token: str
    prod_run: int
    proc: subprocess.Popen
    log: Path
    job_ids: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def app(self) -> Iterator:
        """The server's store read through ``App`` (what the tests compare the pages with)."""
        from dockyard.app import App

        app = App.open(self.config)
        try:
            yield app
        finally:
            app.close()

    def api(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {token or self.admin_token}"}
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)


def dockyard(server_env: dict, shop: Path, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``dockyard ARGS`` in the shop, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(shop / "dockyard.yml")],
        cwd=shop,
        env=server_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def prepare_shop(tmp: Path) -> Path:
    shop = copy_shop(tmp)
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + UI_JOBS)
    staging = shop / "models" / "staging" / "_staging.yml"
    text = staging.read_text()
    marker = "description: Cleaned customers, one row per customer."
    assert marker in text, "examples/shop changed: update the XSS description's anchor"
    staging.write_text(text.replace(marker, "description: " + json.dumps(XSS)))
    return shop


def last_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1].strip()


def wait_healthy(served: UiServer, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError("dockyard serve exited: " + served.log.read_text()[-3000:])
        try:
            if requests.get(served.url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"dockyard serve did not answer in {timeout:.0f} s: " + served.log.read_text()[-3000:])


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
        ui_server.env, ui_server.shop, "users", "create", USER, "--scope", "read", input=f"{PASSWORD}\n{PASSWORD}\n"
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


@dataclass
class Watch:
    """What a page did that it must not: dialogs, CSP violations, script errors, failed requests."""

    dialogs: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not (self.dialogs or self.csp or self.errors)


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
            if msg.type == "error":
                (watch.csp if "Content Security Policy" in msg.text else watch.errors).append(msg.text)

        page.on("dialog", dialog)
        page.on("console", console)
        page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))

    ctx.on("page", on_page)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


def login_with_token(page, token: str, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    form = page.locator("form", has=page.locator("input[name=token]"))
    form.locator("input[name=token]").fill(token)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(re.escape(next_path) + r"(\?.*)?$"))


def login_with_password(page, name: str, password: str, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    form = page.locator("form", has=page.locator("input[name=password]"))
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(re.escape(next_path) + r"(\?.*)?$"))


@pytest.fixture
def admin_page(page, ui_server):
    login_with_token(page, ui_server.admin_token)
    return page


_printed: list[bool] = []


def shoot(page, name: str) -> Path:
    """A full-page screenshot into test-artifacts/ui/<name>.png (and docs/images/ui-<name>.png
    with DOCKYARD_UI_DOCS_IMAGES=1)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("DOCKYARD_UI_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"ui-{name}.png"), full_page=False)
    if not _printed:
        _printed.append(True)
        print(f"\nscreenshots: {ARTIFACTS}")
    return path


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.exists() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"UI screenshots: {ARTIFACTS}")


def wait_run(served: UiServer, run_id: int, timeout: float = 240):
    """Wait until the run is final in the store; its record (with steps and nodes)."""
    deadline = time.monotonic() + timeout
    with served.app() as app:
        while time.monotonic() < deadline:
            run = app.runs.get(run_id)
            if run.status.is_final:
                return run
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout:.0f} s")
