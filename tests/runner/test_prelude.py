"""A step with a prelude (fork mode): dbt parses once, the prelude reads that parse in the
forked child, and the step runs with the parsed manifest; a prelude that raises stops the
step before dbt runs anything. dbt's parses are counted by their ``StateCheckVarsHash``
event, which dbt fires once per parse of a project (dbt/parser/manifest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.runner.fork import parse_argv
from dockyard.runner.invocation import DbtInvocation

from .conftest import FIXTURES, base_env
from .test_invocation import args_for, collect

PARSE_EVENT = "StateCheckVarsHash"


def test_parse_argv_keeps_what_changes_the_parse():
    args = [
        "build",
        "--select",
        "state:modified+",
        "--vars",
        "{day: 1}",
        "--target",
        "ci",
        "--profiles-dir",
        "/p",
        "--project-dir=/proj",
        "--target-path",
        "/t",
        "--threads",
        "4",
        "--state",
        "/s",
        "--defer",
        "--favor-state",
        "--no-partial-parse",
        "--log-level-file",
        "none",
    ]
    assert parse_argv(args) == [
        "parse",
        "--vars",
        "{day: 1}",
        "--target",
        "ci",
        "--profiles-dir",
        "/p",
        "--project-dir=/proj",
        "--target-path",
        "/t",
        "--no-partial-parse",
        "--log-level-file",
        "none",
    ]


def test_a_prelude_needs_fork_mode():
    with pytest.raises(ValueError, match="fork mode only"):
        DbtInvocation(["run"], project_dir="/", env={}, mode="subprocess", prelude=lambda target: None)


def _invocation(tmp_path: Path, prelude, *args: str) -> tuple[DbtInvocation, list[str], list]:
    project = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", project)
    inv = DbtInvocation(
        args_for(project, tmp_path, *args),
        project_dir=project,
        env=base_env(tmp_path),
        mode="fork",
        forward={"NodeFinished", PARSE_EVENT},
        prelude=prelude,
    )
    inv.start()
    with inv:
        lines, events = collect(inv)
    return inv, lines, events


@pytest.mark.slow
def test_one_parse_then_the_prelude_then_the_step(tmp_path):
    seen = tmp_path / "prelude.json"

    def prelude(target: Path) -> None:  # runs in the child: what the parse wrote, before dbt runs
        nodes = json.loads((target / "manifest.json").read_text())["nodes"]
        seen.write_text(json.dumps({"nodes": sorted(nodes), "results": (target / "run_results.json").exists()}))

    inv, lines, events = _invocation(tmp_path, prelude, "run", "--select", "stg_numbers")
    assert inv.returncode == 0, "\n".join(lines)
    assert [e.name for e in events].count(PARSE_EVENT) == 1
    got = json.loads(seen.read_text())
    assert "model.mini.stg_numbers" in got["nodes"] and got["results"] is False
    assert [e.payload["data"]["node_info"]["unique_id"] for e in events if e.name == "NodeFinished"] == [
        "model.mini.stg_numbers"
    ]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    assert [r["unique_id"] for r in results["results"]] == ["model.mini.stg_numbers"]
    assert (tmp_path / "target" / "partial_parse.msgpack").is_file()


@pytest.mark.slow
def test_a_prelude_that_raises_stops_the_step_before_dbt_runs(tmp_path):
    def prelude(target: Path) -> None:
        raise DockyardError("refused: stg_numbers would write elsewhere", hint="fix the schema")

    inv, lines, events = _invocation(tmp_path, prelude, "run", "--select", "stg_numbers")
    assert inv.returncode == 2
    text = "\n".join(lines)
    assert "Error: refused: stg_numbers would write elsewhere: fix the schema" in text
    assert "stopped before building anything" in text
    assert not [e for e in events if e.name == "NodeFinished"]
    assert not (tmp_path / "target" / "run_results.json").exists()


@pytest.mark.slow
def test_a_failed_parse_skips_the_prelude_and_the_step(tmp_path):
    marker = tmp_path / "prelude-ran"
    project = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", project)
    (project / "models" / "broken.sql").write_text("select {{ ref('nothing' }}\n")
    inv = DbtInvocation(
        args_for(project, tmp_path, "run"),
        project_dir=project,
        env=base_env(tmp_path),
        mode="fork",
        prelude=lambda target: marker.write_text("ran"),
    )
    inv.start()
    with inv:
        lines, _ = collect(inv)
    assert inv.returncode != 0
    assert "dbt parse failed: nothing was built" in "\n".join(lines)
    assert not marker.exists()
    assert not (tmp_path / "target" / "run_results.json").exists()
