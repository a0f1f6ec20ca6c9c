"""Is a failed run worth another attempt? :func:`classify` (transient or permanent, from the
run's reason and its failed nodes' messages against :mod:`.patterns`) and :func:`should_retry`
(the job's ``retries`` policy)."""

from __future__ import annotations

import re

from dockyard.domain import FAILED_STATUSES, NodeResult, RunRecord, RunStatus, StepResult, StepStatus
from dockyard.retry.patterns import PERMANENT, TRANSIENT, is_transient_message

# Run reasons that are transient by themselves: the process running dbt died (a deploy, an
# OOM kill, a lost machine), not dbt's work.
TRANSIENT_REASONS = frozenset({"worker_lost"})
# Run reasons that are permanent by themselves, whatever a log says: the job's own time limit,
# a cancel, dockyard's own failure, and a run that could not start (profiles.yml, a secret,
# the dbt project, the run folder: nothing dbt did, and the next attempt would fail the same way).
PERMANENT_REASONS = frozenset({"timeout", "cancelled", "internal_error", "setup_failed"})
# A data test that ran and found rows: the data is wrong, not the connection.
ASSERTION_STATUSES = frozenset({"fail"})
# Node statuses of a node that completed; every other status is re-run.
DONE_STATUSES = frozenset({"success", "pass", "warn", "no-op"})

_PROGRESS_LINE = re.compile(r"\b\d+ of \d+ (?:START|OK|PASS|WARN|ERROR|FAIL|SKIP|CANCEL|NO-OP)\b")


def _error_text(log_text: str) -> str:
    """The log without dbt's per-node progress lines (they name models, not errors)."""
    return "\n".join(line for line in log_text.splitlines() if not _PROGRESS_LINE.search(line))


def failed_step(run: RunRecord) -> StepResult | None:
    """The step a retry starts from: the first that did not succeed."""
    steps = sorted(run.steps, key=lambda s: s.index)
    for step in steps:
        if step.status in (StepStatus.ERROR, StepStatus.CANCELLED):
            return step
    for step in steps:  # e.g. dockyard failed before a step started: all skipped
        if step.status != StepStatus.SUCCESS:
            return step
    return None


def _step_nodes(run: RunRecord, index: int) -> list[NodeResult]:
    return [n for n in run.nodes if n.step_index == index]


def classify(run: RunRecord, log_text: str | None = None) -> str:
    """``"transient"`` or ``"permanent"``.

    - reason ``worker_lost``: transient (dockyard's process died, not dbt's work);
    - reason ``timeout`` (the job's ``timeout_seconds``), ``cancelled``, ``internal_error``,
      ``setup_failed`` (the run could not start), or a run that did not fail: permanent;
    - otherwise the failed step's failed nodes decide: transient only when *every* one of
      them failed with a transient message (a retry re-runs them all, so one SQL error
      makes it pointless); a data test that failed its assertion (status ``fail``) is
      permanent whatever its message;
    - no failed node on record (dbt could not connect, crashed): ``log_text``, the failed
      step's log, decides, without dbt's per-node progress lines; no log: permanent.
    """
    if run.reason in TRANSIENT_REASONS:
        return TRANSIENT
    if run.status != RunStatus.ERROR or run.reason in PERMANENT_REASONS:
        return PERMANENT
    step = failed_step(run)
    failed = [n for n in _step_nodes(run, step.index) if n.status in FAILED_STATUSES] if step else []
    if failed:
        ok = all(n.status not in ASSERTION_STATUSES and is_transient_message(n.message) for n in failed)
        return TRANSIENT if ok else PERMANENT
    if log_text and is_transient_message(_error_text(log_text)):
        return TRANSIENT
    return PERMANENT


def should_retry(run: RunRecord, policy, log_text: str | None = None) -> bool:
    """Whether the job's ``retries`` policy (:class:`dockyard.config.model.Retries`) wants
    another attempt of this finished run.

    Never for a run that did not end ``error`` (success, cancelled, still active), nor for one
    that could not start (reason ``setup_failed``, whatever ``on`` says), nor once
    ``run.attempt`` reached ``max_attempts``. ``on: any`` retries every error, a job
    timeout included; ``on: transient`` (the default) only what :func:`classify` calls
    transient, so a run stopped by its ``timeout_seconds`` is not retried.
    """
    if run.status != RunStatus.ERROR or run.reason == "cancelled":
        return False
    if run.reason == "setup_failed":  # even with on: any: it cannot succeed until someone fixes it
        return False
    if run.attempt >= policy.max_attempts:
        return False
    if policy.on == "any":
        return True
    return classify(run, log_text) == TRANSIENT
