"""Triggering runs from the API: the HTTP half (the trigger itself is ``app.triggers``).

``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header): scoped per token and
kept 24 h. A retry with the same key and the same request returns the first request's run;
the same key with a different request is a 422; a retry while the first request is still
being processed waits for it (then 409 if it did not finish). A run is never created twice.
"""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from dockyard.api.auth import Principal
from dockyard.app import App, JobView, Run
from dockyard.errors import ConflictError, DockyardError

KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
WAIT_FOR_FIRST_S = 10.0


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


async def with_idempotency(app: App, principal: Principal, key: str | None, fp: str, create) -> Run:
    """``create()`` → run id, at most once per (token, Idempotency-Key). Waiting for a first
    request in progress happens on the event loop, never holding a worker thread."""
    triggers = app.triggers
    if key is None:
        return await run_in_threadpool(lambda: app.runs.summary(create()))
    claim = await run_in_threadpool(triggers.claim_key, principal.token_id, key, fp)
    if not claim.owner:
        if not claim.same_body:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request", hint="use a new key for a different request"
            )
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while claim.run_id is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            claim = await run_in_threadpool(triggers.claim_key, principal.token_id, key, fp)
            if claim.owner:  # the first request failed and released the key: this one goes ahead
                break
        if not claim.owner:
            if claim.run_id is None:
                raise ConflictError(
                    "A request with this Idempotency-Key is still in progress", hint="retry in a moment"
                )
            return await run_in_threadpool(app.runs.summary, claim.run_id)
    try:
        run_id = await run_in_threadpool(create)
    except BaseException:
        await run_in_threadpool(triggers.finish_key, principal.token_id, key, None)
        raise
    await run_in_threadpool(triggers.finish_key, principal.token_id, key, run_id)
    return await run_in_threadpool(app.runs.summary, run_id)


async def trigger(
    request: Request, app: App, principal: Principal, view: JobView, body: dict, *, environment: str | None = None
) -> Run:
    """Queue a run of ``view`` with the trigger options in ``body``; returns the run."""
    request.app.state.auth.limit_trigger(principal)
    view, options, overrides, commands = await run_in_threadpool(
        app.triggers.prepare, view, body, environment=environment, scope=principal.scope
    )
    key = idempotency_key(request)

    def create() -> int:
        return app.triggers.enqueue_checked(view, options, overrides, commands, environment)

    fp = app.triggers.fingerprint(view.id, environment, options)
    return await with_idempotency(app, principal, key, fp, create)


async def rerun(request: Request, app: App, principal: Principal, run_id: int, *, from_failure: bool = True) -> Run:
    """Queue a failed run again (from its failure, or all of it)."""
    request.app.state.auth.limit_trigger(principal)
    await run_in_threadpool(app.triggers.vet_rerun, principal.scope, run_id, from_failure)
    key = idempotency_key(request)

    def create() -> int:
        return int(app.runs.rerun(run_id, from_failure=from_failure, queued=True).run_id)

    fp = app.triggers.rerun_fingerprint(run_id, from_failure)
    return await with_idempotency(app, principal, key, fp, create)
