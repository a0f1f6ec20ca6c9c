"""Runs that fail before dbt starts (issue 7, item 6), with real ``dockyard`` processes.

A secret whose variable is unset in the worker, a ``profiles.yml`` that is not valid YAML,
a run folder that cannot be created: the run ends at once ``error`` with reason
``setup_failed`` (not ``worker_lost`` after the lease timeout), the reason is in its log,
and no retry is queued although the job retries everything (``on: any``). In the
foreground, ``dockyard run`` prints ``Error: ...`` and exits 1, without a traceback.
"""

from __future__ import annotations

import time

import pytest

from dockyard.app import App

from .conftest import wait_for

UNSET = "DOCKYARD_TEST_ITEM6_UNSET"
RETRIES = {"max_attempts": 3, "backoff_seconds": 0, "on": "any"}


def _configure(c) -> None:
    broken = c.path / "broken"
    broken.mkdir()
    (broken / "profiles.yml").write_text("mini:\n  target: dev\n  outputs: [unclosed\n")
    c.configure(
        [
            {
                "name": "needs-secret",
                "environment": "nosecret",
                "commands": ["dbt parse", "dbt run"],
                "retries": RETRIES,
            },
            {"name": "bad-profile", "environment": "badprofile", "commands": ["dbt parse"], "retries": RETRIES},
            {"name": "fine", "environment": "dev", "commands": ["dbt parse"]},
        ],
        environments={
            "dev": {"target": "dev"},
            "nosecret": {"target": "dev", "secrets": {"DBT_ENV_SECRET_TOKEN": f"env:{UNSET}"}},
            "badprofile": {"target": "dev", "profiles_dir": "broken"},
        },
        server={"lost_after_seconds": 30},
    )


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_run_that_cannot_start_fails_at_once_and_is_not_retried(cluster):
    c = cluster
    _configure(c)
    c.env.pop(UNSET, None)
    c.start("scheduler")
    c.start("worker")
    app = App.open(c.config, c.store_url)
    ids = {job: app.triggers.enqueue(job, trigger="manual").run_id for job in ("needs-secret", "bad-profile")}
    runs = wait_for(
        lambda: (
            all(c.store.runs.get_run(i).status.is_final for i in ids.values())
            and {j: c.store.runs.get_run(i) for j, i in ids.items()}
        ),
        60,
        "both runs to end",
    )
    for job, run in runs.items():
        stored = c.store.runs.get_run(run.id)
        assert (run.status.value, run.reason) == ("error", "setup_failed"), (job, run.reason, c.diagnostics())
        # at once after the claim, not after lost_after_seconds (30 s)
        assert (run.finished_at - stored.claimed_at).total_seconds() < 10
        assert [s.status.value for s in run.steps][:1] == ["error"]
        assert all(s.status.value == "skipped" for s in run.steps[1:])
    secret_log = c.cli("logs", str(ids["needs-secret"])).stdout
    assert f"secret DBT_ENV_SECRET_TOKEN reads ${UNSET}, which is not set" in secret_log
    profile_log = app.runs.logs(ids["bad-profile"])
    assert "invalid YAML" in profile_log and "profiles.yml" in profile_log
    app.close()
    time.sleep(2)  # the scheduler's next ticks (retries of missed runs) queue nothing either
    assert sorted(r.id for r in c.all_runs()) == sorted(ids.values())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_foreground_run_prints_the_reason_when_the_run_folder_cannot_be_created(cluster):
    c = cluster
    _configure(c)
    state = c.path / ".dockyard"
    state.mkdir(exist_ok=True)
    (state / "runs").write_text("a file where the run folders go")
    result = c.cli("run", "fine", check=1)
    assert "Error: run 1 cannot write its files" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    run = c.store.runs.get_run(1)
    assert (run.status.value, run.reason) == ("error", "setup_failed")
    assert [s.status.value for s in run.steps] == ["error"]
