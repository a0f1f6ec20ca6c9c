"""The classification table (every row's examples are transient, known permanent messages
are not), run-level classification and the retry policy matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.retry.helpers import failed_run, make_run, node

from dockyard.config.model import Retries
from dockyard.domain import RunStatus, StepStatus
from dockyard.retry import (
    PERMANENT,
    PERMANENT_PATTERNS,
    TRANSIENT,
    TRANSIENT_PATTERNS,
    classification_table,
    classify,
    match_message,
    should_retry,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "retries.md"

TRANSIENT_EXAMPLES = [
    pytest.param(p.name, e, id=f"{p.name}-{i}") for p in TRANSIENT_PATTERNS for i, e in enumerate(p.examples)
]

PERMANENT_MESSAGES = [
    'syntax error at or near "selec"\nLINE 3: selec order_id from orders',
    'column "no_such_column" does not exist\nLINE 1: select order_id, no_such_column from "analytics"...',
    'Binder Error: Referenced column "no_such_column" not found in FROM clause!\nCandidate bindings: "status"',
    'relation "analytics.stg_orders" does not exist',
    "Catalog Error: Table with name stg_orders does not exist!",
    "Got 3 results, configured to fail if != 0",
    "division by zero",
    'duplicate key value violates unique constraint "fct_orders_pkey"',
    "permission denied for schema analytics",
    'password authentication failed for user "dbt"',
    'could not translate host name "db.internl" to address: Name or service not known',
    "Out of Memory Error: could not allocate block of size 256.0 KiB (1.9 GiB/2.0 GiB used)",
    "Compilation Error in model fct_orders (models/marts/fct_orders.sql)\n  Model 'model.shop.fct_orders' "
    "depends on a node named 'stg_order' which was not found",
    "Conversion Error: Could not convert string 'abc' to INT32",
    'invalid input syntax for type integer: "abc"',
    "unexpected EOF while parsing (fct_orders.py, line 12)",
    # numbers that are not HTTP statuses
    'syntax error at or near "429"\nLINE 503: select 429 429',
    "Got 502 results, configured to fail if != 0",
    # model names and paths that contain transient-looking words
    'Database Error in model connection_reset_log (models/connection_reset_log.sql)\n  syntax error at or near "form"',
    'Runtime Error in model lock_timeout_report (models/ops/lock_timeout_report.sql)\n  column "x" does not exist',
    # configured query time limits
    *PERMANENT_PATTERNS[0].examples,
]


@pytest.mark.parametrize(("name", "message"), TRANSIENT_EXAMPLES)
def test_every_example_is_transient_by_its_own_row(name, message):
    assert match_message(message) == (TRANSIENT, name)
    run = failed_run(
        "dbt run",
        [
            node(
                "model.shop.fct_orders",
                "error",
                f"Database Error in model fct_orders (models/marts/fct_orders.sql)\n  {message}",
            )
        ],
    )
    assert classify(run) == TRANSIENT


@pytest.mark.parametrize("message", PERMANENT_MESSAGES)
def test_permanent_messages(message):
    assert match_message(message) in (None, (PERMANENT, "statement_timeout"))
    run = failed_run("dbt run", [node("model.shop.fct_orders", "error", message)])
    assert classify(run) == PERMANENT


def test_every_row_has_examples_and_unique_name():
    names = [p.name for p in (*TRANSIENT_PATTERNS, *PERMANENT_PATTERNS)]
    assert len(names) == len(set(names))
    assert all(p.examples and p.meaning and p.fragments for p in (*TRANSIENT_PATTERNS, *PERMANENT_PATTERNS))
    brief = {
        "connection_reset",
        "connection_refused",
        "connection_closed",
        "broken_pipe",
        "unexpected_eof",
        "timed_out",
        "rate_limited",
        "lock_contention",
        "serialization_failure",
        "database_restarting",
        "ssl_syscall",
        "name_resolution",
        "service_unavailable",
        "http_5xx",
    }
    assert brief <= set(names)


def test_every_pattern_is_documented():
    text = DOCS.read_text()
    missing = [p.name for p in (*TRANSIENT_PATTERNS, *PERMANENT_PATTERNS) if f"`{p.name}`" not in text]
    assert not missing and "`worker_lost`" in text, f"patterns missing from docs/retries.md: {missing}"


def test_docs_table_is_current():
    assert classification_table() in DOCS.read_text(), (
        "docs/retries.md is out of date; paste the output of\n  python -c 'from dockyard.retry import "
        "classification_table as t; print(t())'"
    )


# -- run-level classification ---------------------------------------------------------------

RESET = "could not receive data from server: Connection reset by peer"
SYNTAX = 'syntax error at or near "selec"'


def test_worker_lost_is_transient_without_any_message():
    run = failed_run("dbt run", [node("model.shop.a", "success")], reason="worker_lost", exit_code=None)
    assert classify(run) == TRANSIENT


@pytest.mark.parametrize("reason", ["timeout", "internal_error"])
def test_timeout_and_internal_error_are_permanent(reason):
    run = failed_run(
        "dbt run",
        [node("model.shop.a", "error", RESET)],
        reason=reason,
        step_status=StepStatus.CANCELLED,
        exit_code=None,
    )
    assert classify(run) == PERMANENT


def test_every_failed_node_must_be_transient():
    ok = failed_run(
        "dbt run",
        [
            node("model.shop.a", "error", RESET),
            node("model.shop.b", "error", "database is locked"),
            node("model.shop.c", "skipped"),
            node("model.shop.d", "success"),
        ],
    )
    assert classify(ok) == TRANSIENT
    mixed = failed_run("dbt run", [node("model.shop.a", "error", RESET), node("model.shop.b", "error", SYNTAX)])
    assert classify(mixed) == PERMANENT


def test_failing_data_test_is_permanent_even_with_transient_looking_text():
    run = failed_run(
        "dbt test",
        [node("test.shop.t.abc", "fail", "Got 1 result, configured to fail if != 0 (rows: connection reset)")],
    )
    assert classify(run) == PERMANENT
    errored = failed_run("dbt test", [node("test.shop.t.abc", "error", RESET)])
    assert classify(errored) == TRANSIENT


def test_only_the_failed_steps_nodes_count():
    run = failed_run(
        "dbt run", [node("model.shop.a", "error", RESET, step=2), node("test.shop.old.x", "error", SYNTAX, step=1)]
    )
    assert classify(run) == TRANSIENT


LOG_REFUSED = """\
07:01:02  Running with dbt=1.11.2
07:01:03  Registered adapter: postgres=1.9.0
07:01:03  Found 7 models, 1 snapshot, 24 data tests, 4 seeds, 4 sources, 512 macros
07:01:03  1 of 7 START sql view model analytics.connection_reset_log ......... [RUN]
07:01:04  Encountered an error:
Database Error
  connection to server at "db.internal" (10.0.0.5), port 5432 failed: Connection refused
"""


def test_no_failed_node_falls_back_to_the_step_log():
    run = failed_run("dbt run", [], exit_code=2)
    assert classify(run) == PERMANENT  # no message at all
    assert classify(run, LOG_REFUSED) == TRANSIENT
    compile_error = "07:01:03  Encountered an error:\nCompilation Error in model fct_orders\n  unexpected '}'\n"
    assert classify(run, compile_error) == PERMANENT
    # a model named after a transient error, on a progress line, is not an error
    progress_only = (
        "07:01:03  1 of 7 START sql view model analytics.connection_refused_events ... [RUN]\n"
        "07:01:03  1 of 7 ERROR creating sql view model analytics.connection refused ... [ERROR]\n"
    )
    assert classify(run, progress_only) == PERMANENT


# -- should_retry ----------------------------------------------------------------------------

transient_run = failed_run("dbt run", [node("model.shop.a", "error", RESET)])
permanent_run = failed_run("dbt run", [node("model.shop.a", "error", SYNTAX)])
timeout_run = failed_run(
    "dbt run", [node("model.shop.a", "started")], reason="timeout", step_status=StepStatus.CANCELLED, exit_code=None
)
lost_run = failed_run("dbt run", [node("model.shop.a", "started")], reason="worker_lost", exit_code=None)
cancelled_run = failed_run(
    "dbt run",
    [node("model.shop.a", "error", RESET)],
    reason="cancelled",
    status=RunStatus.CANCELLED,
    step_status=StepStatus.CANCELLED,
    exit_code=None,
)
success_run = make_run([("dbt run", StepStatus.SUCCESS, 0)], status=RunStatus.SUCCESS, reason=None)
running_run = make_run([("dbt run", StepStatus.RUNNING, None)], status=RunStatus.RUNNING, reason=None)


@pytest.mark.parametrize(
    ("run", "on", "max_attempts", "expected"),
    [
        (transient_run, "transient", 3, True),
        (transient_run, "any", 3, True),
        (transient_run, "transient", 1, False),  # the default policy: no retries
        (permanent_run, "transient", 3, False),
        (permanent_run, "any", 3, True),
        (timeout_run, "transient", 3, False),
        (timeout_run, "any", 3, True),
        (lost_run, "transient", 3, True),
        (cancelled_run, "transient", 3, False),
        (cancelled_run, "any", 3, False),
        (success_run, "any", 3, False),
        (running_run, "any", 3, False),
    ],
)
def test_should_retry_matrix(run, on, max_attempts, expected):
    assert should_retry(run, Retries(max_attempts=max_attempts, on=on)) is expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, True), (2, True), (3, False), (4, False)])
def test_attempts_are_counted_including_the_first(attempt, expected):
    run = failed_run("dbt run", [node("model.shop.a", "error", RESET)], attempt=attempt)
    assert should_retry(run, Retries(max_attempts=3)) is expected


def test_retries_number_shorthand_means_retries_after_the_first():
    from dockyard.config.model import Job

    job = Job.model_validate({"name": "j", "environment": "prod", "commands": ["dbt run"], "retries": 2})
    assert job.retries.max_attempts == 3
    assert should_retry(failed_run("dbt run", [node("model.shop.a", "error", RESET)], attempt=2), job.retries)


def test_log_text_reaches_the_policy():
    run = failed_run("dbt run", [], exit_code=2)
    assert not should_retry(run, Retries(max_attempts=2))
    assert should_retry(run, Retries(max_attempts=2), LOG_REFUSED)
