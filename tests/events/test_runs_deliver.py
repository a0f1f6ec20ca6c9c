"""Real runs (dbt on the mini project, real ``dockyard`` processes) deliver their events: a
foreground ``dockyard run`` with no scheduler, a run that fails, a run that cannot start; a
failing sink is retried and does not delay runs."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import yaml
from tests.faults.conftest import wait_for

from dockyard.app import App
from dockyard.errors import SetupError

UNSET = "DOCKYARD_TEST_EVENTS_UNSET"
QUICK = "dbt debug --config-dir"


def write_config(c, jobs: list[dict], sinks: list[dict], **events) -> None:
    doc = {
        "runner": {"inherit_env": ["MINI_DB_PATH"], "grace_seconds": 3},
        "server": {"heartbeat_seconds": 1, "lost_after_seconds": 5, "poll_seconds": 0.1, "shutdown_grace_seconds": 0},
        "environments": {
            "dev": {"target": "dev"},
            "nosecret": {"target": "dev", "secrets": {"DBT_ENV_SECRET_TOKEN": f"env:{UNSET}"}},
        },
        "jobs": jobs,
        "events": {"sinks": sinks, **events},
    }
    c.configure([], text=yaml.safe_dump(doc, sort_keys=False))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_foreground_run_delivers_its_events_without_a_scheduler(cluster):
    c = cluster
    log = c.path / "events.jsonl"
    write_config(
        c,
        [
            {"name": "ok", "environment": "dev", "commands": ["dbt run --select stg_numbers"]},
            {"name": "bad", "environment": "dev", "commands": ["dbt run --select bad_model --vars '{fail: true}'"]},
            {"name": "cannot-start", "environment": "nosecret", "commands": [QUICK]},
        ],
        [{"type": "jsonl", "path": "events.jsonl"}],
    )
    c.cli("run", "ok")  # no scheduler, no worker: the run itself delivers before it exits
    events = lines(log)
    assert [e["type"] for e in events] == ["run.queued", "run.started", "step.finished", "run.succeeded"]
    run_id = events[-1]["run_id"]
    assert [e["key"] for e in events] == [
        f"run:{run_id}:queued",
        f"run:{run_id}:started:0",
        f"run:{run_id}:step:1:0",
        f"run:{run_id}:final",
    ]
    final = events[-1]["payload"]
    assert final["job"] == "ok" and final["status"] == "success" and final["duration_s"] > 0

    c.cli("run", "bad", check=1)
    events = lines(log)[4:]
    assert [e["type"] for e in events] == ["run.queued", "run.started", "node.failed", "step.finished", "run.failed"]
    final = events[-1]["payload"]
    assert final["reason"] == "step_failed" and final["failed_nodes_total"] == 1
    assert final["failed_nodes"][0]["unique_id"] == "model.mini.bad_model" and final["failed_nodes"][0]["message"]

    # a run that fails before dbt starts (its secret is unset in the process that runs it)
    c.env.pop(UNSET, None)
    app = App.open(c.config, c.store_url)
    try:
        run_id = app.triggers.enqueue("cannot-start", trigger="manual").run_id
        app.store.runs.transition_run(run_id, "starting", expected={"queued"}, worker_id="test")
        with pytest.raises(SetupError):
            app.execute(run_id)
        final = [e for e in app.store.outbox.run_events(run_id) if e.type.is_final]
        assert [(e.type.value, e.payload["reason"]) for e in final] == [("run.failed", "setup_failed")]
        assert UNSET not in json.dumps(final[0].payload)
    finally:
        app.close()


def _durations(c, app, job: str, n: int) -> list[float]:
    ids = [app.triggers.enqueue(job, trigger="manual").run_id for _ in range(n)]
    wait_for(lambda: all(c.store.runs.get_run(i).status.is_final for i in ids), 90, "the runs to end")
    runs = [c.store.runs.get_run(i) for i in ids]
    assert {r.status.value for r in runs} == {"success"}, [(r.id, r.status, r.reason) for r in runs]
    return [(r.finished_at - r.created_at).total_seconds() for r in runs]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_failing_sink_is_retried_with_backoff_and_does_not_delay_runs(cluster):
    c = cluster
    jobs = [{"name": "quick", "environment": "dev", "commands": [QUICK]}]
    good = {"type": "jsonl", "name": "good", "path": "events.jsonl"}
    (c.path / "blocked").write_text("a file, so blocked/events.jsonl cannot be created\n")
    broken = {"type": "jsonl", "name": "broken", "path": "blocked/events.jsonl"}

    write_config(c, jobs, [good])
    procs = [c.start("scheduler"), c.start("worker")]
    app = App.open(c.config, c.store_url)
    try:
        baseline = _durations(c, app, "quick", 4)
        for proc in procs:
            c.stop(proc)
        write_config(c, jobs, [good, broken], max_backoff_seconds=4)
        procs = [c.start("scheduler"), c.start("worker")]
        with_failing = _durations(c, app, "quick", 4)
        # every event reaches the working sink although the other one fails all along
        wanted = {e.key for e in app.store.outbox.events_after(0, limit=10000)}
        wait_for(lambda: wanted <= {e["key"] for e in lines(c.path / "events.jsonl")}, 30, "the good sink's events")
        cursor = wait_for(
            lambda: (cur := app.store.outbox.cursor("broken")) and cur.failures >= 3 and cur, 30, "retries"
        )
        assert cursor.last_id == 0 and "NotADirectoryError" in cursor.last_error
        first = cursor.failures
        time.sleep(5)
        # backing off (1, 2, 4, 4 s...): a handful of attempts, not one per tick (5 s = ~20 ticks)
        assert app.store.outbox.cursor("broken").failures - first <= 3
    finally:
        app.close()
    for proc in procs:
        c.stop(proc)
    print(
        f"run completion: median {statistics.median(baseline):.2f} s without, "
        f"{statistics.median(with_failing):.2f} s with a failing sink"
    )
    assert statistics.median(with_failing) < statistics.median(baseline) + 1.5, (baseline, with_failing)
