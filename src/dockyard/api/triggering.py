"""Triggering runs from the API: options, Idempotency-Key, rate and queue-depth limits.

``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header): scoped per token and
kept 24 h. A retry with the same key and the same request returns the first request's run;
the same key with a different request is a 422; a retry while the first request is still
being processed waits for it (then 409 if it did not finish). A run is never created twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from dockyard import policy
from dockyard.api.auth import Principal, RateLimited
from dockyard.api.catalog import JobView
from dockyard.errors import ConflictError, DockyardError, ForbiddenError
from dockyard.overrides import TARGET_SWITCH, TriggerOptions, parse_options, run_commands, stored
from dockyard.store.records import StoredRun

KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_QUEUED_PER_JOB = 100
WAIT_FOR_FIRST_S = 10.0
DEFAULT_CAUSE = "Triggered via API"


class Unprocessable(DockyardError):
    status = 422


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip().strip('"')
    if not KEY_RE.match(key):
        raise DockyardError("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


def fingerprint(job_id: int, environment: str | None, options: TriggerOptions, extra: str = "") -> str:
    data = {"job": job_id, "env": environment, "options": options.model_dump(exclude_none=True), "extra": extra}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


async def with_idempotency(request: Request, principal: Principal, fp: str, create) -> StoredRun:
    """``create()`` → run id, at most once per (token, Idempotency-Key). Waiting for a first
    request in progress happens on the event loop, never holding a worker thread."""
    store = request.app.state.dockyard.store
    key = idempotency_key(request)
    if key is None:
        return await run_in_threadpool(lambda: store.get_run_summary(create()))
    claim = await run_in_threadpool(store.claim_idempotency, principal.token_id, key, fp)
    if not claim.owner:
        if not claim.same_body:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request", hint="use a new key for a different request"
            )
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while claim.run_id is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            claim = await run_in_threadpool(store.claim_idempotency, principal.token_id, key, fp)
            if claim.owner:  # the first request failed and released the key: this one goes ahead
                break
        if not claim.owner:
            if claim.run_id is None:
                raise ConflictError(
                    "A request with this Idempotency-Key is still in progress", hint="retry in a moment"
                )
            return await run_in_threadpool(store.get_run_summary, claim.run_id)
    try:
        run_id = await run_in_threadpool(create)
    except BaseException:
        await run_in_threadpool(store.finish_idempotency, principal.token_id, key, None)
        raise
    await run_in_threadpool(store.finish_idempotency, principal.token_id, key, run_id)
    return await run_in_threadpool(store.get_run_summary, run_id)


async def trigger(
    request: Request, principal: Principal, view: JobView, body: dict, *, environment: str | None = None
) -> StoredRun:
    """Queue a run of ``view`` with the trigger options in ``body``; returns the run."""
    app = request.app.state.dockyard
    request.app.state.auth.limit_trigger(principal)
    options = parse_options(body)
    if environment is not None and environment not in app.config.environments:
        raise DockyardError(
            f"no environment {environment!r}", hint="environments: " + ", ".join(app.config.environments)
        )
    overrides = vet_trigger(app, principal, view, options, environment)
    commands = run_commands(view.config, options)
    cause = (options.cause or DEFAULT_CAUSE)[:255]

    def create() -> int:
        queued = app.store.count_runs(job=view.id, status="queued")
        if queued >= MAX_QUEUED_PER_JOB:
            raise RateLimited(f"job {view.id} already has {queued} queued runs", 60)
        result = app.enqueue(
            view.id,
            environment=environment,
            trigger="api",
            cause=cause,
            commands=commands,
            overrides=overrides,
            git_sha=options.git_sha,
            git_branch=options.git_branch,
            coalesce=False,
        )
        return int(result.run_id)

    return await with_idempotency(request, principal, fingerprint(view.id, environment, options), create)


def vet_trigger(
    app, principal: Principal, view: JobView, options: TriggerOptions, environment: str | None
) -> dict | None:
    """The API command policy (:mod:`dockyard.policy`) applied to one trigger: its
    ``steps_override`` (or, for a job created through the API, the job's stored commands),
    its ``environment``; returns the overrides to store (``target_name_override`` switches
    to another output of the profile only for an unrestricted admin). Raises 403."""
    server = app.config.server
    free = policy.unrestricted(principal.scope, server)
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


def vet_rerun(app, principal: Principal, run_id: int, from_failure: bool) -> None:
    """A rerun repeats a run's commands, environment and overrides: the same policy as a
    trigger applies to the steps it repeats (a run queued before the policy, or by an
    unrestricted admin, is not repeated by a caller the policy holds)."""
    from dockyard.retry import failed_step

    server = app.config.server
    free = policy.unrestricted(principal.scope, server)
    if free:
        return
    old = app.store.get_run(run_id)
    try:
        record, job = app.job(old.job_id if old.job_id is not None else old.job)
    except DockyardError:
        return  # queue_rerun answers it (404)
    policy.check_environment(old.environment, job.environment, free=False)
    if (old.overrides or {}).get(TARGET_SWITCH):
        raise ForbiddenError(
            f"run {run_id} ran on another output of the profile (target_name_override): "
            "repeating it is not allowed from the API",
            hint=f"rerun it with an admin token with {policy.SETTING}: true",
        )
    own = policy.trusted_commands(job) if policy.trusted_job(record.definition, server) else []
    first = failed_step(old) if from_failure else None
    if from_failure and first is None:
        return  # nothing to repeat: queue_rerun answers it (409)
    steps = [s.command for s in sorted(old.steps, key=lambda s: s.index) if first is None or s.index >= first.index]
    policy.check_commands(steps, free=False, trusted=own, field=f"run {run_id}")


async def rerun(request: Request, principal: Principal, run_id: int, *, from_failure: bool = True) -> StoredRun:
    """Queue a failed run again (from its failure, or all of it)."""
    app = request.app.state.dockyard
    request.app.state.auth.limit_trigger(principal)
    await run_in_threadpool(vet_rerun, app, principal, run_id, from_failure)

    def create() -> int:
        return int(app.queue_rerun(run_id, from_failure=from_failure).run_id)

    fp = hashlib.sha256(f"rerun:{run_id}:{from_failure}".encode()).hexdigest()
    return await with_idempotency(request, principal, fp, create)
