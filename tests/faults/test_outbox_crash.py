"""The outbox under SIGKILL (issue 8, item 2), with real ``dockyard`` processes and dbt.

* A worker slot dies right after a run's final transition (``run_finished``), with no
  scheduler running: the final event is in the store; a scheduler started afterwards
  delivers it.
* A scheduler dies during dispatch (``event_delivered``: the sink has the event, the cursor
  has not moved): the restarted scheduler delivers everything, the event delivered twice
  carries the same idempotency key both times.

Afterwards every event of the outbox is in the JSON-lines sink: none lost.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
import yaml

from dockyard.app import App

from .conftest import QUICK, wait_for, worker_slots


def _configure(c) -> Path:
    doc = {
        "runner": {"inherit_env": ["MINI_DB_PATH"], "grace_seconds": 3},
        "server": {"heartbeat_seconds": 1, "lost_after_seconds": 5, "poll_seconds": 0.1, "shutdown_grace_seconds": 0},
        "environments": {"dev": {"target": "dev"}},
        "jobs": [{"name": "quick", "environment": "dev", "commands": [QUICK], "allow_overlap": True}],
        "events": {"sinks": [{"type": "jsonl", "path": "events.jsonl"}], "foreground_wait_seconds": 0},
    }
    c.configure([], text=yaml.safe_dump(doc, sort_keys=False))
    return c.path / "events.jsonl"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _all_delivered(c, log: Path):
    wanted = {e.key: e for e in c.store.outbox.events_after(0, limit=100000)}
    got = _lines(log)
    return (wanted, got) if wanted and set(wanted) <= {g["key"] for g in got} else None


def _check(wanted: dict, got: list[dict]) -> Counter:
    """None lost, nothing made up, and a duplicate is the same event (same key, same content)."""
    assert {g["key"] for g in got} == set(wanted)
    for line in got:
        event = wanted[line["key"]]
        assert (line["id"], line["type"], line["run_id"], line["payload"]) == (
            event.id,
            event.type.value,
            event.run_id,
            event.payload,
        )
    return Counter(g["key"] for g in got)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkill_between_the_final_transition_and_the_dispatch(cluster):
    c = cluster
    log = _configure(c)
    app = App.open(c.config, c.store_url)
    app.sync()
    crashing = c.start("worker", env={"DOCKYARD_CRASH_AT": "run_finished"}, name="worker-crashing")
    slot = wait_for(lambda: worker_slots(crashing), 30, "the worker's slot")[0]
    first = app.triggers.enqueue("quick", trigger="manual").run_id
    wait_for(lambda: slot not in worker_slots(crashing), 60, "the slot to die at run_finished", interval=0.05)
    c.kill(crashing)
    run = c.store.runs.get_run(first)
    assert run.status.value == "success"
    assert [e.type.value for e in c.store.outbox.run_events(first)][
        -1
    ] == "run.succeeded"  # written with the transition
    assert not log.exists()  # nothing delivered: no scheduler ran
    c.start("scheduler")
    c.start("worker", name="worker-restarted")
    more = [app.triggers.enqueue("quick", trigger="manual", coalesce=False).run_id for _ in range(2)]
    wait_for(lambda: all(c.store.runs.get_run(i).status.is_final for i in more), 60, "the later runs")
    wanted, got = wait_for(lambda: _all_delivered(c, log), 30, "every event in the sink")
    counts = _check(wanted, got)
    assert counts[f"run:{first}:final"] >= 1
    for run_id in [first, *more]:
        assert f"run:{run_id}:final" in counts
    app.close()


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_during_dispatch(cluster_factory, pg_database_factory, backend):
    c = cluster_factory(pg_database_factory() if backend == "postgresql" else None)
    log = _configure(c)
    app = App.open(c.config, c.store_url)
    app.sync()
    worker = c.start("worker")
    ids = [app.triggers.enqueue("quick", trigger="manual", coalesce=False).run_id for _ in range(3)]
    wait_for(lambda: all(c.store.runs.get_run(i).status.is_final for i in ids), 90, "the runs to end")
    c.stop(worker)
    crashing = c.start("scheduler", env={"DOCKYARD_CRASH_AT": "sink_event_delivered"}, name="scheduler-crashing")
    assert crashing.popen.wait(30) == -signal.SIGKILL, crashing.text()[-3000:]
    delivered = _lines(log)
    assert len(delivered) == 1  # the sink got the first event; the cursor did not move
    assert c.store.outbox.cursor("jsonl").last_id == 0
    c.start("scheduler", name="scheduler-restarted")  # takes the cursor over once its lease expires
    wanted, got = wait_for(lambda: _all_delivered(c, log), 40, "every event in the sink")
    counts = _check(wanted, got)
    assert counts[delivered[0]["key"]] == 2, counts  # delivered again, with the same key
    assert all(n == 1 for key, n in counts.items() if key != delivered[0]["key"])
    for run_id in ids:
        assert counts[f"run:{run_id}:final"] == 1
    app.close()
