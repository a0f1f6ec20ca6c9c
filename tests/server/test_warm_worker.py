"""Warm runs in a real ``dockyard worker``: the second run of a job starts its steps from the
manifest its slot's warm parent holds (no parse); an environment with ``warm: false`` parses
every step; editing a model between runs re-parses once, and the run builds the edit."""

from __future__ import annotations

import duckdb
import pytest
from tests.faults.conftest import children, wait_for

from dockyard.app import App

JOBS = [
    {"name": "build", "environment": "dev", "commands": ["dbt run --select stg_numbers numbers_summary", "dbt ls"]},
    {"name": "cold", "environment": "cold", "commands": ["dbt run --select stg_numbers"]},
]
ENVS = {"dev": {"target": "dev"}, "cold": {"target": "dev", "warm": False}}


def _logs(app: App, run_id: int) -> str:
    return app.runs.logs(run_id)


@pytest.mark.slow
def test_a_worker_runs_warm_and_re_parses_after_an_edit(cluster):
    c = cluster
    c.configure(JOBS, environments=ENVS)
    app = App.open(c.config, c.store_url)
    app.sync()
    worker = c.start("worker", "--concurrency", "1")

    def run(job: str) -> int:
        run_id = app.triggers.enqueue(job, trigger="manual").run_id
        final = wait_for(
            lambda: (r := app.store.runs.get_run(run_id)).status.is_final and r, 180, f"run {run_id} of {job}"
        )
        assert final.status.value == "success", _logs(app, run_id)
        return run_id

    first = run("build")
    assert "[dockyard] warm: parsing (no manifest in memory yet)" in _logs(app, first)
    slot = children(worker.pid)[0]
    warm_parents = children(slot)  # the warm parent (and multiprocessing's resource tracker)
    second = run("build")
    text = _logs(app, second)
    assert text.count("[dockyard] warm: no parse") == 2 and "warm: parsing" not in text, text
    assert children(slot) == warm_parents  # the same warm parent served it

    cold = run("cold")
    assert "[dockyard] warm" not in _logs(app, cold)

    (c.path / "models" / "numbers_summary.sql").write_text(
        (c.path / "models" / "numbers_summary.sql").read_text().replace("select", "select 42 as warm_marker,", 1)
    )
    third = run("build")
    text = _logs(app, third)
    assert "warm: parsing (models/numbers_summary.sql changed)" in text, text
    assert text.count("[dockyard] warm: no parse") == 1  # the second step reuses the new parse
    with duckdb.connect(str(c.root / "db" / "mini.duckdb"), read_only=True) as con:
        columns = [row[0] for row in con.execute("describe numbers_summary").fetchall()]
    assert "warm_marker" in columns
