"""JSON that dbt (or a project's Python model printing to dbt's output) hands dockyard is
parsed defensively: a deeply nested line or artifact, or one of the wrong shape, is skipped
with a warning instead of crashing the run (issue 7, items 2/13: the same class of defect
as the unbounded YAML parser)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from dockyard.runner.executor import Executor, _max_loaded_at
from dockyard.runner.invocation import DbtInvocation, LogLine, _Stream

DEEP = "[" * 200_000 + "]" * 200_000


def test_a_deeply_nested_or_misshapen_sources_json_is_ignored(tmp_path):
    path = tmp_path / "sources.json"
    for text in (DEEP, '{"results": ' + DEEP + "}", "[]", '{"results": [1, "x"]}', '{"results": 3}'):
        path.write_text(text)
        assert _max_loaded_at(path) in (None, {}), text[:30]
    path.write_text(json.dumps({"results": [{"unique_id": "source.a.b", "max_loaded_at": "2026-01-01T00:00:00Z"}]}))
    assert _max_loaded_at(path) == {"source.a.b": "2026-01-01T00:00:00"}


def test_a_deeply_nested_artifact_is_not_loaded(tmp_path):
    folder = tmp_path / "artifacts" / "step-0"
    folder.mkdir(parents=True)
    (folder / "run_results.json").write_text('{"results": ' + DEEP + "}")
    fake = SimpleNamespace(plan=SimpleNamespace(run_dir=tmp_path))
    assert Executor._load_copied(fake, 0, "run_results.json") is None


def test_a_deeply_nested_dbt_output_line_is_kept_as_text():
    fake = SimpleNamespace(_pending=[], forward=set())
    raw = ('{"info": {"name": "X"}, "data": ' + DEEP + "}").encode()
    DbtInvocation._emit(fake, _Stream(0, "json", "stdout"), raw)
    assert len(fake._pending) == 1 and isinstance(fake._pending[0], LogLine)
    DbtInvocation._emit(fake, _Stream(0, "events", "events"), raw)  # dropped, never raised
    DbtInvocation._emit(fake, _Stream(0, "events", "events"), b"[1, 2]")
    assert len(fake._pending) == 1
