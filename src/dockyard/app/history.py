"""The run history in the warehouse: each run's results in ``<schema>.dockyard_run_results``
of its environment's warehouse, for a team's own models (docs/metrics.md).

Out of band, never inside the job's dbt invocation: the built-in consumer
``warehouse_history`` queues a write when a run ends (store ``history_writes``, quick), and
the scheduler's ``WriteWarehouseHistory`` duty writes it later with one dockyard macro
(:func:`dockyard.app.warehouse.run_macro`: ``dbt run-operation`` with the environment's
profile, any adapter). The macro creates the table when it is missing, deletes the run's
earlier rows and inserts its rows with bound parameters (``adapter.add_query`` with
``bindings``: values are never spliced into SQL), so a write can be repeated. A failing
write is retried with backoff and never touches the run.

One row per executed node (one row with empty node columns for a run without nodes):
run_id, job, environment, trigger, run_status, run_started_at, run_finished_at, unique_id,
name, resource_type, node_status, execution_time, rows_affected, message (the stored, scrubbed
message, first 500 characters), written_at.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from dockyard import clock
from dockyard.errors import DockyardError
from dockyard.events import Event, RunEvent
from dockyard.plugins import Sink, SinkContext

log = logging.getLogger("dockyard.app.history")

COLUMNS = (
    "run_id",
    "job",
    "environment",
    "trigger",
    "run_status",
    "run_started_at",
    "run_finished_at",
    "unique_id",
    "name",
    "resource_type",
    "node_status",
    "execution_time",
    "rows_affected",
    "message",
    "written_at",
)
MAX_MESSAGE = 500
MAX_ATTEMPTS = 8  # then the write is given up (state failed, the error kept)
BASE_BACKOFF_S = 30.0
MAX_BACKOFF_S = 3600.0
CLAIM_TTL_S = 1800.0  # a writer that died holding a write: it is taken over after this
BUSY_WAIT = timedelta(minutes=30)  # a write waits this long for its environment's runs to end
MAX_ARGS_BYTES = 96 * 1024  # of one `--args` (Linux limits one argument to 128 KiB): more rows, more calls
BATCH_ROWS = 100  # rows per INSERT statement

MACROS = """{# written by dockyard: the run history in the warehouse (docs/metrics.md) #}
{% macro dockyard__write_run_results(schema_name, table, run_id, rows, replace) %}
  {% set schema_name = schema_name or target.schema %}
  {% set relation = api.Relation.create(database=target.database, schema=schema_name, identifier=table) %}
  {% do adapter.create_schema(api.Relation.create(database=target.database, schema=schema_name)) %}
  {% set s, ts, f, n = dbt.type_string(), dbt.type_timestamp(), dbt.type_float(), dbt.type_bigint() %}
  {% set types = {'run_id': n, 'job': s, 'environment': s, 'trigger': s, 'run_status': s,
      'run_started_at': ts, 'run_finished_at': ts, 'unique_id': s, 'name': s, 'resource_type': s,
      'node_status': s, 'execution_time': f, 'rows_affected': n, 'message': s, 'written_at': ts} %}
  {% set names = COLUMNS %}
  {% set columns, definitions, placeholders = [], [], [] %}
  {% set b = get_binding_char() %}
  {% for name in names %}
    {% set column = adapter.quote(name) if name == 'trigger' else name %}{# a keyword on some warehouses #}
    {% do columns.append(column) %}
    {% do definitions.append(column ~ ' ' ~ types[name]) %}
    {% do placeholders.append('cast(' ~ b ~ ' as ' ~ ts ~ ')' if types[name] == ts else b) %}
  {% endfor %}
  {% do run_query('create table if not exists ' ~ relation ~ ' (' ~ definitions | join(', ') ~ ')') %}
  {% if replace %}
    {% do run_query('delete from ' ~ relation ~ ' where run_id = ' ~ (run_id | int)) %}
  {% endif %}
  {% set one = '(' ~ placeholders | join(', ') ~ ')' %}
  {% for batch in rows | batch(BATCH_ROWS) %}
    {% set bindings, tuples = [], [] %}
    {% for row in batch %}
      {% do bindings.extend(row) %}
      {% do tuples.append(one) %}
    {% endfor %}
    {% set sql = 'insert into ' ~ relation ~ ' (' ~ columns | join(', ') ~ ') values ' ~ tuples | join(', ') %}
    {% do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) %}
  {% endfor %}
  {% do adapter.commit() %}
  {{ log('dockyard-history: ' ~ tojson({'rows': rows | length, 'relation': relation | string}), info=True) }}
{% endmacro %}
""".replace("BATCH_ROWS", str(BATCH_ROWS)).replace("COLUMNS", repr(list(COLUMNS)))


def _ts(value: datetime | None) -> str | None:
    """A UTC timestamp as the warehouse's ``timestamp`` (no zone) takes it."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ") if value else None


def history_rows(run, written_at: datetime) -> list[list[Any]]:
    """The rows of ``run`` (a RunRecord with its nodes), in :data:`COLUMNS` order."""
    head = [
        run.id,
        run.job,
        run.environment,
        run.trigger,
        run.status.value,
        _ts(run.started_at),
        _ts(run.finished_at),
    ]
    nodes = {}
    for node in run.nodes:  # a node run in several steps: its last step's result
        if node.executed:
            nodes[node.unique_id] = node
    rows = [
        head
        + [
            n.unique_id,
            n.name,
            n.resource_type,
            n.status,
            n.execution_time_s,
            n.rows_affected,
            (n.message or None) and n.message[:MAX_MESSAGE],
            _ts(written_at),
        ]
        for n in nodes.values()
    ]
    return rows or [head + [None, None, None, None, None, None, None, _ts(written_at)]]


def chunks(rows: list[list[Any]], limit: int = MAX_ARGS_BYTES) -> list[list[list[Any]]]:
    """``rows`` cut so that each part's JSON stays under ``limit`` bytes (one row at least)."""
    out: list[list[list[Any]]] = [[]]
    size = 0
    for row in rows:
        n = len(json.dumps(row)) + 2
        if out[-1] and size + n > limit:
            out.append([])
            size = 0
        out[-1].append(row)
        size += n
    return out


def history_environments(app) -> set[str]:
    """The environments whose runs are written: ``metrics.warehouse_history.environments``,
    default every environment with jobs."""
    config = app.config.metrics.warehouse_history
    if config.environments is not None:
        return set(config.environments) & set(app.config.environments)
    return {job.environment for job in app.config.jobs}


def write_run(app, run_id: int) -> int:
    """Write one run's rows to its environment's warehouse now; the node rows written.
    Raises :class:`dockyard.errors.DockyardError` when dbt fails."""
    from dockyard.app.warehouse import run_macro

    config = app.config.metrics.warehouse_history
    run = app.store.reader.runs.get_run(run_id)
    rows = history_rows(run, clock.now())
    for i, part in enumerate(chunks(rows)):
        run_macro(
            app,
            run.environment,
            "dockyard__write_run_results",
            {"schema_name": config.schema_, "table": config.table, "run_id": run.id, "rows": part, "replace": i == 0},
            macros={"dockyard__history.sql": MACROS},
            folder="history",
            timeout=600,
        )
    return len(rows)


def retry_at(now: datetime, attempts: int) -> datetime | None:
    """When a write that failed its ``attempts``-th time is tried again (doubling from
    :data:`BASE_BACKOFF_S` up to :data:`MAX_BACKOFF_S`); None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + timedelta(seconds=min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, attempts - 1)))


def _scrubbed(app, env_name: str, exc: Exception) -> str:
    """The error of a failed write without the environment's secret values."""
    from dockyard.project import resolve_secrets
    from dockyard.secrets import REDACTION_FAILED, Scrubber

    what = exc.render() if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {exc}"
    try:
        return Scrubber(resolve_secrets(app.loaded, env_name).values()).scrub(what)
    except Exception:  # noqa: BLE001 - fail closed
        return REDACTION_FAILED


def write_pending(app, holder: str, *, limit: int = 5, now: datetime | None = None) -> list[tuple[int, str]]:
    """Write the due queued runs (claimed by ``holder``): ``[(run_id, "done" | "retry" |
    "failed")]``. A run of the same environment starting or running holds its writes back
    (DuckDB lets one process write) for at most :data:`BUSY_WAIT`."""
    now = now or clock.now()
    state = app.store.metric_state
    busy, _ = app.runs.search(statuses=["starting", "running"], limit=100)
    claimed = state.claim_history(
        holder,
        CLAIM_TTL_S,
        limit=limit,
        skip_environments=sorted({r.environment for r in busy}),
        skip_newer_than=now - BUSY_WAIT,
        now=now,
    )
    out = []
    for row in claimed:
        run_id = row["run_id"]
        try:
            rows = write_run(app, run_id)
        except Exception as exc:  # noqa: BLE001 - a failed write is retried, never raised
            what = _scrubbed(app, row["environment"], exc)
            again = retry_at(clock.now(), row["attempts"])
            state.history_failed(run_id, holder, what, again)
            log.warning(
                "warehouse history of run %s (%s): %s; %s",
                run_id,
                row["environment"],
                what.splitlines()[0] if what else "failed",
                f"again at {again:%H:%M:%S}" if again else f"given up after {row['attempts']} attempts",
            )
            out.append((run_id, "retry" if again else "failed"))
            continue
        state.history_done(run_id, holder, rows)
        log.info("warehouse history of run %s written (%d rows)", run_id, rows)
        out.append((run_id, "done"))
    return out


class WarehouseHistoryConsumer(Sink):
    """The ``dockyard.warehouse_history`` consumer: queues the write of each ended run."""

    def __init__(self, app):
        # a dockyard.app.consumers.Consumer, built as one (not imported: consumers imports
        # this module's factory, and the import graph stays without a cycle)
        super().__init__(
            "dockyard.warehouse_history", {}, SinkContext(app.loaded.base_dir, app.state_dir, app.loaded.path)
        )
        self.app = app

    def deliver(self, event: Event) -> None:
        if not RunEvent(event.type).is_final or event.run_id is None:
            return
        env = (event.payload or {}).get("environment")
        if env in history_environments(self.app):
            self.app.store.metric_state.queue_history(event.run_id, env)


def factory(app) -> WarehouseHistoryConsumer | None:
    """The consumer, or None unless ``metrics.warehouse_history.enabled``."""
    return WarehouseHistoryConsumer(app) if app.config.metrics.warehouse_history.enabled else None
