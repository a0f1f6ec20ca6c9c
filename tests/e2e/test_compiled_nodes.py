"""Compile results are not executions (issue 8, defect 1): a real job with seed, run, test and
docs generate on the shop example, through the real CLI, on SQLite."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

pytestmark = pytest.mark.slow

JOB = """\
- name: "Build and docs"
  environment: dev
  commands: ["dbt seed", "dbt run", "dbt test", "dbt docs generate"]
"""


def test_docs_generate_compiles_without_adding_executed_nodes(sqlite_project):
    project = sqlite_project
    project.add_job(JOB)
    run = project.run_json("Build and docs")
    assert run["status"] == "success", run
    run_id = str(run["id"])

    # 4 seeds loaded, 7 models built, 24 tests run; docs generate executed nothing
    executed = Counter((n["step_index"], n["resource_type"]) for n in run["nodes"])
    assert executed == {(1, "seed"): 4, (2, "model"): 7, (3, "test"): 24}
    assert "compiled" not in {n["status"] for n in run["nodes"]}
    shown = json.loads(project.cli("show", run_id, "--json", check=0).stdout)
    assert shown["nodes"] == run["nodes"]

    # --all-nodes adds docs generate's compile results, marked compiled
    everything = json.loads(project.cli("show", run_id, "--json", "--all-nodes", check=0).stdout)
    compiled = [n for n in everything["nodes"] if n["status"] == "compiled"]
    assert len(everything["nodes"]) == 35 + 36 and len(compiled) == 36
    assert Counter(n["resource_type"] for n in compiled) == {"seed": 4, "model": 7, "test": 24, "snapshot": 1}
    assert {n["step_index"] for n in compiled} == {4}
    text = project.cli("show", run_id, check=0).stdout
    assert "36 node results of steps that only compiled are not listed" in text
    rows = re.compile(r"\scompiled\s{2,}")  # the status column of the nodes table
    assert not rows.findall(text)
    text_all = project.cli("show", run_id, "--all-nodes", check=0).stdout
    assert len(rows.findall(text_all)) == 36, text_all

    # the run's artifacts are still there: docs generate's catalog and site among them
    names = {(a["step_index"], a["name"]) for a in run["artifacts"]}
    assert {(4, "catalog.json"), (4, "index.html"), (4, "manifest.json"), (3, "run_results.json")} <= names

    # stats count executions only
    with project.store() as store:
        (tests,) = [r for r in store.stats.test_results() if r["run_id"] == run["id"]]
        assert tests["counts"] == {"pass": 23, "fail": 0, "warn": 1, "error": 0, "skipped": 0}
        durations = store.stats.model_durations()
    assert len(durations) == 7
    for series in durations:
        (point,) = series["points"]
        assert point["status"] == "success" and point["execution_time_s"] > 0
    fct = next(s for s in durations if s["unique_id"] == "model.shop.fct_orders")
    by_id = {(n["step_index"], n["unique_id"]): n for n in run["nodes"]}
    assert fct["points"][0]["execution_time_s"] == pytest.approx(
        by_id[(2, "model.shop.fct_orders")]["execution_time_s"], abs=1e-3
    )
