"""The classification table: message fragments that make a failure *transient* (worth
another attempt) or *permanent*, documented in ``docs/retries.md`` (:func:`classification_table`
renders it; a test keeps the two identical)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TRANSIENT = "transient"
PERMANENT = "permanent"


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
