"""Helpers of the browser tests (the fixtures are in conftest.py): the served shop, logging
in, screenshots, waiting for a run, what a page must not do."""

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

import requests
from tests.api.served import copy_shop

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
# a model that fails with markup in its error message (DuckDB echoes the table's name)
XSS_MODEL = """{{ config(enabled=var('ui_xss', false)) }}
select * from "<img src=x onerror=alert('message')><script>alert('message')</script>"
"""
UI_JOBS = f"""
  - name: "UI slow"
    environment: dev
    commands: {json.dumps(["dbt seed --select raw_customers"] + ["dbt run --select stg_customers"] * SLOW_STEPS)}
  - name: "UI xss"
    environment: dev
    commands: ["dbt run --select ui_xss --vars '{{ui_xss: true}}'"]
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
    (shop / "models" / "ui").mkdir()
    (shop / "models" / "ui" / "ui_xss.sql").write_text(XSS_MODEL)
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


@dataclass
class Watch:
    """What a page did that it must not: dialogs, CSP violations, script errors, failed loads."""

    dialogs: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # script errors, console.error
    loads: list[str] = field(default_factory=list)  # responses >= 400 (a test's forged POST too)

    def clean(self) -> bool:
        return not (self.dialogs or self.csp or self.errors or self.loads)

    def nothing_ran(self) -> bool:
        """No dialog, no CSP violation, no script error (failed requests allowed)."""
        return not (self.dialogs or self.csp or self.errors)


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


_printed: list[bool] = []


def shoot(page, name: str, element=None) -> Path:
    """A screenshot into test-artifacts/ui/<name>.png: the whole page, or ``element`` (a
    locator); with DOCKYARD_UI_DOCS_IMAGES=1 also docs/images/ui-<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    target = element if element is not None else page
    extra = {} if element is not None else {"full_page": True}
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path), **extra)
    if os.environ.get("DOCKYARD_UI_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(DOCS_IMAGES / f"ui-{name}.png"))
    if not _printed:
        _printed.append(True)
        print(f"\nscreenshots: {ARTIFACTS}")
    return path


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
