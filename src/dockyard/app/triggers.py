"""``app.triggers``: queueing runs for the workers. The trigger options (dbt Cloud's trigger
body, :mod:`dockyard.overrides`), the run's commands, the API command policy
(:mod:`dockyard.policy`), the queue-depth limit, idempotency keys and the enqueue itself.

Any front-end triggers a run with one call; a CI webhook, for instance::

    run_id = app.triggers.trigger(job_id, {"git_sha": sha, "github_pull_request_id": pr}, scope="trigger")
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dockyard import policy
from dockyard.app.jobs import JobView
from dockyard.errors import DockyardError, ForbiddenError, QueueFullError, UnknownEnvironmentError
from dockyard.overrides import TARGET_SWITCH, TriggerOptions, parse_options, run_commands, stored

MAX_QUEUED_PER_JOB = 100
DEFAULT_CAUSE = "Triggered via API"


class Triggers:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    # -- the parts of a trigger ---------------------------------------------------------------
    @staticmethod
    def options(body: dict[str, Any] | TriggerOptions | None) -> TriggerOptions:
        """A trigger body checked (400 naming the field otherwise)."""
        if isinstance(body, TriggerOptions):
            return body
        return parse_options(body or {})

    @staticmethod
    def commands(job, options: TriggerOptions) -> list[str]:
        return run_commands(job, options)

    def check_environment(self, environment: str | None) -> None:
        if environment is not None and environment not in self.app.config.environments:
            raise UnknownEnvironmentError(
                f"no environment '{environment}'", hint="environments: " + ", ".join(self.app.config.environments)
            )

    def check_queue(self, job_id: int) -> None:
        """At most :data:`MAX_QUEUED_PER_JOB` queued runs per job from triggers."""
        queued = self.app.runs.count(job=job_id, status="queued")
        if queued >= MAX_QUEUED_PER_JOB:
            raise QueueFullError(f"job {job_id} already has {queued} queued runs", retry_after=60)

    def vet(self, scope: str, view: JobView, options: TriggerOptions, environment: str | None) -> dict | None:
        """The API command policy (:mod:`dockyard.policy`) applied to one trigger by a token of
        ``scope``: its ``steps_override`` (or, for a job created through the API, the job's
        stored commands), its ``environment``; returns the overrides to store
        (``target_name_override`` switches to another output of the profile only for an
        unrestricted admin). Raises 403."""
        server = self.app.config.server
        free = policy.unrestricted(scope, server)
        policy.check_environment(environment, view.record.environment, free=free)
        trusted = policy.trusted_job(view.record.definition, server)
        own = policy.trusted_commands(view.config) if trusted else []
        if options.steps_override:
            policy.check_commands(options.steps_override, free=free, trusted=own)
        elif not trusted:  # an API job stored before the policy, or by an admin without the setting
            policy.check_commands(view.config.commands, free=free, field=f"job {view.id} execute_steps")
        overrides = stored(options)
        if overrides and options.target_name_override and free:
            overrides[TARGET_SWITCH] = True
        return overrides

    def vet_rerun(self, scope: str, run_id: int, from_failure: bool) -> None:
        """A rerun repeats a run's commands, environment and overrides: the same policy as a
        trigger applies to the steps it repeats (a run queued before the policy, or by an
        unrestricted admin, is not repeated by a caller the policy holds)."""
        from dockyard.retry import failed_step

        server = self.app.config.server
        if policy.unrestricted(scope, server):
            return
        old = self.app.runs.get(run_id)
        try:
            view = self.app.jobs.get(old.job_id if old.job_id is not None else old.job)
        except DockyardError:
            return  # the rerun answers it (404)
        policy.check_environment(old.environment, view.config.environment, free=False)
        if (old.overrides or {}).get(TARGET_SWITCH):
            raise ForbiddenError(
                f"run {run_id} ran on another output of the profile (target_name_override): "
                "repeating it is not allowed from the API",
                hint=f"rerun it with an admin token with {policy.SETTING}: true",
            )
        own = policy.trusted_commands(view.config) if policy.trusted_job(view.record.definition, server) else []
        first = failed_step(old) if from_failure else None
        if from_failure and first is None:
            return  # nothing to repeat: the rerun answers it (409)
        steps = [s.command for s in sorted(old.steps, key=lambda s: s.index) if first is None or s.index >= first.index]
        policy.check_commands(steps, free=False, trusted=own, field=f"run {run_id}")

    @staticmethod
    def fingerprint(job_id: int, environment: str | None, options: TriggerOptions, extra: str = "") -> str:
        """What makes two triggers the same request (for idempotency keys)."""
        data = {"job": job_id, "env": environment, "options": options.model_dump(exclude_none=True), "extra": extra}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    @staticmethod
    def rerun_fingerprint(run_id: int, from_failure: bool) -> str:
        return hashlib.sha256(f"rerun:{run_id}:{from_failure}".encode()).hexdigest()

    # -- idempotency keys (per caller) --------------------------------------------------------
    def claim_key(self, caller: int, key: str, fingerprint: str):
        return self.app.store.tokens.claim_idempotency(caller, key, fingerprint)

    def finish_key(self, caller: int, key: str, run_id: int | None) -> None:
        self.app.store.tokens.finish_idempotency(caller, key, run_id)

    # -- queueing -----------------------------------------------------------------------------
    def prepare(
        self,
        job: str | int | JobView,
        body: dict[str, Any] | TriggerOptions | None = None,
        *,
        environment: str | None = None,
        scope: str = "admin",
    ) -> tuple[JobView, TriggerOptions, dict | None, list[str]]:
        """Everything a trigger checks before it queues anything: the job, the options, the
        environment, the policy; returns ``(job, options, overrides, commands)``."""
        view = job if isinstance(job, JobView) else self.app.jobs.get(job)
        options = self.options(body)
        self.check_environment(environment)
        overrides = self.vet(scope, view, options, environment)
        return view, options, overrides, self.commands(view.config, options)

    def trigger(
        self,
        job: str | int | JobView,
        body: dict[str, Any] | TriggerOptions | None = None,
        *,
        environment: str | None = None,
        scope: str = "admin",
        trigger: str = "api",
        default_cause: str = DEFAULT_CAUSE,
        fire_key: str | None = None,
    ) -> int:
        """Queue a run of ``job`` with the trigger options in ``body`` (a new run every time,
        never folded into a queued one; with ``fire_key``, at most one run per key: a second
        trigger with it answers the first run); returns its id."""
        view, options, overrides, commands = self.prepare(job, body, environment=environment, scope=scope)
        return self.enqueue_checked(
            view, options, overrides, commands, environment, trigger, default_cause, fire_key=fire_key
        )

    def enqueue_checked(
        self,
        view: JobView,
        options: TriggerOptions,
        overrides: dict | None,
        commands: list[str],
        environment: str | None = None,
        trigger: str = "api",
        default_cause: str = DEFAULT_CAUSE,
        fire_key: str | None = None,
    ) -> int:
        """The queueing half of :meth:`trigger` (after :meth:`prepare`): the queue limit, then
        the run."""
        self.check_queue(view.id)
        result = self.enqueue(
            view.id,
            environment=environment,
            trigger=trigger,
            cause=(options.cause or default_cause)[:255],
            commands=commands,
            overrides=overrides,
            git_sha=options.git_sha,
            git_branch=options.git_branch,
            fire_key=fire_key,
            coalesce=False,
        )
        return int(result.run_id)

    def rerun(self, run_id: int, *, from_failure: bool = True, scope: str = "admin", cause: str | None = None) -> int:
        """Queue a failed or cancelled run again (see :meth:`dockyard.app.runs.Runs.rerun`),
        under the policy of a token of ``scope``; returns the new run's id."""
        self.vet_rerun(scope, run_id, from_failure)
        return int(self.app.runs.rerun(run_id, from_failure=from_failure, queued=True, cause=cause).run_id)

    def enqueue(
        self,
        ref: str | int,
        *,
        environment: str | None = None,
        trigger: str = "manual",
        cause: str | None = None,
        scheduled_for=None,
        fire_key: str | None = None,
        commands: list[str] | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
        not_before=None,
        overrides: dict | None = None,
        git_sha: str | None = None,
        git_branch: str | None = None,
        coalesce: bool | None = None,
    ):
        """Queue a run of a job for the workers; returns the store's EnqueueResult. A trigger
        that arrives while the job already has a queued run is folded into it unless the job
        allows overlap (``coalesce``); a retry is never folded."""
        view = self.app.jobs.get(ref)
        job = view.config
        env_name = environment or job.environment
        self.check_environment(env_name)
        if coalesce is None:
            coalesce = not job.allow_overlap and trigger != "retry"
        return self.app.store.queue.enqueue(
            view.id,
            view.name,
            env_name,
            commands or job.all_commands,
            trigger=trigger,
            cause=cause or f"Triggered {trigger}",
            scheduled_for=scheduled_for,
            fire_key=fire_key,
            priority=job.priority,
            attempt=attempt,
            retry_of=retry_of,
            overrides=overrides,
            git_sha=git_sha,
            git_branch=git_branch,
            not_before=not_before,
            coalesce=coalesce,
        )
