"""Retries: which failures are worth another attempt, and what that attempt re-runs.

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

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.dbt.command import DbtCommand, parse_command
from dockyard.domain import NodeResult, RunRecord, RunStatus, StepResult, StepStatus

TRANSIENT = "transient"
PERMANENT = "permanent"

# -- the classification table --------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One row of the classification table: a name, what it means, the regular-expression
    fragments (any one matches, case-insensitive) and real messages it must match."""

    name: str
    meaning: str
    fragments: tuple[str, ...]
    examples: tuple[str, ...]
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        combined = "|".join(f"(?:{f})" for f in self.fragments)
        object.__setattr__(self, "regex", re.compile(combined, re.IGNORECASE))

    @property
    def example(self) -> str:
        return self.examples[0]

    def search(self, text: str) -> bool:
        return bool(self.regex.search(text))


def _row(name: str, meaning: str, fragments: tuple[str, ...], *examples: str) -> Pattern:
    return Pattern(name, meaning, fragments, examples)


# Fragments use spaces and word boundaries, never underscores: node messages start with
# "Database Error in model <name> (<path>)", and a model called ``lock_timeout_report``
# must not make its own syntax error look transient.
TRANSIENT_PATTERNS: tuple[Pattern, ...] = (
    _row(
        "connection_reset",
        "The connection was reset by the server or the network.",
        (r"connection reset", r"reset by peer", r"\bECONNRESET\b"),
        "could not receive data from server: Connection reset by peer",
        "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
    ),
    _row(
        "connection_refused",
        "Nothing accepted the connection (server restarting, failover).",
        (r"connection refused", r"\bECONNREFUSED\b"),
        'connection to server at "db.internal" (10.0.0.5), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?",
    ),
    _row(
        "connection_closed",
        "The server or a proxy closed the connection mid-query.",
        (
            r"closed the connection unexpectedly",
            r"connection (?:was |has been )?closed unexpectedly",
            r"\bconnection already closed\b",
            r"remote end closed connection",
            r"\bconnection aborted\b",
            r"\blost connection to\b",
            r"\bconnection (?:to the server )?(?:was |has been )?lost\b",
        ),
        "server closed the connection unexpectedly\n\tThis probably means the server terminated "
        "abnormally\n\tbefore or while processing the request.",
        "SSL connection has been closed unexpectedly",
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
    ),
    _row(
        "broken_pipe",
        "Writing to a connection the other side had already dropped.",
        (r"broken pipe", r"\bEPIPE\b"),
        "could not send data to server: Broken pipe",
    ),
    _row(
        "unexpected_eof",
        "The connection ended in the middle of a message.",
        (
            r"\bEOF detected\b",
            r"\bEOF occurred in violation of protocol\b",
            r"\bunexpected EOF (?:on|from|received|while reading)\b",
            r"\bUNEXPECTED_EOF_WHILE_READING\b",
        ),
        "SSL SYSCALL error: EOF detected",
        "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)",
    ),
    _row(
        "ssl_syscall",
        "The TLS layer lost the connection (psycopg2).",
        (r"\bSSL SYSCALL error\b", r"decryption failed or bad record mac"),
        "SSL SYSCALL error: Connection timed out",
    ),
    _row(
        "network_unreachable",
        "No route to the database host right now.",
        (
            r"no route to host",
            r"network is unreachable",
            r"host is unreachable",
            r"\bEHOSTUNREACH\b",
            r"\bENETUNREACH\b",
        ),
        'connection to server at "db.internal" (10.0.0.5), port 5432 failed: No route to host',
    ),
    _row(
        "name_resolution",
        "DNS did not answer (not: the name does not exist, which is permanent).",
        (r"temporary failure in name resolution", r"\bEAI_AGAIN\b"),
        'could not translate host name "db.internal" to address: Temporary failure in name resolution',
    ),
    _row(
        "timed_out",
        "A connect, read or network timeout (a statement timeout is permanent, see below).",
        (
            r"\btimed out\b",
            r"\btime-?out expired\b",
            r"\b(?:connect|connection|connecting|read|write|socket|network|login|handshake|pool|ssl) time-?out\b",
            r"\bETIMEDOUT\b",
            r"\bdeadline exceeded\b",
        ),
        'connection to server at "db.internal" (10.0.0.5), port 5432 failed: timeout expired',
        "HTTPSConnectionPool(host='acme.snowflakecomputing.com', port=443): Read timed out. (read timeout=60)",
        "504 Deadline Exceeded",
    ),
    _row(
        "rate_limited",
        "The warehouse or its API asked to slow down (HTTP 429, quotas).",
        (
            r"\brate[ -]?limit",
            r"\btoo many requests\b",
            r"\bquota exceeded\b",
            r"\bexceeded (?:your |the )?(?:rate|quota)\b",
            r"\bthrottl(?:ed|ing)\b",
            r"\b429 (?:client error|too many)",
            r"\b(?:http|status)(?: code)?[ :=]+429\b",
        ),
        "429 Client Error: Too Many Requests for url: https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs",
        "Quota exceeded: Your project exceeded quota for concurrent queries.",
        "Rate limit exceeded for user dbt: retry after 30 s",
    ),
    _row(
        "lock_contention",
        "Another transaction or process held a lock (DuckDB file lock, deadlock).",
        (
            r"could not obtain lock",
            r"\block timeout\b",
            r"\block wait timeout\b",
            r"\bdeadlock detected\b",
            r"\bdeadlock found\b",
            r"\bdeadlocked\b",
            r"could not set lock on file",
            r"conflicting lock is held",
            r"database is locked",
            r"conflict on tuple",
            r"write-write conflict",
            r"conflict on update",
            r"number of waiters for this lock",
            r"\block request time ?out\b",
        ),
        'IO Error: Could not set lock on file "/data/shop_prod.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242) by user dbt.",
        "canceling statement due to lock timeout",
        'could not obtain lock on relation "fct_orders"',
        "deadlock detected\nDETAIL:  Process 123 waits for AccessExclusiveLock on relation 16384",
        "database is locked",
        'TransactionContext Error: Catalog write-write conflict on create with "fct_orders"',
        "TransactionContext Error: Conflict on tuple deletion!",
    ),
    _row(
        "serialization_failure",
        "A serializable transaction lost a race; dbt may simply run it again.",
        (
            r"could not serialize access",
            r"\bserialization failure\b",
            r"serializable isolation violation",
            r"\bSQLSTATE\W+40001\b",
        ),
        "could not serialize access due to concurrent update",
        "1023 Serializable isolation violation on table - 156362, transactions forming the cycle are: 1, 2",
    ),
    _row(
        "database_restarting",
        "The server is starting, stopping or in recovery (restart, failover).",
        (
            r"the database system is (?:starting up|shutting down|in recovery mode|not (?:yet )?accepting)",
            r"terminating connection due to administrator command",
            r"\bcannot connect now\b",
        ),
        "FATAL:  the database system is starting up",
        "FATAL:  the database system is shutting down",
        "FATAL:  terminating connection due to administrator command",
    ),
    _row(
        "too_many_connections",
        "All connection slots were in use at that moment.",
        (
            r"\btoo many (?:connections|clients)\b",
            r"remaining connection slots are reserved",
            r"connection pool (?:is )?exhausted",
        ),
        "FATAL:  sorry, too many clients already",
    ),
    _row(
        "service_unavailable",
        "The service said it is temporarily unavailable or overloaded.",
        (
            r"\bservice (?:is )?(?:temporarily )?unavailable\b",
            r"\bserver (?:is )?(?:temporarily )?(?:unavailable|overloaded)\b",
            r"\btry again later\b",
        ),
        "503 Service Unavailable: Backend Error",
        "The server is temporarily unavailable, try again later",
    ),
    _row(
        "http_5xx",
        "A gateway or the API answered 502, 503 or 504.",
        (
            r"\b50[234] (?:server error|bad gateway|service unavailable|gateway time-?out)\b",
            r"\b(?:http|status)(?: code)?[ :=]+50[234]\b",
            r"\bbad gateway\b",
            r"\bgateway time-?out\b",
        ),
        "502 Server Error: Bad Gateway for url: https://acme.snowflakecomputing.com/queries/v1/query-request",
        "HTTP status 504 from https://api.example.com",
    ),
)

# Checked before the transient table: messages that look transient but are not.
PERMANENT_PATTERNS: tuple[Pattern, ...] = (
    _row(
        "statement_timeout",
        "The query hit a configured time limit; it will hit it again.",
        (
            r"\bstatement timeout\b",
            r"\bstatement or warehouse timeout\b",
            r"\bexceeded (?:the )?(?:maximum|configured) (?:query |execution )?time",
        ),
        "canceling statement due to statement timeout",
        "Statement reached its statement or warehouse timeout of 3600 second(s) and was canceled.",
        "Query exceeded the maximum execution time limit of 1.00h",
    ),
)

# Run reasons that are transient by themselves: the process running dbt died (a deploy, an
# OOM kill, a lost machine), not dbt's work.
TRANSIENT_REASONS = frozenset({"worker_lost"})
# Run reasons that are permanent by themselves, whatever a log says: the job's own time limit,
# a cancel, dockyard's own failure, and a run that could not start (profiles.yml, a secret,
# the dbt project, the run folder: nothing dbt did, and the next attempt would fail the same way).
PERMANENT_REASONS = frozenset({"timeout", "cancelled", "internal_error", "setup_failed"})
# Node statuses that are a failure of the node (run_results.json / sources.json).
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
# A data test that ran and found rows: the data is wrong, not the connection.
ASSERTION_STATUSES = frozenset({"fail"})
# Node statuses of a node that completed; every other status is re-run.
DONE_STATUSES = frozenset({"success", "pass", "warn", "no-op"})

_PROGRESS_LINE = re.compile(r"\b\d+ of \d+ (?:START|OK|PASS|WARN|ERROR|FAIL|SKIP|CANCEL|NO-OP)\b")


def match_message(text: str | None) -> tuple[str, str] | None:
    """``(kind, pattern name)`` of the first row that matches, permanent rows first;
    ``None`` when nothing does (unknown messages are permanent)."""
    if not text:
        return None
    for pattern in PERMANENT_PATTERNS:
        if pattern.search(text):
            return PERMANENT, pattern.name
    for pattern in TRANSIENT_PATTERNS:
        if pattern.search(text):
            return TRANSIENT, pattern.name
    return None


def is_transient_message(text: str | None) -> bool:
    found = match_message(text)
    return found is not None and found[0] == TRANSIENT


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


# -- what a retry re-runs ------------------------------------------------------------------

# dbt commands whose nodes can be selected; every other command is repeated whole.
SELECTABLE = frozenset({"run", "test", "seed", "snapshot", "build", "source freshness"})
SELECT_FLAGS = frozenset({"-s", "--select", "-m", "--models", "--model"})
EXCLUDE_FLAGS = frozenset({"--exclude"})
SELECTOR_FLAGS = frozenset({"--selector"})


@dataclass(frozen=True)
class RetryStep:
    """One step of a retry: where it was in the original run, and what to run now.

    ``how``: ``"select"`` (only the nodes that did not complete, listed), ``"exclude"`` (the
    command minus the nodes that completed), ``"whole"`` (the failed step again, as it
    was) or ``"unchanged"`` (a step after the failed one, never reached)."""

    index_in_original: int
    command: str
    how: str = "unchanged"


def node_selector(unique_id: str, *, indirect_empty: bool = False) -> str | None:
    """A dbt 1.11 selector matching exactly this node, or ``None`` for nodes that cannot be
    selected (hooks: ``operation.*``).

    - sources: ``source:<package>.<source>.<table>``;
    - unit tests: ``unit_test:<package>.<name>,fqn:<model>`` (unit test names are unique
      per model only; the ``fqn:<model>`` part reaches the unit test through dbt's
      indirect selection, so with ``--indirect-selection empty`` it is left out);
    - everything else (models, versioned models as ``name.v2``, seeds, snapshots, data
      tests): ``package:<package>,fqn:<name>``. A bare name would also match a node of
      that name in another package, or a unit test so named; ``<package>.<name>`` only
      matches nodes at the root of their folder (``shop.fct_orders`` selects nothing when
      the file is ``models/marts/fct_orders.sql``).
    """
    parts = unique_id.split(".")
    if len(parts) < 3:
        return None
    rtype, package = parts[0], parts[1]
    if rtype == "operation":
        return None
    if rtype == "source" and len(parts) >= 4:
        return f"source:{package}.{parts[2]}.{'.'.join(parts[3:])}"
    if rtype == "unit_test" and len(parts) >= 4:
        base = f"unit_test:{package}.{parts[3]}"
        return base if indirect_empty else f"{base},fqn:{parts[2]}"
    if rtype == "test":
        name = parts[2]  # test.<package>.<name>[.<hash>]
    else:
        name = ".".join(parts[2:])  # model.<package>.<name>[.v<version>]
    return f"package:{package},fqn:{name}"


def _take_option(args: list[str], flags: frozenset[str], multi: bool) -> tuple[list[str], list[str], bool]:
    """Remove every occurrence of an option; returns (other args, its values, found).

    dbt's multi-value options (``--select``, ``--exclude``) take every following argument
    up to the next one starting with ``-``, and split each on spaces."""
    rest: list[str] = []
    values: list[str] = []
    found = False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in flags:
            rest.append(arg)
            i += 1
            continue
        found = True
        i += 1
        if eq:
            values.extend(inline.split())
        if multi:
            while i < len(args) and not args[i].startswith("-"):
                values.extend(args[i].split())
                i += 1
        elif not eq and i < len(args):
            values.append(args[i])
            i += 1
    return rest, values, found


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _text(args: list[str]) -> str:
    return shlex.join(["dbt", *args])


def _indirect_empty(cmd: DbtCommand) -> bool:
    args = list(cmd.args)
    for i, arg in enumerate(args):
        if arg == "--indirect-selection" and i + 1 < len(args):
            return args[i + 1].lower() == "empty"
        if arg.startswith("--indirect-selection="):
            return arg.split("=", 1)[1].lower() == "empty"
    return False


def rewrite_step(step: StepResult, nodes: list[NodeResult], *, default_selector: bool = False) -> RetryStep:
    """The retry of one failed step, from its node results (see the module docstring)."""
    whole = RetryStep(step.index, step.command, "whole")
    cmd = parse_command(step.command)
    if cmd.name not in SELECTABLE:
        return whole
    empty = _indirect_empty(cmd)
    done, todo = [], []
    for node in nodes:
        selector = node_selector(node.unique_id, indirect_empty=empty)
        if selector is not None:
            (done if node.status in DONE_STATUSES else todo).append(selector)
    done, todo = _unique(done), _unique(todo)
    args = list(cmd.args)
    complete = step.status == StepStatus.ERROR and step.exit_code in (0, 1)
    if complete:
        if not todo:
            return whole  # the failure was outside the nodes (a hook, dbt itself)
        rest, _, _ = _take_option(args, SELECT_FLAGS, multi=True)
        rest, _, _ = _take_option(rest, SELECTOR_FLAGS, multi=False)
        return RetryStep(step.index, _text([*rest, "--select", *todo]), "select")
    if not done:
        return whole
    _, _, has_selector = _take_option(args, SELECTOR_FLAGS, multi=False)
    _, _, has_select = _take_option(args, SELECT_FLAGS, multi=True)
    if has_selector or (default_selector and not has_select):
        return whole
    rest, excluded, _ = _take_option(args, EXCLUDE_FLAGS, multi=True)
    merged = _unique([*excluded, *done])
    return RetryStep(step.index, _text([*rest, "--exclude", *merged]), "exclude")


def retry_steps(run: RunRecord, *, default_selector: bool = False) -> list[RetryStep]:
    """The steps of the next attempt of a failed run: its first failed step rewritten to
    the nodes that did not complete, then every later step unchanged. Empty when every
    step succeeded. ``default_selector``: the project's ``selectors.yml`` has a selector
    with ``default: true`` (see :func:`has_default_selector`)."""
    step = failed_step(run)
    if step is None:
        return []
    out = [rewrite_step(step, _step_nodes(run, step.index), default_selector=default_selector)]
    for later in sorted(run.steps, key=lambda s: s.index):
        if later.index > step.index:
            out.append(RetryStep(later.index, later.command, "unchanged"))
    for item in out:
        parse_command(item.command)  # every rewritten command is still a valid job command
    return out


def has_default_selector(project_dir: str | Path) -> bool:
    """Whether the dbt project's ``selectors.yml`` marks a selector ``default`` (a Jinja
    expression counts: it may be true)."""
    path = Path(project_dir) / "selectors.yml"
    if not path.is_file():
        return False
    from dockyard.config.yamlfile import read_yaml
    from dockyard.errors import ConfigError

    try:
        data = read_yaml(path) or {}  # bounded: a selectors.yml bomb is refused, not expanded
    except ConfigError:
        return False
    for selector in (data.get("selectors") or []) if isinstance(data, dict) else []:
        if not isinstance(selector, dict):
            continue
        value = selector.get("default")
        if value is True or (isinstance(value, str) and value.strip().lower() not in ("", "false")):
            return True
    return False


# -- documentation ---------------------------------------------------------------------------


def classification_table() -> str:
    """The Markdown table of ``docs/retries.md`` (a test keeps the two identical)."""

    def code(fragment: str) -> str:
        return "`" + fragment.replace("|", "\\|") + "`"

    def example(text: str) -> str:
        flat = " ".join(text.split())
        return "`" + flat.replace("|", "\\|").replace("`", "'") + "`"

    lines = ["| name | class | meaning | matches (case-insensitive, any of) | example |", "|---|---|---|---|---|"]
    for kind, table in ((PERMANENT, PERMANENT_PATTERNS), (TRANSIENT, TRANSIENT_PATTERNS)):
        for p in table:
            lines.append(
                f"| `{p.name}` | {kind} | {p.meaning} | {', '.join(code(f) for f in p.fragments)} "
                f"| {example(p.example)} |"
            )
    lines.append(
        "| `worker_lost` | transient | The run's reason: the process running dbt died. "
        "| (run reason) | `reason: worker_lost` |"
    )
    lines.append(
        "| `setup_failed` | permanent (never retried, even with `on: any`) | The run's reason: it "
        "could not start (profiles.yml missing or invalid, a target not in the profile, a secret whose "
        "variable is unset, dbt_project.yml invalid, the run folder not writable). "
        "| (run reason) | `reason: setup_failed` |"
    )
    return "\n".join(lines)
