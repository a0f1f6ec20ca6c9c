"""A step's stored manifest.json carries its own run's ``metadata.env``: dbt's partial parse
keeps the metadata of the run that last parsed in full (its DBT_CLOUD_RUN_ID), so dockyard
rewrites the stored artifact's ``metadata.env`` from the step's environment."""

from __future__ import annotations

import json

import pytest

from dockyard.runner import manifest_env
from dockyard.runner.executor import Executor

from .conftest import MODES, FakeRecorder, base_env, make_plan


def manifest(env: dict) -> bytes:
    body = {"metadata": {"dbt_version": "1.11.0", "invocation_id": "x", "env": env}, "nodes": {"m": {"a": "ü"}}}
    return json.dumps(body).encode()


def test_only_the_metadata_env_is_rewritten():
    old = manifest({"DBT_CLOUD_RUN_ID": "1", "GONE": "x"})
    new = manifest_env.with_env(old, {"DBT_CLOUD_RUN_ID": "7"})
    assert json.loads(new) == {
        **json.loads(old),
        "metadata": {**json.loads(old)["metadata"], "env": {"DBT_CLOUD_RUN_ID": "7"}},
    }
    assert new.endswith(old[old.index(b', "nodes"') :])  # the rest copied byte for byte
    assert manifest_env.with_env(new, {"DBT_CLOUD_RUN_ID": "7"}) is new  # already right: untouched
    assert manifest_env.with_env(b"[1, 2]", {"A": "b"}) == b"[1, 2]"  # not dbt's shape: untouched
    assert manifest_env.with_env(b'{"metadata": {broken', {"A": "b"}) == b'{"metadata": {broken'
    env = {"DBT_ENV_CUSTOM_ENV_DBT_CLOUD_RUN_ID": "7", "DBT_ENV_SECRET_X": "s", "PATH": "/bin"}
    assert manifest_env.custom_env(env) == {"DBT_CLOUD_RUN_ID": "7"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_partially_parsed_run_stores_its_own_run_id(mini, tmp_path, mode):
    for run_id in (1, 2):
        env = base_env(tmp_path, DBT_ENV_CUSTOM_ENV_DBT_CLOUD_RUN_ID=str(run_id))
        plan = make_plan(mini, tmp_path, ["dbt parse"], mode=mode, env=env, run_id=run_id)
        outcome = Executor(plan, FakeRecorder()).run()
        assert outcome.status.value == "success"
        stored = json.loads((plan.run_dir / "artifacts" / "step-1" / "manifest.json").read_text())
        assert stored["metadata"]["env"] == {"DBT_CLOUD_RUN_ID": str(run_id)}
