"""The run store schema (SQLAlchemy Core).

Any change here needs a new migration in ``store/migrations/versions``; a test
compares the migrated database with this metadata on SQLite and PostgreSQL.

Every constraint and index has an explicit name (same names in the migrations) so
later migrations can refer to them on both backends. Timestamps are UTC
(:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    Binds convert aware values to UTC (naive values are taken as UTC); SQLite stores
    them naive, PostgreSQL as ``timestamptz``. Results are always aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON documents; JSONB on PostgreSQL. ``None`` is stored as SQL NULL.
JSONDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

metadata = MetaData()


def _created_updated() -> list[Column]:
    return [Column("created_at", UTCDateTime(), nullable=False), Column("updated_at", UTCDateTime(), nullable=False)]


environments = Table(
    "environments",
    metadata,
    Column("id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("target", String(200), nullable=False),
    Column("schema", String(200), nullable=True),
    Column("threads", Integer, nullable=True),
    *_created_updated(),
    PrimaryKeyConstraint("id", name="pk_environments"),
    UniqueConstraint("name", name="uq_environments_name"),
    sqlite_autoincrement=True,
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("cron", String(200), nullable=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("definition", JSONDoc, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    *_created_updated(),
    PrimaryKeyConstraint("id", name="pk_jobs"),
    UniqueConstraint("name", name="uq_jobs_name"),
    sqlite_autoincrement=True,  # ids are never reused
)

#: The trigger overrides that carry a run's pull request, in the order the first set one
#: wins (dbt Cloud's names; ``dockyard.app.ci.PR_FIELDS`` maps providers to them).
PR_OVERRIDE_KEYS = (
    "github_pull_request_id",
    "gitlab_merge_request_id",
    "azure_pull_request_id",
    "non_native_pull_request_id",
)


def pr_number_of(overrides: dict | None) -> int | None:
    """The ``pr_number`` column of a run with these overrides: the first pull-request field
    set (as ``dockyard.app.ci.pr_number`` reads it), else None."""
    for key in PR_OVERRIDE_KEYS:
        value = (overrides or {}).get(key)
        if value is not None and value != "":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


runs = Table(
    "runs",
    metadata,
    Column("id", Integer, nullable=False),
    Column("job_id", Integer, nullable=True),
    Column("job_name", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("reason", Text, nullable=True),
    Column("has_warnings", Boolean, nullable=False, server_default=false()),
    Column("trigger", String(32), nullable=False, server_default="manual"),
    Column("cause", Text, nullable=True),
    Column("scheduled_for", UTCDateTime(), nullable=True),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("retry_of", Integer, nullable=True),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("overrides", JSONDoc, nullable=True),
    Column("git_sha", String(64), nullable=True),
    Column("git_branch", String(255), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("queued_at", UTCDateTime(), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("artifacts_dir", Text, nullable=True),
    Column("worker_id", String(200), nullable=True),
    Column("lease_epoch", Integer, nullable=False, server_default=text("0")),
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    # 0002: the queue
    Column("not_before", UTCDateTime(), nullable=True),  # earliest claim time (retry backoff)
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("cancel_requested_at", UTCDateTime(), nullable=True),
    Column("coalesced", Integer, nullable=False, server_default=text("0")),  # triggers folded in
    Column("host", String(255), nullable=True),
    Column("pgid", Integer, nullable=True),  # the dbt process group, for reaping
    Column("idempotency_key", String(255), nullable=True),
    # 0004: {"target", "profiles_dir", "sessions": [[client addr, port, first seen]]} of the
    # running step's dbt on a PostgreSQL warehouse (see dockyard.runner.sessions)
    Column("warehouse_sessions", JSONDoc, nullable=True),
    # 0012: the pull request of the overrides (the first of PR_OVERRIDE_KEYS set), written
    # with them (dockyard.store.writes); the runs list's pr= filter walks ix_runs_pr_number_id
    Column("pr_number", Integer, nullable=True),
    PrimaryKeyConstraint("id", name="pk_runs"),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_runs_job_id_jobs", ondelete="SET NULL"),
    ForeignKeyConstraint(["retry_of"], ["runs.id"], name="fk_runs_retry_of_runs", ondelete="SET NULL"),
    sqlite_autoincrement=True,  # ids are never reused
)
Index("ix_runs_status", runs.c.status)
Index("ix_runs_job_id_id", runs.c.job_id, runs.c.id.desc())
Index("ix_runs_created_at", runs.c.created_at)

run_steps = Table(
    "run_steps",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("index", Integer, nullable=False),
    Column("command", Text, nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("exit_code", Integer, nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("log_path", Text, nullable=True),
    PrimaryKeyConstraint("id", name="pk_run_steps"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_steps_run_id_runs", ondelete="CASCADE"),
    UniqueConstraint("run_id", "index", name="uq_run_steps_run_id_index"),
)

node_results = Table(
    "node_results",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("unique_id", String(512), nullable=False),
    Column("name", String(512), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("execution_time_s", Float, nullable=True),
    Column("rows_affected", BigInteger, nullable=True),
    Column("adapter_response", JSONDoc, nullable=True),
    Column("message", Text, nullable=True),
    Column("compiled_path", Text, nullable=True),
    Column("thread", String(200), nullable=True),
    PrimaryKeyConstraint("id", name="pk_node_results"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_node_results_run_id_runs", ondelete="CASCADE"),
    UniqueConstraint("run_id", "step_index", "unique_id", name="uq_node_results_run_id_step_index_unique_id"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False, server_default=text("0")),
    Column("sha256", String(64), nullable=False),
    PrimaryKeyConstraint("id", name="pk_artifacts"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_artifacts_run_id_runs", ondelete="CASCADE"),
    UniqueConstraint("run_id", "step_index", "name", name="uq_artifacts_run_id_step_index_name"),
)

# -- 0002: the queue ----------------------------------------------------------------------

fires = Table(  # one row per schedule fire / trigger key: UNIQUE (job_id, fire_key) = exactly once
    "fires",
    metadata,
    Column("id", Integer, nullable=False),
    Column("job_id", Integer, nullable=False),
    Column("fire_key", String(255), nullable=False),
    Column("scheduled_for", UTCDateTime(), nullable=True),
    Column("run_id", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_fires"),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_fires_job_id_jobs", ondelete="CASCADE"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_fires_run_id_runs", ondelete="SET NULL"),
    UniqueConstraint("job_id", "fire_key", name="uq_fires_job_id_fire_key"),
)
Index("ix_fires_run_id", fires.c.run_id)

schedule_state = Table(
    "schedule_state",
    metadata,
    Column("job_id", Integer, nullable=False),
    Column("last_fire_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("job_id", name="pk_schedule_state"),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_schedule_state_job_id_jobs", ondelete="CASCADE"),
)

processes = Table(  # schedulers, workers and servers, for health pages and reaping
    "processes",
    metadata,
    Column("id", String(200), nullable=False),  # "host:pid:uuid8"
    Column("kind", String(16), nullable=False),  # scheduler | worker | server
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("stopped_at", UTCDateTime(), nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("info", JSONDoc, nullable=True),
    PrimaryKeyConstraint("id", name="pk_processes"),
)

leases = Table(  # named leader leases (e.g. the active scheduler); epoch only grows
    "leases",
    metadata,
    Column("name", String(200), nullable=False),
    Column("holder", String(200), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("name", name="pk_leases"),
)

# -- 0003: the API ------------------------------------------------------------------------

jobs.append_column(  # "config" (dockyard.yml, synced) or "api" (created through the API)
    Column("source", String(16), nullable=False, server_default="config")
)

api_tokens = Table(  # only the SHA-256 digest of a token is kept; the token is shown once
    "api_tokens",
    metadata,
    Column("id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),  # "dky_" + 8 characters, for display
    Column("digest", String(64), nullable=False),
    Column("scope", String(16), nullable=False),  # read | trigger | admin
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_api_tokens"),
    UniqueConstraint("digest", name="uq_api_tokens_digest"),
    sqlite_autoincrement=True,  # ids are never reused
)

idempotency_keys = Table(  # Idempotency-Key of run triggers, per token, kept 24 h
    "idempotency_keys",
    metadata,
    Column("id", Integer, nullable=False),
    Column("token_id", Integer, nullable=False),  # 0 when the API runs without tokens
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of the request
    Column("run_id", Integer, nullable=True),  # NULL while the first request is in progress
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_idempotency_keys_run_id_runs", ondelete="CASCADE"),
    UniqueConstraint("token_id", "key", name="uq_idempotency_keys_token_id_key"),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)
Index("ix_runs_finished_at", runs.c.finished_at)

# -- 0005: run events ---------------------------------------------------------------------

outbox = Table(  # run events, written in the transaction of the run change they report
    "outbox",
    metadata,
    Column("id", Integer, nullable=False),  # delivery order: ids commit in order (see store/outbox.py)
    Column("key", String(255), nullable=False),  # idempotency key, e.g. run:12:final
    Column("type", String(32), nullable=False),  # a dockyard.events.RunEvent
    Column("run_id", Integer, nullable=True),  # no foreign key: an event outlives a deleted run
    Column("payload", JSONDoc, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_outbox"),
    UniqueConstraint("key", name="uq_outbox_key"),
    sqlite_autoincrement=True,  # ids are never reused: cursors compare them
)
Index("ix_outbox_run_id", outbox.c.run_id)
Index("ix_outbox_created_at", outbox.c.created_at)

outbox_cursors = Table(  # per sink: the last event delivered, who delivers, its backoff
    "outbox_cursors",
    metadata,
    Column("sink", String(200), nullable=False),
    Column("last_id", Integer, nullable=False, server_default=text("0")),
    Column("holder", String(200), nullable=True),  # the dispatcher delivering now (a lease)
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("failures", Integer, nullable=False, server_default=text("0")),  # in a row
    Column("next_attempt_at", UTCDateTime(), nullable=True),  # backoff after a failure
    Column("last_error", Text, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("sink", name="pk_outbox_cursors"),
)

# -- 0006: code from git, webhooks, pull-request schemas -----------------------------------

commits = Table(  # commits of repository.branch the server fetched, and whether they deploy
    "commits",
    metadata,
    Column("id", Integer, nullable=False),
    Column("sha", String(64), nullable=False),
    Column("branch", String(255), nullable=True),
    Column("status", String(16), nullable=False),  # ok | refused
    Column("error", Text, nullable=True),  # the located config error of a refused commit
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("deployed_at", UTCDateTime(), nullable=True),  # set when its jobs came into force
    PrimaryKeyConstraint("id", name="pk_commits"),
    UniqueConstraint("sha", name="uq_commits_sha"),
    sqlite_autoincrement=True,
)
Index("ix_commits_deployed_at", commits.c.deployed_at)

webhook_deliveries = Table(  # inbound webhook deliveries seen (de-duplication by delivery id)
    "webhook_deliveries",
    metadata,
    Column("id", Integer, nullable=False),
    Column("provider", String(16), nullable=False),  # github | gitlab
    Column("delivery_id", String(255), nullable=False),
    Column("event", String(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("state", String(16), nullable=False),  # pending (being handled) | done
    Column("claimed_at", UTCDateTime(), nullable=False),  # the handler's start (a stale claim is taken over)
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("result", JSONDoc, nullable=True),  # what the handler did (no secrets, no payload)
    PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    UniqueConstraint("provider", "delivery_id", name="uq_webhook_deliveries_provider_delivery_id"),
    sqlite_autoincrement=True,
)
Index("ix_webhook_deliveries_received_at", webhook_deliveries.c.received_at)

pr_schemas = Table(  # the warehouse schemas pull-request builds wrote, until dropped
    "pr_schemas",
    metadata,
    Column("id", Integer, nullable=False),
    Column("environment", String(200), nullable=False),
    Column("pr_number", Integer, nullable=False),
    Column("schema", String(255), nullable=False),
    Column("head_sha", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # open | closed | dropped
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),  # the last build (or state change)
    Column("dropped_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_pr_schemas"),
    UniqueConstraint("environment", "pr_number", name="uq_pr_schemas_environment_pr_number"),
    sqlite_autoincrement=True,
)
Index("ix_pr_schemas_state", pr_schemas.c.state)

# -- ALERTS: 0007 notifications (deliveries) and alert state ---------------------------------

notifications = Table(  # one delivery of one alert to one channel (and deferred run alerts)
    "notifications",
    metadata,
    Column("id", Integer, nullable=False),
    Column("alert_key", String(255), nullable=False),  # Alert.key: one delivery per (alert, channel)
    Column("channel", String(255), nullable=False),  # the notification's name, e.g. job:<job>:0
    Column("channel_type", String(16), nullable=False),  # slack | msteams | email | pagerduty | webhook
    Column("kind", String(16), nullable=False),  # an AlertKind
    Column("event", String(32), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("run_id", Integer, nullable=True),  # no foreign key: the log outlives a deleted run
    Column("job", String(200), nullable=True),
    Column("environment", String(200), nullable=True),
    Column("status", String(16), nullable=False),  # pending | sent | failed | suppressed | deferred
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("holder", String(200), nullable=True),  # the sender working on it (a lease)
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),  # scrubbed: no URL path, key or password
    Column("result", String(500), nullable=True),  # the channel's answer ("200", "250 OK")
    Column("alert", JSONDoc, nullable=False),  # Alert.to_dict(): no secrets
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_notifications"),
    UniqueConstraint("alert_key", "channel", name="uq_notifications_alert_key_channel"),
    sqlite_autoincrement=True,
)
Index("ix_notifications_run_id", notifications.c.run_id)
Index("ix_notifications_status_next_attempt_at", notifications.c.status, notifications.c.next_attempt_at)

alert_state = Table(  # per (subject, channel): the no-storm and resolve state
    "alert_state",
    metadata,
    Column("subject", String(500), nullable=False),
    Column("channel", String(255), nullable=False),
    Column("last_event", String(32), nullable=False),
    Column("open", Boolean, nullable=False, server_default=false()),  # an unresolved alert was sent
    Column("last_final", Boolean, nullable=False, server_default=true()),  # the open alert was final
    Column("last_sent_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("subject", "channel", name="pk_alert_state"),
)

# -- FRESHNESS: source freshness history (0008) ---------------------------------------------

source_freshness = Table(  # one row per source and `dbt source freshness` step; kept (rows are small)
    "source_freshness",
    metadata,
    Column("id", Integer, nullable=False),
    Column("run_id", Integer, nullable=False),  # no foreign key: the history outlives a deleted run
    Column("step_index", Integer, nullable=False),
    Column("environment", String(200), nullable=False),
    Column("job", String(255), nullable=True),
    Column("unique_id", String(512), nullable=False),  # source.<project>.<source>.<table>
    Column("source_name", String(255), nullable=False),
    Column("table_name", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # pass | warn | error | runtime error
    Column("previous_status", String(16), nullable=True),  # the source's status before, in this environment
    Column("max_loaded_at", UTCDateTime(), nullable=True),
    Column("snapshotted_at", UTCDateTime(), nullable=True),
    Column("age_seconds", Float, nullable=True),  # max_loaded_at_time_ago_in_s at the check
    Column("warn_after", JSONDoc, nullable=True),  # dbt's criteria: {"count": 1, "period": "hour"}
    Column("error_after", JSONDoc, nullable=True),
    Column("error", Text, nullable=True),  # a runtime error's message (scrubbed, bounded)
    Column("checked_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_source_freshness"),
    UniqueConstraint("run_id", "step_index", "unique_id", name="uq_source_freshness_run_id_step_index_unique_id"),
    sqlite_autoincrement=True,
)
Index(
    "ix_source_freshness_environment_unique_id_checked_at",
    source_freshness.c.environment,
    source_freshness.c.unique_id,
    source_freshness.c.checked_at,
)

source_freshness_latest = Table(  # per environment and source: its last check (latest() reads only these)
    "source_freshness_latest",
    metadata,
    Column("environment", String(200), nullable=False),
    Column("unique_id", String(512), nullable=False),
    Column("freshness_id", Integer, nullable=False),  # the source_freshness row
    Column("checked_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("environment", "unique_id", name="pk_source_freshness_latest"),
)

# -- METRICS: 0010 slowdown state, warehouse history queue, daily digests ------------------

# a model's history across runs (slowdowns, /metrics, costs) is read by unique id
Index("ix_node_results_unique_id_run_id", node_results.c.unique_id, node_results.c.run_id)

model_slowdowns = Table(  # per (environment, model): is it slow now, and under which alert
    "model_slowdowns",
    metadata,
    Column("environment", String(200), nullable=False),
    Column("unique_id", String(512), nullable=False),
    Column("slow", Boolean, nullable=False, server_default=false()),
    Column("subject", String(500), nullable=True),  # the alert that reported it slow
    Column("run_id", Integer, nullable=True),  # the run that changed the state
    Column("ratio", Float, nullable=True),  # execution time / median then
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("environment", "unique_id", name="pk_model_slowdowns"),
)

history_writes = Table(  # runs whose results are to be written to the warehouse (a queue)
    "history_writes",
    metadata,
    Column("run_id", Integer, nullable=False),  # no foreign key: a queued write outlives nothing
    Column("environment", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # pending | done | failed (gave up)
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("holder", String(200), nullable=True),  # the writer working on it (a lease)
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),  # scrubbed, bounded
    Column("rows", Integer, nullable=True),  # node rows written
    Column("created_at", UTCDateTime(), nullable=False),
    Column("written_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("run_id", name="pk_history_writes"),
)
Index("ix_history_writes_state_next_attempt_at", history_writes.c.state, history_writes.c.next_attempt_at)

digests = Table(  # one row per local day of the daily digest: exactly once across schedulers
    "digests",
    metadata,
    Column("day", String(10), nullable=False),  # the local date, YYYY-MM-DD
    Column("holder", String(200), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=False),  # a holder that died is taken over after it
    Column("sent_at", UTCDateTime(), nullable=True),  # notify() returned
    Column("queued", Integer, nullable=True),  # deliveries queued
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("day", name="pk_digests"),
)

#: upper bounds (seconds) of the model duration histogram's buckets (b00..b11, cumulative)
MODEL_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

model_durations = Table(  # per (environment, model): the histogram of its execution times
    "model_durations",
    metadata,
    Column("environment", String(200), nullable=False),
    Column("unique_id", String(512), nullable=False),
    Column("count", BigInteger, nullable=False, server_default=text("0")),
    Column("sum", Float, nullable=False, server_default=text("0")),
    *[Column(f"b{i:02d}", BigInteger, nullable=False, server_default=text("0")) for i in range(len(MODEL_BUCKETS))],
    Column("last_run_id", Integer, nullable=False),  # the newest run counted (the most recent models)
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("environment", "unique_id", name="pk_model_durations"),
)
Index("ix_model_durations_last_run_id", model_durations.c.last_run_id)

counted_runs = Table(  # the runs already counted in model_durations (each counts once)
    "counted_runs",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("counted_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("run_id", name="pk_counted_runs"),
)

# -- MONITORS: data monitors' measurements, state and pending checks (0009) ---------------

monitor_measurements = Table(  # every measurement of a monitor in an environment (kept; rows are small)
    "monitor_measurements",
    metadata,
    Column("id", Integer, nullable=False),
    Column("monitor", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("run_id", Integer, nullable=True),  # the job run it followed; no foreign key (outlives the run)
    Column("measured_at", UTCDateTime(), nullable=False),
    Column("value", Float, nullable=True),  # rows, age in seconds, columns, failing rows (None on error)
    Column("status", String(16), nullable=False),  # ok | alert | warming_up | error
    Column("score", Float, nullable=True),  # the anomaly z
    Column("expected", Float, nullable=True),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Column("detail", JSONDoc, nullable=True),  # columns, a bounded failing-rows sample, the scrubbed error
    Column("trigger", String(16), nullable=False),  # schedule | after_job | manual
    PrimaryKeyConstraint("id", name="pk_monitor_measurements"),
    sqlite_autoincrement=True,
)
Index(
    "ix_monitor_measurements_monitor_environment_measured_at",
    monitor_measurements.c.monitor,
    monitor_measurements.c.environment,
    monitor_measurements.c.measured_at,
)

monitor_state = Table(  # per (monitor, environment): the state alerts are sent on changes of
    "monitor_state",
    metadata,
    Column("monitor", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # ok | alert | warming_up | error
    Column("since", UTCDateTime(), nullable=False),
    Column("last_alert_at", UTCDateTime(), nullable=True),
    Column("measurement_id", Integer, nullable=True),  # the latest measurement
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("monitor", "environment", name="pk_monitor_state"),
)

monitor_checks = Table(  # checks to run (after a job, a cron fire, the API): the RunMonitors duty's queue
    "monitor_checks",
    metadata,
    Column("id", Integer, nullable=False),
    Column("key", String(255), nullable=False),  # idempotency: after_job:<run>, schedule:<monitor>:<fire>...
    Column("monitors", JSONDoc, nullable=False),  # the monitor names
    Column("environment", String(200), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | after_job | manual
    Column("run_id", Integer, nullable=True),
    Column("job", String(200), nullable=True),  # the job the check followed (alert routing)
    Column("state", String(16), nullable=False),  # pending | running | done
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("holder", String(200), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("error", Text, nullable=True),  # scrubbed, bounded
    PrimaryKeyConstraint("id", name="pk_monitor_checks"),
    UniqueConstraint("key", name="uq_monitor_checks_key"),
    sqlite_autoincrement=True,
)
Index("ix_monitor_checks_state_requested_at", monitor_checks.c.state, monitor_checks.c.requested_at)

# -- 0011: the web UI's users and sessions ------------------------------------------------

users = Table(  # dockyard users create: an argon2id hash, never the password
    "users",
    metadata,
    Column("id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("scope", String(16), nullable=False),  # read | trigger | admin
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("id", name="pk_users"),
    UniqueConstraint("name", name="uq_users_name"),
    sqlite_autoincrement=True,
)

ui_sessions = Table(  # a login: the SHA-256 of its cookie, for a user or an API token
    "ui_sessions",
    metadata,
    Column("id", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("user_id", Integer, nullable=True),
    Column("token_id", Integer, nullable=True),
    Column("scope", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_ui_sessions"),
    UniqueConstraint("digest", name="uq_ui_sessions_digest"),
    ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_ui_sessions_user_id_users", ondelete="CASCADE"),
)
Index("ix_ui_sessions_user_id", ui_sessions.c.user_id)
Index("ix_ui_sessions_token_id", ui_sessions.c.token_id)
Index("ix_ui_sessions_expires_at", ui_sessions.c.expires_at)
# an environment's newest runs (the UI's environments page, the runs list by environment)
Index("ix_runs_environment_id", runs.c.environment, runs.c.id.desc())
# a pull request's runs, newest first (0012)
Index("ix_runs_pr_number_id", runs.c.pr_number, runs.c.id.desc())
