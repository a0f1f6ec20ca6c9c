"""Retries: which failures are worth another attempt, and what that attempt re-runs.

- :mod:`.patterns`: the classification table of transient and permanent messages;
- :mod:`.classify`: :func:`classify` and :func:`should_retry`;
- :mod:`.plan`: :func:`retry_steps`, the commands of the next attempt.

Three questions, answered from a finished :class:`~dockyard.domain.RunRecord` (the stored
node results of each step, never a surviving dbt target folder):

- :func:`classify`: was the failure *transient* (a dropped connection, a lock held by
  another transaction, a rate limit: the same work may well succeed a minute later) or
  *permanent* (a SQL error, a failing test, a missing column)? Decided from the run's
  reason and the failed nodes' messages (and, when no node failed, the failed step's log)
  against :data:`TRANSIENT_PATTERNS`, a table documented in ``docs/retries.md``.
- :func:`should_retry`: does a job's ``retries`` policy want another attempt?
- :func:`retry_steps`: the commands of that attempt. The first failed step is re-run for
  only the nodes that did not complete (failed, skipped, never reached); the steps after it
  are repeated unchanged; the steps before it, which succeeded, are not repeated.

How a failed step's command is rewritten (dbt 1.11 selection semantics, checked with
``dbt ls``; see ``tests/retry/test_selectors_dbt.py``):

- When dbt finished the step itself (exit code 1: nodes failed and dbt wrote its
  ``run_results.json``, which lists every selected node, ``skipped`` included), the step's
  record is complete and the command's own ``--select``/``-s``/``-m``/``--models``/
  ``--selector`` is *replaced* by an explicit ``--select`` of the nodes that did not
  complete. Everything else (``--exclude``, ``--resource-type``, ``--full-refresh``, ...)
  stays. A positive list, because dbt expands ``--exclude`` eagerly to the tests of every
  excluded model, so excluding the models that succeeded in a ``dbt build`` would also drop
  their failed or never-run tests.
- When dbt did not finish the step (the run timed out or was cancelled, the worker died,
  dbt crashed with exit code 2), nodes that never started left no record. The nodes that
  completed are then *excluded*: merged into the command's one ``--exclude`` (dbt 1.11
  accepts several ``--exclude`` options and takes their union; dockyard writes a single
  one). Caveat, from the same eager expansion: in an interrupted ``dbt build``, the tests of
  models that completed are not re-run. A command using ``--selector`` (with which dbt
  ignores ``--exclude``), or a command without ``--select`` in a project whose
  ``selectors.yml`` has a ``default: true`` selector (which ``--exclude`` would switch
  off), is repeated whole instead.
- A failed step with no node-level failure on record (a compilation error, an
  ``on-run-end`` hook, a crash before the first node) is repeated whole; so are commands
  without node selection (``dbt docs generate``, ``dbt run-operation``, ``dbt deps``, ...).
"""

from dockyard.dbt.selection import node_selector
from dockyard.retry.classify import (
    ASSERTION_STATUSES,
    DONE_STATUSES,
    PERMANENT_REASONS,
    TRANSIENT_REASONS,
    classify,
    failed_step,
    should_retry,
)
from dockyard.retry.patterns import (
    PERMANENT,
    PERMANENT_PATTERNS,
    TRANSIENT,
    TRANSIENT_PATTERNS,
    Pattern,
    classification_table,
    is_transient_message,
    match_message,
)
from dockyard.retry.plan import SELECTABLE, RetryStep, has_default_selector, retry_steps, rewrite_step

__all__ = [
    "ASSERTION_STATUSES",
    "DONE_STATUSES",
    "PERMANENT",
    "PERMANENT_PATTERNS",
    "PERMANENT_REASONS",
    "SELECTABLE",
    "TRANSIENT",
    "TRANSIENT_PATTERNS",
    "TRANSIENT_REASONS",
    "Pattern",
    "RetryStep",
    "classification_table",
    "classify",
    "failed_step",
    "has_default_selector",
    "is_transient_message",
    "match_message",
    "node_selector",
    "retry_steps",
    "rewrite_step",
    "should_retry",
]
