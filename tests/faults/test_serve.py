"""``dockyard serve`` as an operator meets it: SIGTERM with a run in progress (cancelled,
requeued, completed after the restart; a queued run survives), and an invalid dockyard.yml
written while it runs (the last good jobs keep firing; the error is shown with its location)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest
import yaml

from dockyard.app import App

from .conftest import DOCKYARD, free_port, wait_for

# slow (DuckDB work for ~30 s) only while the environment says so
SOMETIMES_SLOW = """\
{{ config(materialized='table') }}
{% if env_var('MINI_SLOW', '0') == '1' %}
select count(*) as n, sum(a.range * b.range % 7) as s from range(100000000) a, range(200) b
{% else %}
select 1 as n, 0 as s
{% endif %}
"""


def _serve(c, port: int):
    proc = c.start("serve", "--port", str(port), "--workers", "1", name=f"serve-{port}")
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200,
        60,
        "the API to answer",
    )
    return proc


def _jobs(slow: str):
    return dict(
        jobs=[
            {"name": "slow", "environment": "dev", "commands": ["dbt run --select sometimes_slow"]},
            {"name": "quick", "environment": "dev", "commands": ["dbt deps"]},
        ],
        server={"shutdown_grace_seconds": 1, "heartbeat_seconds": 0.5, "lost_after_seconds": 5},
        environments={"dev": {"target": "dev", "env": {"MINI_SLOW": slow}}},
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_requeues_the_running_run_and_keeps_the_queue(cluster):
    c = cluster
    (c.path / "models" / "sometimes_slow.sql").write_text(SOMETIMES_SLOW)
    c.configure(**_jobs("1"))
    app = App.open(c.config, c.store_url)
    app.sync()
    serve = _serve(c, free_port())
    slow = app.triggers.enqueue("slow", trigger="manual").run_id
    quick = app.triggers.enqueue("quick", trigger="manual").run_id  # waits: one worker slot
    wait_for(lambda: any(n.status == "started" for n in app.store.runs.get_run(slow).nodes), 60, "the slow model")
    epoch = app.store.runs.get_run(slow).lease_epoch
    started = time.monotonic()
    assert c.stop(serve, timeout=60) == 0, serve.text()[-3000:]
    took = time.monotonic() - started
    assert took < 1 + 3 + 15, f"serve took {took:.1f} s to stop"  # grace, dbt's SIGINT grace, slack
    requeued, waiting = app.store.runs.get_run(slow), app.store.runs.get_run(quick)
    assert requeued.status.value == "queued" and requeued.lease_epoch == epoch + 1, requeued
    assert all(s.status.value == "queued" for s in requeued.steps)
    assert waiting.status.value == "queued"
    assert "shutdown grace over, cancelling and requeueing" in serve.text()
    wait_for(lambda: not c.leftovers(), 15, "every process of the stopped server to end")

    c.configure(**_jobs("0"))  # the restarted server finds the model quick
    serve = _serve(c, free_port())
    wait_for(
        lambda: app.store.runs.get_run(slow).status.is_final and app.store.runs.get_run(quick).status.is_final,
        90,
        "both runs to finish after the restart",
    )
    assert app.store.runs.get_run(slow).status.value == "success"
    assert app.store.runs.get_run(quick).status.value == "success"
    assert len(app.store.runs.list_runs(limit=None)) == 2
    assert c.stop(serve) == 0
    wait_for(lambda: not c.leftovers(), 15, "every process to end")
    app.close()


def _status(c, config) -> dict:
    out = subprocess.run(
        [*DOCKYARD, "status", "--json", "--config", str(config)],
        cwd=c.path,
        env=c.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_an_invalid_config_keeps_the_last_good_jobs(cluster):
    c = cluster
    good = {
        "jobs": [
            {
                "name": "every",
                "environment": "dev",
                "schedule": {"cron": "* * * * *"},
                "commands": ["dbt deps"],
                "allow_overlap": True,
                "catchup": "all",
            }
        ],
        "server": {"heartbeat_seconds": 0.5, "lost_after_seconds": 3600},
    }
    c.configure(**good)
    c.warp("2026-01-05T00:00:30Z", 60)  # one fire a second
    app = App.open(c.config, c.store_url)
    app.sync()
    serve = _serve(c, free_port())
    wait_for(lambda: len(c.cron_fires()) >= 2, 30, "fires")
    last_good = c.path / "last-good.yml"
    shutil.copy(c.config, last_good)
    jobs_before = [(j.id, j.name, j.cron, j.definition) for j in app.store.jobs.list_jobs()]

    broken = c.config.read_text().replace("'* * * * *'", "'61 * * * *'")
    assert broken != c.config.read_text()
    c.configure(good["jobs"], text=broken)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "61 * * * *" in text)

    def error_shown():
        procs = _status(c, last_good)["processes"]
        return [
            p["info"]["config_error"]
            for p in procs
            if p["kind"] == "scheduler" and not p.get("stopped_at") and (p.get("info") or {}).get("config_error")
        ]

    errors = wait_for(error_shown, 20, "the scheduler to report the invalid file")
    assert f"dockyard.yml:{line}" in errors[0] and "cron" in errors[0], errors
    fired = len(c.cron_fires())
    wait_for(lambda: len(c.cron_fires()) >= fired + 3, 20, "the last good schedule to keep firing")

    # deploy refuses the invalid file, with its location, and changes nothing
    deploy = c.cli("deploy", check=None)
    assert deploy.returncode != 0
    assert f"dockyard.yml:{line}" in deploy.stdout + deploy.stderr, deploy.stdout + deploy.stderr
    assert [(j.id, j.name, j.cron, j.definition) for j in app.store.jobs.list_jobs()] == jobs_before

    # a valid file again (with one more job): picked up, the error cleared
    fixed = yaml.safe_load(last_good.read_text())
    fixed["jobs"].append({"name": "more", "environment": "dev", "commands": ["dbt deps"]})
    c.configure(fixed["jobs"], text=yaml.safe_dump(fixed, sort_keys=False))
    wait_for(lambda: "more" in {j.name for j in app.store.jobs.list_jobs()}, 20, "the reload")
    wait_for(lambda: not error_shown(), 20, "the error to clear")
    assert c.stop(serve) == 0
    app.close()
