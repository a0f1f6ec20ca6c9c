"""``dockyard ci`` end to end: the real CLI on a small DuckDB project (tests/slim's), a prod
build as the base, a pull request built slim, its comment created once and then updated and
its status set on the fake git host; ``dockyard ci cleanup``; the pull_request sink."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from tests.ci.conftest import TOKEN
from tests.ci.fake_git_host import FakeGitHost
from tests.e2e.conftest import SLOW_MODEL
from tests.slim.conftest import PROJECT, write_project

from dockyard.app import App
from dockyard.app.delivery import deliver_run_events

SHA1 = "1111111111111111111111111111111111111111"
SHA2 = "2222222222222222222222222222222222222222"
MARK = "<!-- dockyard-ci:ci -->"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def host():
    with FakeGitHost(token=TOKEN) as host:
        yield host


@pytest.fixture(scope="module")
def project(tmp_path_factory, host):
    root = tmp_path_factory.mktemp("cishop") / "project"
    config = PROJECT["dockyard.yml"].replace(
        "ci:\n          environment: ci\n          base: prod\n",
        "ci:\n          environment: ci\n          base: prod\n"
        "          run_url: https://dockyard.example/api/v1/runs/{run_id}\n"
        f"          github: {{api_url: '{host.github_url}'}}\n",
    )
    assert config != PROJECT["dockyard.yml"]
    write_project(root, {**PROJECT, "dockyard.yml": config})
    env = {**os.environ, "SLIM_DB": str(root.parent / "warehouse.duckdb"), "GITHUB_TOKEN": TOKEN}
    env.pop("DOCKYARD_STORE_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dockyard", *args, "--config", str(root / "dockyard.yml")],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    cli.env = env
    base = cli("run", "Prod", "--json")
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
    return root, cli


def test_ci_builds_posts_once_then_updates_in_place(project, host):
    root, cli = project
    fct = root / "models/marts/fct_orders.sql"
    original = fct.read_text()
    fct.write_text(original.replace("as amount", "as amount, 1 as one"))
    summary = root / "summary.md"
    first = cli("ci", "--pr", "1", "--sha", SHA1, "--json", "--summary", str(summary), "--github-repo", "acme/shop")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = json.loads(first.stdout)
    assert out["status"] == "success" and out["schema"] == "dbt_ci_pr_1"
    reasons = {s["unique_id"]: s["reason"] for s in out["selected"]}
    assert reasons["model.slimshop.fct_orders"] == "body changed"
    assert reasons["model.slimshop.customer_totals"] == "downstream of model.slimshop.fct_orders"
    assert "model.slimshop.stg_orders" not in reasons  # upstream: deferred to prod
    text = summary.read_text()
    assert text.startswith(MARK) and "passed" in text and "fct\\_orders" in text and "body changed" in text
    comments = host.comments[("acme/shop", 1)]
    assert len(comments) == 1 and comments[0]["body"] == text
    assert [s["state"] for s in host.statuses[SHA1]] == ["pending", "success"]
    assert host.statuses[SHA1][-1]["target_url"] == f"https://dockyard.example/api/v1/runs/{out['id']}"
    assert TOKEN not in first.stdout + first.stderr

    # the next push breaks a test: the same comment is edited, the status fails, the exit code is 1
    fct.write_text(
        original.replace(
            "from {{ ref('stg_orders') }} o", "from {{ ref('stg_orders') }} o, (select 1 union all select 2)"
        )
    )
    try:
        second = cli("ci", "--pr", "1", "--sha", SHA2, "--summary", str(summary), "--github-repo", "acme/shop")
    finally:
        fct.write_text(original)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    comments = host.comments[("acme/shop", 1)]
    assert len(comments) == 1 and "failed" in comments[0]["body"].splitlines()[1]
    assert "unique\\_fct\\_orders\\_id" in comments[0]["body"]  # the failing test, listed first
    assert [s["state"] for s in host.statuses[SHA2]] == ["pending", "failure"]
    assert sum(1 for r in host.writes() if r.method == "POST" and r.path.endswith("/comments")) == 1
    assert "Run " in second.stdout and "model.slimshop.fct_orders" in second.stdout

    # the pull_request sink posts the same run again from its events: the same comment is edited
    (root / "sink.yml").write_text(
        (root / "dockyard.yml").read_text().replace("github: {", "github: {repo: acme/shop, ")
        + "events:\n  sinks: [{type: pull_request}]\n"
    )
    os.environ["GITHUB_TOKEN"] = TOKEN
    app = App.open(root / "sink.yml", f"sqlite:///{root / '.dockyard' / 'dockyard.db'}")
    try:
        before = len(host.writes())
        runs = app.runs.list(limit=5)
        ci_run = next(r for r in runs if r.environment == "ci")
        assert deliver_run_events(app, ci_run.id, wait_s=20)
        assert len(host.comments[("acme/shop", 1)]) == 1
        assert host.statuses[SHA2][-1]["state"] == "failure" and len(host.writes()) > before
        prod = next(r for r in app.runs.list(limit=10) if r.environment == "prod")
        before = len(host.requests)
        assert deliver_run_events(app, prod.id, wait_s=20)  # not a CI run: nothing posted
        assert len(host.requests) == before
    finally:
        app.close()
        os.environ.pop("GITHUB_TOKEN", None)


def schemas(root) -> set[str]:
    with duckdb.connect(str(root.parent / "warehouse.duckdb"), read_only=True) as con:
        return {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}


def test_ci_cleanup_drops_the_pr_schema(project):
    root, cli = project
    if "dbt_ci_pr_1" not in schemas(root):  # run alone: build a change of the PR first
        fct = root / "models/marts/fct_orders.sql"
        original = fct.read_text()
        fct.write_text(original.replace("as amount", "as amount, 2 as two"))
        try:
            assert cli("ci", "--pr", "1").returncode == 0
        finally:
            fct.write_text(original)
    assert "dbt_ci_pr_1" in schemas(root)
    dropped = cli("ci", "cleanup", "--pr", "1", "--json")
    assert dropped.returncode == 0, dropped.stderr
    assert "dbt_ci_pr_1" in json.loads(dropped.stdout)["dropped"]
    left = schemas(root)
    assert "dbt_ci_pr_1" not in left and "prod" in left


def test_ci_needs_a_pr(project):
    root, cli = project
    proc = cli("ci")
    assert proc.returncode == 1 and "--pr" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_cancels_the_build(project):
    """The CI system cancelling the job (SIGTERM, or Ctrl-C) stops dbt: the run ends cancelled, exit 130."""
    root, cli = project
    slow = root / "models/marts/slow_pr_model.sql"
    slow.write_text(SLOW_MODEL)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "ci", "--pr", "3", "--config", str(root / "dockyard.yml")],
            cwd=root,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "slow_pr_model" in line and "START" in line or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        slow.unlink()
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    [last] = json.loads(cli("runs", "--json", "--limit", "1").stdout)
    assert last["status"] == "cancelled" and last["environment"] == "ci"
