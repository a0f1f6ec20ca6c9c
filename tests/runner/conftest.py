"""Fixtures for the runner tests: fixture dbt projects copied into tmp_path, plans, a fake recorder."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from dockyard.dbt.command import NO_TARGET_PATH
from dockyard.domain import ArtifactRef, NodeResult, StepStatus
from dockyard.runner.plan import Recorder, RunPlan, StepPlan

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODES = ["fork", "subprocess"]


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A small explicit environment for dbt (nothing leaks in from the test process)."""
    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }
    env.update(extra)
    return env


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A fresh copy of tests/fixtures/mini."""
    dest = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    return dest


def make_plan(
    project: Path,
    tmp_path: Path,
    commands: list[str],
    *,
    mode: str = "fork",
    env: dict[str, str] | None = None,
    secrets: list[str] | None = None,
    timeout: float = 120,
    grace: float = 10.0,
    run_id: int = 1,
) -> RunPlan:
    target = tmp_path / "targets" / "dev"
    steps = []
    for i, command in enumerate(commands, start=1):
        args = command.split()[1:] if isinstance(command, str) else list(command)[1:]
        argv = [*args, "--profiles-dir", str(project), "--project-dir", str(project)]
        if args[0] not in NO_TARGET_PATH:  # dbt deps and dbt debug refuse it
            argv += ["--target-path", str(target)]
        argv += ["--log-path", str(tmp_path / "dbt-logs")]
        steps.append(StepPlan(index=i, command=command if isinstance(command, str) else " ".join(command), argv=argv))
    return RunPlan(
        run_id=run_id,
        project_dir=project,
        env=env if env is not None else base_env(tmp_path),
        steps=steps,
        target_path=target,
        run_dir=tmp_path / "runs" / str(run_id),
        secrets=secrets or [],
        timeout_seconds=timeout,
        grace_seconds=grace,
        mode=mode,
    )


@dataclass
class FakeRecorder(Recorder):
    """Keeps everything the executor reports, in memory."""

    started: dict[int, datetime] = field(default_factory=dict)
    finished: dict[int, tuple[StepStatus, int | None, datetime, str]] = field(default_factory=dict)
    node_batches: list[tuple[int, list[NodeResult]]] = field(default_factory=list)
    lines: list[tuple[int, str]] = field(default_factory=list)
    artifact_refs: dict[int, list[ArtifactRef]] = field(default_factory=dict)
    on_log: object = None  # optional callable(index, line)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step_started(self, index, at):
        self.started[index] = at

    def nodes(self, index, nodes):
        self.node_batches.append((index, list(nodes)))

    def log(self, index, line):
        self.lines.append((index, line))
        if self.on_log is not None:
            self.on_log(index, line)

    def step_finished(self, index, status, exit_code, at, log_path):
        self.finished[index] = (status, exit_code, at, log_path)

    def artifacts(self, index, refs):
        self.artifact_refs[index] = list(refs)

    # helpers
    def final_nodes(self, index: int) -> dict[str, NodeResult]:
        """The latest state of each node of a step."""
        out: dict[str, NodeResult] = {}
        for i, batch in self.node_batches:
            if i == index:
                for node in batch:
                    out[node.unique_id] = node
        return out

    def status(self, index: int) -> StepStatus | None:
        return self.finished[index][0] if index in self.finished else None

    def text(self, index: int | None = None) -> str:
        return "\n".join(line for i, line in self.lines if index is None or i == index)


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members
