"""Build RunRecords the way the store returns them, without running dbt."""

from __future__ import annotations

from dockyard.domain import NodeResult, RunRecord, RunStatus, StepResult, StepStatus


def node(unique_id: str, status: str, message: str | None = None, step: int = 2) -> NodeResult:
    return NodeResult(
        unique_id=unique_id,
        name=unique_id.split(".")[2],
        resource_type=unique_id.split(".")[0],
        status=status,
        message=message,
        step_index=step,
    )


def make_run(steps, nodes=(), *, status=RunStatus.ERROR, reason="step_failed", attempt=1) -> RunRecord:
    """``steps``: (command, StepStatus, exit_code) in order."""
    return RunRecord(
        id=7,
        job_id=1,
        job="job",
        environment="prod",
        status=status,
        reason=reason,
        attempt=attempt,
        steps=[StepResult(index=i, command=c, status=s, exit_code=e) for i, (c, s, e) in enumerate(steps, 1)],
        nodes=list(nodes),
    )


def failed_run(
    command: str,
    nodes,
    *,
    exit_code: int | None = 1,
    step_status=StepStatus.ERROR,
    reason="step_failed",
    status=RunStatus.ERROR,
    attempt=1,
) -> RunRecord:
    """``dbt seed`` succeeded, ``command`` failed (step 2), ``dbt test`` was skipped."""
    return make_run(
        [
            ("dbt seed", StepStatus.SUCCESS, 0),
            (command, step_status, exit_code),
            ("dbt test", StepStatus.SKIPPED, None),
        ],
        nodes,
        reason=reason,
        status=status,
        attempt=attempt,
    )
