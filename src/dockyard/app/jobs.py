"""``app.jobs``: the catalog of jobs (dockyard.yml's and the ones created through the API) and
of environments, with their stable ids.

Jobs are read from the store on every call (one query), so jobs created, changed or deleted by
another process are seen at once; environment ids never change for a name (the store upserts
by name), so they are cached. ``app.jobs()`` is the list of job records (every front-end's
``dockyard jobs``); :meth:`Jobs.list` the runnable jobs with their settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockyard import cloud_jobs, policy
from dockyard.config.model import Job
from dockyard.domain import JobRecord
from dockyard.errors import ConfigError, ConflictError, DockyardError, NotFoundError, UnknownJobError
from dockyard.store import records as rec

log = logging.getLogger("dockyard.app.jobs")


@dataclass
class JobView:
    """A job with its settings and where it comes from."""

    record: JobRecord
    config: Job
    source: str  # config | api
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name


class Jobs:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app
        self._env_ids: dict[str, int] = {}
        self._adapters: dict[str, str] = {}

    # -- listing (the one place jobs are listed) -----------------------------------------
    def _rows(self) -> list[tuple[JobRecord, dict]]:
        """The store's active jobs that are in force: dockyard.yml's current ones and the API's."""
        if not self.app._synced:
            self.app.sync()
        names = {j.name for j in self.app.config.jobs}
        return [
            (rec.job_record(row), row)
            for row in self.app.store.reader.jobs.job_rows()
            if row["source"] == "api" or row["name"] in names
        ]

    def __call__(self) -> list[JobRecord]:
        """Every job's record (a stored API job whose definition is unusable included)."""
        return [record for record, _ in self._rows()]

    records = __call__

    def list(self) -> list[JobView]:
        """The runnable jobs with their settings; one unusable stored job never breaks a list
        (it is left out, with a log line)."""
        out = []
        for record, row in self._rows():
            try:
                config = self.config(record)
            except DockyardError as exc:
                log.warning("job %s is not listed: %s", record.id, exc.what)
                continue
            out.append(JobView(record, config, row["source"], row["created_at"], row["updated_at"]))
        return out

    def by_id(self) -> dict[int, JobView]:
        return {view.id: view for view in self.list()}

    job_names = by_id  # the name the dbt Cloud shapes use

    def get(self, ref: str | int) -> JobView:
        """A job by id (an ``int``: by id only, as the API's routes), or by id, name or
        identifier (a ``str``, as the CLI's arguments); :class:`UnknownJobError` (404) otherwise, with the
        nearest job name as a hint (also for a stored API job whose definition is unusable:
        it is not listed either)."""
        for record, row in self._rows():
            names = (
                (str(record.id),)
                if isinstance(ref, int)
                else (str(record.id), record.name, record.definition.get("identifier"))
            )
            if str(ref) in names:
                try:
                    config = self.config(record)
                except DockyardError as exc:  # not listed, so not found (with the reason)
                    raise UnknownJobError(exc.what, hint=exc.hint) from None
                return JobView(record, config, row["source"], row["created_at"], row["updated_at"])
        hint = "dockyard jobs (GET /api/v1/jobs) lists the jobs"
        try:
            self.app.loaded.job(str(ref))
        except ConfigError as exc:
            hint = exc.hint or hint
        raise UnknownJobError(f"no job '{ref}'", hint=hint)

    def config(self, record: JobRecord) -> Job:
        """The job's settings: from dockyard.yml, or from the store for an API-created job."""
        if record.definition.get("source") == "api":
            return cloud_jobs.job_model(record)
        return self.app.loaded.job(record.name)

    # -- environments -----------------------------------------------------------------------
    @property
    def account_id(self) -> int:
        return self.app.config.server.account_id

    def environments(self) -> list[dict]:
        if not self.app._synced:
            self.app.sync()
        names = set(self.app.config.environments)
        rows = [row for row in self.app.store.reader.jobs.list_environments() if row["name"] in names]
        self._env_ids.update({row["name"]: row["id"] for row in rows})
        return sorted(rows, key=lambda r: r["id"])

    def env_id(self, name: str) -> int | None:
        if name not in self._env_ids:
            self.environments()
        return self._env_ids.get(name)

    def env_names(self) -> dict[int, str]:
        return {row["id"]: row["name"] for row in self.environments()}

    def environment(self, env_id: int) -> dict:
        for row in self.environments():
            if row["id"] == env_id:
                return row
        raise NotFoundError(f"Environment {env_id} not found")

    def adapter(self, env_name: str) -> str:
        """The adapter type of the environment's target (``postgres``, ``duckdb``...)."""
        if env_name not in self._adapters:
            kind = "unknown"
            try:
                env = self.app.config.environments[env_name]
                kind = str(self.app.project.profile(env)["outputs"][env.target].get("type", "unknown"))
            except (DockyardError, KeyError, TypeError):
                pass
            self._adapters[env_name] = kind
        return self._adapters[env_name]

    def forget(self) -> None:
        """Drop what is cached from the config (after a reload)."""
        self._adapters.clear()

    # -- jobs created through the API ---------------------------------------------------------
    def save(self, body: dict[str, Any], *, job_id: int | None = None, scope: str = "admin") -> JobView:
        """Create (``job_id`` None) or update a job from a dbt Cloud job body. A job of
        dockyard.yml cannot be changed here (409). The API command policy applies: an admin
        without ``server.api_admin_unrestricted`` stores what a trigger token could ask for; a
        job saved by an unrestricted admin is trusted like dockyard.yml's."""
        current = None
        if job_id is not None:
            view = self.get(job_id)
            if view.source != "api":
                raise ConflictError(
                    f"job {view.id} is defined in dockyard.yml and cannot be changed through the API",
                    hint="change it in dockyard.yml (the server picks the change up)",
                )
            current = view.record.definition.get("cloud")
        fields = cloud_jobs.merge_payload(body, current)
        name, env_name, cron = cloud_jobs.validate(fields, self.env_names())
        free = policy.unrestricted(scope, self.app.config.server)
        policy.check_commands(fields["execute_steps"], free=free, field="execute_steps")
        definition = cloud_jobs.definition(fields, env_name)
        if free:
            definition[policy.TRUSTED] = True
        store = self.app.store
        if job_id is None:
            record = store.jobs.create_api_job(name, env_name, definition, cron=cron)
        else:
            record = store.jobs.update_api_job(job_id, name, env_name, definition, cron=cron)
        return self.get(record.id)

    def delete(self, job_id: int) -> JobView:
        """Delete a job created through the API (its id and runs are kept); returns it."""
        view = self.get(job_id)
        if view.source != "api":
            raise ConflictError(
                f"job {job_id} is defined in dockyard.yml and cannot be deleted through the API",
                hint="remove it from dockyard.yml",
            )
        self.app.store.jobs.delete_api_job(job_id)
        return view
