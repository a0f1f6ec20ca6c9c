"""``dockyard cancel`` of a foreground ``dockyard run`` (no worker): the run's own loop reads
the cancel flag (every second), stops dbt and ends ``cancelled``; it does not run to the end
after answering ``requested``."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_for


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cancel_stops_a_foreground_run(cluster):
    c = cluster
    c.configure(
        [
            {
                "name": "slow",
                "environment": "dev",
                "commands": ["dbt run --select slow_model --vars '{slow: true}'", "dbt parse"],
            }
        ],
        runner={"grace_seconds": 3},
    )
    proc = c.start("run", "slow")
    wait_for(
        lambda: any(s.status.value == "running" for s in c.store.runs.get_run(1).steps),
        90,
        "the foreground run's first step",
    )
    time.sleep(1)
    answer = c.cli("cancel", "1").stdout
    assert "requested" in answer
    asked = time.monotonic()
    run = wait_for(lambda: (r := c.store.runs.get_run(1)).status.is_final and r, 60, "the run to end")
    assert time.monotonic() - asked < 20, "the run went on after the cancel"
    assert (run.status.value, run.reason) == ("cancelled", "cancelled")
    assert [s.status.value for s in run.steps] == ["cancelled", "skipped"]
    assert proc.popen.wait(30) == 130, proc.text()[-2000:]
