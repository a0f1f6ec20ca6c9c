"""Warm runs (dockyard.runner.warm): a manifest parsed once per project state in a warm
parent, steps forked from it without parsing; every invalidation rule re-parses; artifacts
equal the plain command's; a crashed child leaves the parent serving; eviction; fallbacks.

dbt's parses are counted by the ``StateCheckVarsHash`` event, fired once per parse of a
project (dbt/parser/manifest.py); a warm hit has none in its child."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.runner.executor import Executor
from dockyard.runner.invocation import DbtInvocation
from dockyard.runner.parse_key import KeyMaker
from dockyard.runner.warm import WarmPool, not_warm

from .conftest import FakeRecorder, base_env, make_plan
from .test_invocation import collect

PARSE_EVENT = "StateCheckVarsHash"
FORWARD = frozenset({PARSE_EVENT, "NodeFinished"})

PROFILES = """
warm:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('WARM_DB', 'warm.duckdb') }}"
      threads: 1
    pg:
      type: postgres
      host: 127.0.0.1
      port: 5432
      user: postgres
      password: ""
      dbname: test
      schema: "{{ env_var('WARM_PG_SCHEMA', 'dockyard_warm') }}"
      threads: 2
"""


def make_project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: warm\nversion: '1.0.0'\nprofile: warm\nconfig-version: 2\nvars:\n  greeting: hello\n"
    )
    (root / "profiles.yml").write_text(PROFILES)
    (root / "macros" / "shout.sql").write_text("{% macro shout(x) %}upper({{ x }}){% endmacro %}\n")
    (root / "models" / "base.sql").write_text("select 1 as id, 'a' as name\n")
    (root / "models" / "loud.sql").write_text(
        "{{ config(tags=[var('greeting')], alias=env_var('WARM_ALIAS', 'loud')) }}\n"
        "select id, {{ shout('name') }} as name from {{ ref('base') }}\n"
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "warm")


@pytest.fixture
def pool():
    pool = WarmPool()
    yield pool
    pool.close()


def step(pool: WarmPool, project: Path, tmp_path: Path, *args: str, env: dict | None = None, name: str = "dev"):
    """One step through the warm parent: (exit code, log text, parses in the child, answer, manifest)."""
    target = tmp_path / "target"
    argv = [*args, "--profiles-dir", str(project), "--target-path", str(target), "--log-path", str(tmp_path / "logs")]
    inv = DbtInvocation(
        argv,
        project_dir=project,
        env=env or base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb")),
        forward=FORWARD,
        warm=pool.get(name),
        warm_request={"cache_dir": str(tmp_path / "cache")},
    )
    inv.start()
    lines, events = collect(inv)
    manifest = json.loads((target / "manifest.json").read_text()) if (target / "manifest.json").exists() else None
    parses = sum(1 for e in events if e.name == PARSE_EVENT)
    return inv.returncode, "\n".join(lines), parses, inv.warm_answer, manifest


def node(manifest: dict, name: str) -> dict:
    return manifest["nodes"][f"model.warm.{name}"]


def test_a_second_step_starts_from_the_manifest_in_memory(project, tmp_path, pool):
    code, text, _, answer, _ = step(pool, project, tmp_path, "run")
    assert code == 0, text
    assert answer["parsed"] and "warm: parsing (no manifest in memory yet)" in text
    code, text, parses, answer, manifest = step(pool, project, tmp_path, "run")
    assert code == 0, text
    assert answer == {"pid": answer["pid"], "parsed": False, "why": []}
    assert parses == 0  # the child did not parse
    assert "2 of 2 OK" in text or "PASS=2" in text
    # the artifacts carry this invocation's metadata, not the parse's
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    assert manifest["metadata"]["invocation_id"] == results["metadata"]["invocation_id"]
    assert node(manifest, "loud")["compiled_code"].strip().startswith("select id, upper(name)")


EDITS = {
    "a model": (lambda p: (p / "models" / "base.sql").write_text("select 2 as id, 'b' as name\n"), "models/base.sql"),
    "a macro": (
        lambda p: (p / "macros" / "shout.sql").write_text("{% macro shout(x) %}lower({{ x }}){% endmacro %}\n"),
        "macros/shout.sql",
    ),
    "dbt_project.yml": (
        lambda p: (p / "dbt_project.yml").write_text(
            (p / "dbt_project.yml").read_text().replace("greeting: hello", "greeting: bonjour")
        ),
        "dbt_project.yml",
    ),
    "a new model": (lambda p: (p / "models" / "extra.sql").write_text("select 3 as id\n"), "models/extra.sql added"),
    "a deleted model": (lambda p: (p / "models" / "loud.sql").unlink(), "models/loud.sql deleted"),
    "profiles.yml": (
        lambda p: (p / "profiles.yml").write_text(PROFILES.replace("threads: 1", "threads: 3")),
        "profiles.yml",
    ),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_an_edit_is_never_served_a_stale_manifest(project, tmp_path, pool, what):
    edit, reason = EDITS[what]
    assert step(pool, project, tmp_path, "compile")[0] == 0
    time.sleep(0.01)
    edit(project)
    code, text, _, answer, manifest = step(pool, project, tmp_path, "compile")
    assert code == 0, text
    assert answer["parsed"], text
    assert any(reason in why for why in answer["why"]), answer
    nodes = manifest["nodes"]
    if what == "a model":
        assert "select 2 as id" in nodes["model.warm.base"]["compiled_code"]
    elif what == "a macro":
        assert "lower(name)" in nodes["model.warm.loud"]["compiled_code"]
    elif what == "dbt_project.yml":
        assert nodes["model.warm.loud"]["tags"] == ["bonjour"]
    elif what == "a new model":
        assert "model.warm.extra" in nodes
    elif what == "a deleted model":
        assert "model.warm.loud" not in nodes
    # and the state after the edit is warm again
    assert step(pool, project, tmp_path, "compile")[3]["parsed"] is False


def test_a_var_or_an_env_var_the_project_reads_re_parses(project, tmp_path, pool):
    env = base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb"))
    assert step(pool, project, tmp_path, "compile", env=env)[0] == 0
    code, text, _, answer, manifest = step(pool, project, tmp_path, "compile", "--vars", "{greeting: hi}", env=env)
    assert code == 0 and answer["parsed"] and node(manifest, "loud")["tags"] == ["hi"], text
    env2 = {**env, "WARM_ALIAS": "shouting"}
    code, text, _, answer, manifest = step(pool, project, tmp_path, "compile", "--vars", "{greeting: hi}", env=env2)
    assert code == 0 and answer["parsed"] and "env var WARM_ALIAS" in answer["why"], answer
    assert node(manifest, "loud")["alias"] == "shouting"
    # a new run id is not a change, unless the project reads it while parsing
    env3 = {**env2, "DOCKYARD_RUN_ID": "77", "DBT_CLOUD_RUN_ID": "77"}
    assert step(pool, project, tmp_path, "compile", "--vars", "{greeting: hi}", env=env3)[3]["parsed"] is False
    (project / "models" / "loud.sql").write_text(
        "{{ config(alias='r' ~ env_var('DBT_CLOUD_RUN_ID', '0')) }}\nselect 1 as id\n"
    )
    _, _, _, answer, manifest = step(pool, project, tmp_path, "compile", "--vars", "{greeting: hi}", env=env3)
    assert answer["parsed"] and node(manifest, "loud")["alias"] == "r77"
    env4 = {**env3, "DOCKYARD_RUN_ID": "78", "DBT_CLOUD_RUN_ID": "78"}
    _, _, _, answer, manifest = step(pool, project, tmp_path, "compile", "--vars", "{greeting: hi}", env=env4)
    assert answer["parsed"] and "env var DBT_CLOUD_RUN_ID" in answer["why"]
    assert node(manifest, "loud")["alias"] == "r78"


def test_key_ignores_files_dbt_does_not_parse(project, tmp_path):
    keys = KeyMaker()
    env = {"A": "1"}
    first = keys.key(["run"], str(project), env)
    (project / "warm.duckdb").write_bytes(b"data")
    (project / "target").mkdir()
    (project / "target" / "x.json").write_text("{}")
    (project / "README.md").write_text("hi")
    assert keys.key(["run"], str(project), env).digest == first.digest
    assert keys.key(["run", "--threads", "8", "--target-path", "/elsewhere"], str(project), env).digest == first.digest
    assert keys.key(["run", "--target", "pg"], str(project), env).digest != first.digest
    assert keys.key(["run"], str(project), {"A": "2"}).changes(first) == ["env var A"]


def test_a_crashed_child_leaves_the_parent_serving(project, tmp_path, pool):
    assert step(pool, project, tmp_path, "compile")[0] == 0
    parent = pool.get("dev")
    target = tmp_path / "target"
    inv = DbtInvocation(
        ["compile", "--profiles-dir", str(project), "--target-path", str(target)],
        project_dir=project,
        env=base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb")),
        warm=parent,
    )
    inv.start()
    inv.kill()  # SIGKILL to the child's process group, as a crash would end it
    assert inv.wait(30) == -9
    inv.close()
    assert pool.get("dev") is parent and parent.alive
    code, text, parses, answer, _ = step(pool, project, tmp_path, "run")
    assert code == 0 and answer["parsed"] is False and parses == 0, text


def test_eviction_when_idle_or_over_the_memory_ceiling(project, tmp_path):
    pool = WarmPool(idle_seconds=3600, max_memory_mb=64)
    try:
        assert step(pool, project, tmp_path, "compile")[0] == 0
        first = pool.get("dev")  # the sweep in get() evicts the one over 64 MiB
        assert pool.evicted and "over runner.warm_max_memory_mb" in pool.evicted[0][1]
        assert first.pid is not None and first is not pool.evicted  # a new parent
        pool.max_memory_mb = 1 << 20
        pool.idle_seconds = 0.05
        time.sleep(0.1)
        pool.sweep()
        assert pool.parents == {} and "idle for" in pool.evicted[-1][1]
        code, text, _, answer, _ = step(pool, project, tmp_path, "compile")
        assert code == 0 and answer["parsed"], text  # a new parent parses once
    finally:
        pool.close()


def test_fallback_reasons():
    assert not_warm(["deps"], prelude=False, project_dir="/nope") == "dbt deps parses for itself"
    assert not_warm(["parse"], prelude=False, project_dir="/nope") == "dbt parse parses for itself"
    assert "full parse" in not_warm(["run", "--no-partial-parse"], prelude=False, project_dir="/nope")
    assert "pull-request" in not_warm(["build"], prelude=True, project_dir="/nope")
    assert not_warm(["build", "--select", "x"], prelude=False, project_dir="/nope") is None


def normal(manifest_text: str, target: Path) -> dict:
    data = json.loads(manifest_text.replace(str(target), "<target>"))
    data["metadata"] = {
        k: v
        for k, v in data["metadata"].items()
        if k not in {"invocation_id", "generated_at", "invocation_started_at", "run_started_at"}
    }
    for group in ("nodes", "sources", "macros", "exposures", "metrics", "semantic_models", "unit_tests"):
        for item in (data.get(group) or {}).values():
            item.pop("created_at", None)
    return data


def test_warm_artifacts_equal_the_plain_commands(project, tmp_path, pool):
    """A job through the executor, warm, against the same commands run by hand with dbt."""
    commands = ["dbt run", "dbt test", "dbt compile", "dbt parse", "dbt ls"]
    plan = make_plan(project, tmp_path, commands, env=base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb")))
    plan.warm, plan.warm_name = pool, "dev"
    rec = FakeRecorder()
    outcome = Executor(plan, rec).run()
    assert outcome.status.value == "success", rec.text()
    assert "warm: no parse" in rec.text(2) and "warm: dbt parse parses for itself" in rec.text(4)
    plain = tmp_path / "plain"
    env = {**base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb")), "DBT_ENV_CUSTOM_ENV_X": "1"}
    env.pop("DBT_ENV_CUSTOM_ENV_X")
    dbt = [str(Path(sys.executable).parent / "dbt"), "--no-use-colors"]
    for index, command in enumerate(commands, start=1):
        target = plain / str(index)
        subprocess.run(
            [*dbt, *command.split()[1:], "--profiles-dir", str(project), "--target-path", str(target)],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        ours = plan.run_dir / "artifacts" / f"step-{index}"
        for name in ("manifest.json", "semantic_manifest.json"):
            if (target / name).exists():
                assert (ours / name).exists(), f"step {index} {name}"
                if name == "manifest.json":
                    assert normal(
                        (ours / name).read_text(), plan.target_path.parent.parent / "runs" / "1" / "target"
                    ) == normal((target / name).read_text(), target), f"step {index}"
        if (target / "run_results.json").exists():
            theirs = json.loads((target / "run_results.json").read_text())
            mine = json.loads((ours / "run_results.json").read_text())
            assert [(r["unique_id"], r["status"]) for r in mine["results"]] == [
                (r["unique_id"], r["status"]) for r in theirs["results"]
            ]
    # dbt by hand in the project still parses partially from its own files
    done = subprocess.run(
        [*dbt, "parse", "--profiles-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.slow
def test_postgres_warm_and_cold_give_the_same_results(project, tmp_path, pool):
    schema = f"dockyard_warm_{os.getpid()}"
    env = base_env(tmp_path, WARM_PG_SCHEMA=schema)
    results = {}
    try:
        for label in ("cold", "warm", "warm again"):
            plan = make_plan(
                project, tmp_path / label.replace(" ", "_"), ["dbt run --target pg", "dbt test --target pg"], env=env
            )
            if label != "cold":
                plan.warm, plan.warm_name = pool, "pg"
            rec = FakeRecorder()
            assert Executor(plan, rec).run().status.value == "success", rec.text()
            results[label] = sorted((n.unique_id, n.status) for i in (1, 2) for n in rec.final_nodes(i).values())
            if label == "warm again":
                assert "warm: no parse" in rec.text(1)
        assert results["cold"] == results["warm"] == results["warm again"]
    finally:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-c",
                f"drop schema if exists {schema} cascade",
            ],
            capture_output=True,
        )


def test_the_worker_keeps_beating_while_the_warm_parent_parses(project, tmp_path, pool):
    """A parse of a big project takes a minute: the worker must renew its lease meanwhile
    (a blocked worker slot is restarted by the supervisor after 25 s)."""
    ticks: list[float] = []
    target = tmp_path / "target"
    inv = DbtInvocation(
        ["compile", "--profiles-dir", str(project), "--target-path", str(target)],
        project_dir=project,
        env=base_env(tmp_path, WARM_DB=str(tmp_path / "warm.duckdb")),
        warm=pool.get("dev"),
        tick=lambda: ticks.append(time.monotonic()),
    )
    started = time.monotonic()
    inv.start()
    waited = time.monotonic() - started
    lines, _ = collect(inv)
    assert inv.returncode == 0 and inv.warm_answer["parsed"], lines
    assert waited > 0.5 and len(ticks) >= int(waited / 0.25) - 1, (waited, len(ticks))
    assert any("warm: parsing" in line for line in lines)


def test_the_log_says_why_it_parsed(project, tmp_path, pool):
    step(pool, project, tmp_path, "compile")
    (project / "models" / "base.sql").write_text("select 5 as id, 'x' as name\n")
    text = step(pool, project, tmp_path, "compile")[1]
    assert re.search(r"\[dockyard\] warm: parsing \(models/base.sql changed\)", text), text
