"""API fixtures: an App over a copy of the shop example, tokens of each scope, a TestClient,
and runs written straight into the store (with logs and artifacts on disk; no dbt needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.api.app import create_app
from dockyard.app import App
from dockyard.domain import ArtifactRef, NodeResult, RunStatus, StepStatus

DAILY = "Daily Production Run"
ACCOUNT = 1


@dataclass
class Tokens:
    read: str
    trigger: str
    admin: str
    revoked: str

    def header(self, scope: str = "admin", scheme: str = "Token") -> dict[str, str]:
        return {"Authorization": f"{scheme} {getattr(self, scope)}"}


def make_app(shop: Path, store_url: str | None = None) -> App:
    app = App.open(shop / "dockyard.yml", store_url)
    app.sync()
    return app


@pytest.fixture
def app(shop: Path):
    app = make_app(shop)
    yield app
    app.close()


@pytest.fixture
def tokens(app: App) -> Tokens:
    store = app.store
    made = {scope: store.tokens.create_token(f"test-{scope}", scope)[1] for scope in ("read", "trigger", "admin")}
    _, revoked = store.tokens.create_token("test-revoked", "admin")
    store.tokens.revoke_token("test-revoked")
    return Tokens(made["read"], made["trigger"], made["admin"], revoked)


@pytest.fixture
def api(app: App, tokens: Tokens):
    return create_app(app)


@pytest.fixture
def client(api, tokens: Tokens):
    with TestClient(api, base_url="https://testserver", headers=tokens.header("admin")) as c:
        yield c


@pytest.fixture
def anon(api):
    with TestClient(api, base_url="https://testserver") as c:
        yield c


def job_id(app: App, name: str = DAILY) -> int:
    return app.job(name)[0].id


def seed_run(
    app: App,
    *,
    job: str = DAILY,
    status: RunStatus = RunStatus.SUCCESS,
    failed_step: int | None = None,
    started: datetime | None = None,
    artifacts: bool = True,
    logs: bool = True,
    environment: str | None = None,
) -> int:
    """A run recorded in the store as if a worker had run it: steps, nodes, logs, artifacts."""
    record, config = app.job(job)
    commands = config.all_commands
    store = app.store
    run_id = store.runs.create_run(
        record.id, record.name, environment or config.environment, commands, trigger="api", cause="seeded"
    )
    start = started or datetime.now(UTC) - timedelta(minutes=5)
    run_dir = app.state_dir / "runs" / str(run_id)
    if status == RunStatus.QUEUED:
        return run_id
    store.runs.transition_run(run_id, RunStatus.STARTING, worker_id="test:1")
    store.runs.transition_run(run_id, RunStatus.RUNNING, started_at=start, artifacts_dir=str(run_dir))
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    for index, command in enumerate(commands, start=1):
        at = start + timedelta(seconds=10 * index)
        if status == RunStatus.RUNNING and index > 1:
            break
        store.runs.start_step(run_id, index, at)
        if logs:
            (run_dir / "logs" / f"step-{index}.log").write_text(
                f"12:00:0{index}  Running with dbt=1.11\n12:00:0{index}  1 of 2 OK created sql view model "
                f"shop.stg_{index}\nstep {index} log for `{command}`\n"
            )
        if status == RunStatus.RUNNING:
            break
        step_status = StepStatus.SUCCESS
        if failed_step is not None and index == failed_step:
            step_status = StepStatus.ERROR if status == RunStatus.ERROR else StepStatus.CANCELLED
        elif failed_step is not None and index > failed_step:
            continue
        store.runs.finish_step(
            run_id,
            index,
            step_status,
            0 if step_status == StepStatus.SUCCESS else 1,
            at + timedelta(seconds=5),
            log_path=f"logs/step-{index}.log",
        )
        node_status = "error" if step_status == StepStatus.ERROR else "success"
        store.runs.upsert_nodes(
            run_id,
            index,
            [
                NodeResult(
                    unique_id=f"model.shop.m{index}",
                    name=f"m{index}",
                    resource_type="model",
                    status=node_status,
                    execution_time_s=0.5 + index,
                    rows_affected=index,
                ),
                NodeResult(
                    unique_id=f"test.shop.t{index}",
                    name=f"t{index}",
                    resource_type="test",
                    status="pass" if index % 2 else "fail",
                    execution_time_s=0.1,
                ),
            ],
        )
        if artifacts:
            refs = []
            folder = run_dir / "artifacts" / f"step-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            names = ["run_results.json", "manifest.json"] + (
                ["catalog.json", "index.html"] if "docs generate" in command else []
            )
            for name in names:
                body = (
                    json.dumps({"metadata": {"env": {"DBT_CLOUD_RUN_ID": str(run_id)}, "step": index}, "results": []})
                    if name.endswith(".json")
                    else "<html>docs</html>"
                )
                (folder / name).write_text(body)
                refs.append(ArtifactRef(index, name, f"step-{index}/{name}", len(body), "0" * 64))
            store.runs.add_artifacts(run_id, refs)
    if status == RunStatus.RUNNING:
        return run_id
    if failed_step is not None:
        store.runs.skip_steps(run_id, failed_step + 1)
    reason = {RunStatus.ERROR: "step_failed", RunStatus.CANCELLED: "cancelled"}.get(status)
    store.runs.transition_run(run_id, status, reason=reason, finished_at=start + timedelta(seconds=120))
    return run_id
