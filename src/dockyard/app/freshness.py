"""Source freshness: every ``dbt source freshness`` step's results, kept, and an alert per change.

The built-in consumer ``freshness`` (:class:`FreshnessConsumer`, always on: the history is
always kept) reads, on each ``step.finished`` of a ``dbt source freshness`` step (a job's own
command, or the step ``run_generate_sources`` / ``fresh_sources_only`` add), that step's
``sources.json`` from the run's artifacts (scrubbed copies, also when the step failed: dbt
writes it with the error statuses; runtime errors, which dbt leaves out of it, come from the
step's node results) and records one row per source in the store (``store.freshness``).

A source whose status differs from its previous check in the same environment is a change;
the changes of one step make one alert per new status (:func:`build_alerts`: 40 sources
going stale at once are one message listing them), sent through ``app.alerts.notify``. The
first check of a source alerts only when it is not ``pass``. Redelivering the event records
nothing twice and alerts nothing twice (alert keys are per run, step and status).

``app.freshness`` (:class:`FreshnessService`) answers ``latest``, ``history`` and ``stale``
for the CLI (``dockyard freshness``), the API (``/api/v1/freshness``) and the daily digest.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard import clock
from dockyard.app.consumer import Consumer
from dockyard.app.freshness_alerts import age_text, build_alerts, changes
from dockyard.dbt import sources as dbt_sources
from dockyard.dbt.command import CommandError, parse_command
from dockyard.errors import DockyardError
from dockyard.events import Event, RunEvent
from dockyard.store.freshness import FreshnessRecord
from dockyard.text import storable, unstorable_problem

log = logging.getLogger("dockyard.app.freshness")
FRESHNESS_COMMAND = "source freshness"
RUNTIME_ERROR_STATUSES = ("error", "runtime error")
MAX_SOURCES_JSON_BYTES = 64 * 1024 * 1024
MAX_UNIQUE_ID_CHARS = 512  # the store's columns
MAX_NAME_CHARS = 255


def is_freshness_command(command: str | None) -> bool:
    try:
        return parse_command(command or "").name == FRESHNESS_COMMAND
    except CommandError:
        return False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(record: FreshnessRecord, now: datetime | None = None) -> dict[str, Any]:
    """One check as the CLI and the API show it (JSON-ready): the age at the check and now."""
    now = now or clock.now()
    age_now = (now - record.max_loaded_at).total_seconds() if record.max_loaded_at else None
    return {
        "id": record.id,
        "unique_id": record.unique_id,
        "source": f"{record.source_name}.{record.table_name}" if record.source_name else record.table_name,
        "source_name": record.source_name,
        "table_name": record.table_name,
        "environment": record.environment,
        "status": record.status,
        "previous_status": record.previous_status,
        "max_loaded_at": _iso(record.max_loaded_at),
        "age_seconds": record.age_seconds,
        "age": age_text(record.age_seconds),
        "age_now_seconds": round(age_now, 3) if age_now is not None else None,
        "age_now": age_text(age_now),
        "warn_after": record.warn_after,
        "error_after": record.error_after,
        "thresholds": dbt_sources.describe_criteria(record.warn_after, record.error_after),
        "error": record.error,
        "checked_at": _iso(record.checked_at),
        "run_id": record.run_id,
        "step_index": record.step_index,
        "job": record.job,
    }


class FreshnessService:
    """``app.freshness``: the freshness history, and recording a step's results."""

    def __init__(self, app):
        self.app = app

    def latest(self, environment: str | None = None) -> list[dict[str, Any]]:
        """The last check of every source (per environment): status, max loaded at, age at
        the check and now, when it was checked, by which run."""
        now = clock.now()
        return [view(r, now) for r in self.app.store.reader.freshness.latest(environment)]

    def history(
        self, source: str, environment: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The checks of one source (unique id, ``<source>.<table>`` or table name), newest first."""
        if problem := unstorable_problem(source, "a source name"):
            raise DockyardError(problem, hint="name a source by its unique id, <source>.<table> or table name")
        now = clock.now()
        rows = self.app.store.reader.freshness.history(source, environment, limit=limit, before_id=before_id)
        return [view(r, now) for r in rows]

    def stale(self, environment: str | None = None) -> list[dict[str, Any]]:
        """The sources whose last check was not ``pass`` (warn, error, runtime error)."""
        return [s for s in self.latest(environment) if s["status"] in dbt_sources.STALE]

    # -- recording -------------------------------------------------------------------------
    def checks_of_step(self, run_id: int, step_index: int) -> list[dbt_sources.SourceCheck]:
        """What the step's ``sources.json`` says, plus the sources whose check failed (from
        the step's node results: dbt leaves runtime errors out of the file)."""
        run = self.app.store.reader.runs.get_run(run_id)
        checks = dbt_sources.parse(_load(self.app.runs.artifact_root(run, step_index) / "sources.json"))
        seen = {c.unique_id for c in checks}
        for node in run.nodes:
            if (
                node.step_index == step_index
                and node.resource_type == "source"
                and node.unique_id not in seen
                and node.status in RUNTIME_ERROR_STATUSES
            ):
                checks.append(dbt_sources.runtime_error(node.unique_id, node.message, node.finished_at))
        return checks

    def record_step(self, run_id: int, step_index: int, environment: str, job: str | None) -> list[FreshnessRecord]:
        """Record the step's checks (idempotent) and return every row of the step."""
        checks = self.checks_of_step(run_id, step_index)
        fallback = clock.now()
        rows = [
            {
                "unique_id": c.unique_id,
                "source_name": storable(c.source_name)[:MAX_NAME_CHARS],
                "table_name": storable(c.table_name)[:MAX_NAME_CHARS],
                "status": c.status,
                "max_loaded_at": c.max_loaded_at,
                "snapshotted_at": c.snapshotted_at,
                "age_seconds": c.age_seconds,
                "warn_after": storable(c.warn_after),
                "error_after": storable(c.error_after),
                "error": storable(c.error),
                "checked_at": c.snapshotted_at or fallback,
            }
            for c in checks
            if len(c.unique_id) <= MAX_UNIQUE_ID_CHARS and storable(c.unique_id) == c.unique_id
        ]
        if len(rows) < len(checks):  # never a write that fails on every redelivery
            log.warning("run %s step %s: %d sources with unstorable ids not recorded", run_id, step_index,
                        len(checks) - len(rows))  # fmt: skip
        if rows:
            self.app.store.freshness.record(run_id, step_index, environment, job, rows)
        return self.app.store.reader.freshness.step(run_id, step_index)


def _load(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_SOURCES_JSON_BYTES:
            log.warning("%s is larger than %d bytes: not read", path, MAX_SOURCES_JSON_BYTES)
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        log.warning("cannot read %s: %s", path, str(exc)[:200])
        return None


class FreshnessConsumer(Consumer):
    """Records each freshness step's results and alerts on status changes (module doc)."""

    def __init__(self, app):
        super().__init__(app, "freshness")

    def deliver(self, event: Event) -> None:
        if event.type != RunEvent.STEP_FINISHED or event.run_id is None:
            return
        payload = event.payload or {}
        step = payload.get("step") or {}
        if not is_freshness_command(step.get("command")) or step.get("status") in ("skipped", "queued"):
            return
        environment, job = payload.get("environment") or "", payload.get("job")
        service = self.app.freshness
        rows = service.record_step(event.run_id, int(step["index"]), environment, job)
        changed = changes(rows)
        if not changed:
            return
        stale_left = [s for s in self.app.store.reader.freshness.latest(environment) if s.status in dbt_sources.STALE]
        for alert in build_alerts(
            changed, stale_left=stale_left, public_url=getattr(self.app.config.server, "public_url", None)
        ):
            self.app.alerts.notify(alert)


def factory(app) -> FreshnessConsumer:
    """Always a consumer: the freshness history is kept whether or not alerts are configured."""
    return FreshnessConsumer(app)
