"""The Reloader of a long-running process: checking a changed dockyard.yml never blocks the
caller (a probe process parses it), a bad file keeps the config in force and is reported,
restoring it clears the error, a valid change is applied, a probe over its time is killed."""

from __future__ import annotations

import time

import pytest
from tests.config.test_yaml_bounds import BOMB

from dockyard.app import App
from dockyard.server.processes import Reloader  # where the scheduler and the workers take it from


def _until(reloader, what, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        applied = reloader.check()
        assert time.monotonic() - started < 0.5, "check() blocked"
        if what(applied):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; error={reloader.error!r}")


@pytest.mark.timeout(90)
def test_reload_is_checked_by_a_probe_and_never_blocks(shop, monkeypatch):
    config = shop / "dockyard.yml"
    good = config.read_text()
    app = App.open(config)
    jobs = [j.name for j in app.config.jobs]
    reloader = Reloader(app)
    assert reloader.check() is False and reloader.error is None

    config.write_text(good + BOMB.replace("environments:\n  dev:\n    target: dev\n", ""))
    _until(reloader, lambda applied: reloader.error)
    assert "alias bomb" in reloader.error and "dockyard.yml:" in reloader.error
    assert app.config_error == reloader.error and [j.name for j in app.config.jobs] == jobs

    config.write_text(good)  # restored: cleared at once, nothing to load
    assert reloader.check() is False and reloader.error is None and app.config_error is None

    config.write_text(good + "  - name: added\n    environment: dev\n    commands: ['dbt deps']\n")
    _until(reloader, lambda applied: applied)
    assert "added" in [j.name for j in app.config.jobs] and reloader.error is None

    from dockyard.config import reload

    monkeypatch.setattr(reload, "PROBE_TIMEOUT_S", 0.05)  # a parser that hangs: its probe is killed
    config.write_text(good + "  - name: slow\n    environment: dev\n    commands: ['dbt deps']\n")
    _until(reloader, lambda applied: reloader.error)
    assert "took more than" in reloader.error and "slow" not in [j.name for j in app.config.jobs]
    app.close()
