"""R3 (b): a worker paused (SIGSTOP) past its lease is fenced.

The reaper ends its run (``worker_lost``, the paused worker's dbt process group killed) and
the retry runs on the other worker; after SIGCONT the paused worker's next write is refused
(FencedError), it stops its dbt process, and nothing more is stored for the old attempt.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from dockyard.app import App

from .conftest import alive, wait_for, worker_slots

# slow (a few seconds of DuckDB work) on the first attempt only
SLOW_FIRST = """\
{{ config(materialized='table') }}
{% if env_var('DBT_CLOUD_RUN_REASON', '')[:5] != 'Retry' %}
select count(*) as n, sum(a.range * b.range % 7) as s from range(100000000) a, range(40) b
{% else %}
select 1 as n, 0 as s
{% endif %}
"""


def _snapshot(run):
    return (
        run.status.value,
        run.reason,
        run.lease_epoch,
        sorted((n.unique_id, n.status, n.finished_at) for n in run.nodes),
        sorted((s.index, s.status.value, s.finished_at) for s in run.steps),
        sorted((a.name, a.sha256) for a in run.artifacts),
    )


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_paused_worker_is_fenced(cluster):
    c = cluster
    (c.path / "models" / "slow_first.sql").write_text(SLOW_FIRST)
    c.configure(
        [
            {
                "name": "build",
                "environment": "dev",
                "commands": ["dbt run --select stg_numbers slow_first"],
                "retries": {"max_attempts": 2, "backoff_seconds": 0},
            }
        ],
        # the pause outlasts the lease, not the supervisor's stale-heartbeat bound (which
        # would restart the paused slot: tests/server/test_config_reload.py)
        server={"heartbeat_seconds": 0.5, "lost_after_seconds": 3, "stale_after_seconds": 600},
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    c.start("scheduler")
    workers = [c.start("worker", name=f"worker-{n}") for n in range(2)]
    slots = {w.name: wait_for(lambda w=w: worker_slots(w), 30, "worker slots")[0] for w in workers}
    root = app.triggers.enqueue("build", trigger="manual").run_id

    def slow_started():
        run = app.store.runs.get_run(root)
        return run if any(n.name == "slow_first" and n.status == "started" for n in run.nodes) else None

    run = wait_for(slow_started, 60, "the slow model to start")
    paused = int(run.worker_id.split(":")[1])
    # the slot that runs it (slots are children of their worker; one may have been restarted
    # since the start, so look its worker up by parent pid)
    paused_worker = next(w for w in workers if paused in worker_slots(w))
    slots[paused_worker.name] = paused
    pgid = run.pgid
    assert pgid and alive(pgid)
    other = next(w for w in workers if w is not paused_worker)
    os.kill(paused, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        lost = wait_for(lambda: (r := app.store.runs.get_run(root)).status.is_final and r, 30, "the reaper")
        assert (lost.status.value, lost.reason) == ("error", "worker_lost")
        # the reaper killed the paused worker's dbt process group (same host)
        wait_for(lambda: not alive(pgid), 10, "the old dbt process to die")
        retry = wait_for(
            lambda: next(
                (r for r in app.store.runs.list_runs(limit=None) if r.retry_of == root and r.status.is_final), None
            ),
            60,
            "the retry to finish",
        )
        assert retry.status.value == "success" and retry.attempt == 2
        assert int(retry.worker_id.split(":")[1]) in worker_slots(other), "the retry ran on the paused worker"
        before = _snapshot(app.store.runs.get_run(root))
        # hold the pause past twice the lease
        time.sleep(max(0.0, 2 * 3 - (time.monotonic() - stopped_at)))
    finally:
        os.kill(paused, signal.SIGCONT)
    # the old worker notices within a heartbeat (+1 s): its next write or heartbeat is refused
    fenced = ("no longer owned by lease epoch", "lease lost")
    wait_for(lambda: any(f in paused_worker.text() for f in fenced), 1.5 + 5, "the old worker to be fenced")
    time.sleep(1.5)
    after = app.store.runs.get_run(root)
    assert _snapshot(after) == before, "the fenced worker wrote to the old attempt"
    assert alive(paused), "the fenced slot should carry on with other work"
    # one success in the end, its node results from the new attempt only
    attempts = [r for r in app.store.runs.list_runs(limit=None) if r.id == root or r.retry_of == root]
    assert [r.status.value for r in attempts].count("success") == 1
    new = app.store.runs.get_run(retry.id)
    # the retry re-ran what the old attempt had not recorded as done (slow_first, and
    # stg_numbers too when the pause came before its result was written)
    assert "slow_first" in {n.name for n in new.nodes} <= {"slow_first", "stg_numbers"}
    assert all(n.status == "success" for n in new.nodes)
    assert not any(n.status == "success" and n.name == "slow_first" for n in after.nodes)
    app.close()
