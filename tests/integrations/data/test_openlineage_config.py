"""The openlineage: block of dockyard.yml (no dbt): the consumer exists only when enabled, the
API key is a reference, bad keys are located errors."""

from __future__ import annotations

import pytest

from dockyard.app import App
from dockyard.app.consumers import builtin_sinks
from dockyard.errors import ConfigError

BASE = """\
version: 1
environments:
  dev: {target: dev}
"""


def _app(tmp_path, extra: str) -> App:
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    (tmp_path / "dockyard.yml").write_text(BASE + extra)
    return App.open(tmp_path / "dockyard.yml")


def test_the_consumer_runs_only_when_enabled(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    app = _app(tmp_path, "")
    try:
        assert "dockyard.openlineage" not in {s.name for s in builtin_sinks(app)}
    finally:
        app.close()
    app = _app(tmp_path, "openlineage: {enabled: true, url: 'http://127.0.0.1:9', namespace: n}\n")
    try:
        [sink] = [s for s in builtin_sinks(app) if s.name == "dockyard.openlineage"]
        assert sink.settings.timeout_seconds == 2.0 and sink.settings.retries == 1
        assert sink.budget_s == pytest.approx(8.0)  # 80 % of events.delivery_timeout_seconds
    finally:
        app.close()


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ("openlineage: {enabled: true, api_key: abc123}", "must be a reference"),
        ("openlineage: {enabled: true, url: 'ftp://x'}", "openlineage.url"),
        ("openlineage: {enabled: true, transport: kafka}", "transport"),
        ("openlineage: {timeout_seconds: 0}", "timeout_seconds"),
    ],
)
def test_bad_blocks_are_config_errors(tmp_path, monkeypatch, block, words):
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        _app(tmp_path, block + "\n")
    assert words in str(info.value)
