"""Git-provider webhooks: ``POST /api/webhooks/github`` and ``POST /api/webhooks/gitlab``.

No API token: the provider's signature is the authentication (verified over the raw body
before anything else happens, :mod:`dockyard.ci.webhooks`); what a delivery does is
:mod:`dockyard.ci.controller`. A bad or missing signature is a 401, logged without the body.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dockyard.api import envelope
from dockyard.api.deps import AppDep
from dockyard.api.routes.common import ERRORS
from dockyard.app import App
from dockyard.ci import webhooks as wh
from dockyard.ci.controller import Controller
from dockyard.errors import ConfigError, DockyardError

log = logging.getLogger("dockyard.api.webhooks")
router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

ANSWERS = {
    **ERRORS,
    200: {"description": "Handled (or a duplicate delivery: data.duplicate is true)"},
    202: {"description": "An event dockyard does not act on: ignored"},
    503: {"description": "The server's webhook secret cannot be read"},
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "the provider's payload"}}},
    }
}


class SecretUnavailable(DockyardError):
    status = 503


def _secret(app: App, key: str) -> str | None:
    ref = getattr(app.config.server, key)
    try:
        return wh.resolve_secret(ref, f"server.{key}", app.loaded.location("server", key))
    except ConfigError as exc:
        log.error("webhook secret: %s", exc.render())
        raise SecretUnavailable(
            f"The server cannot read server.{key}", hint="the operator must fix the secret reference (see its log)"
        ) from None


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


async def _receive(request: Request, app: App, provider: str, verify, event: str) -> object:
    body = await request.body()
    try:
        await run_in_threadpool(verify, body)
    except wh.SignatureError as exc:
        log.warning("%s webhook from %s refused: %s", provider, _client(request), exc.what)  # never the body
        raise
    delivery = wh.delivery_id(provider, request.headers, body, event)
    parse = wh.parse_github if provider == "github" else wh.parse_gitlab
    parsed = parse(event, wh.payload(body, request.headers.get("content-type")))
    answer = await run_in_threadpool(Controller(app).receive, provider, delivery, event, parsed)
    return envelope.ok(answer.body, answer.status)


@router.post("/github", responses=ANSWERS, openapi_extra=BODY)
async def github(request: Request, app: AppDep):
    """A GitHub delivery (events ``pull_request``, ``push``, ``ping``), signed with
    ``X-Hub-Signature-256`` under ``server.github_webhook_secret``."""
    event = (request.headers.get("x-github-event") or "").strip()[:64]

    def verify(body: bytes) -> None:
        wh.verify_github(_secret(app, "github_webhook_secret"), body, request.headers.get("x-hub-signature-256"))

    return await _receive(request, app, "github", verify, event)


@router.post("/gitlab", responses=ANSWERS, openapi_extra=BODY)
async def gitlab(request: Request, app: AppDep):
    """A GitLab delivery (``Merge Request Hook``, ``Push Hook``), signed under
    ``server.gitlab_webhook_signing_token`` (Standard Webhooks headers) or, without one,
    authenticated by ``X-Gitlab-Token`` equal to ``server.gitlab_webhook_token``."""
    event = (request.headers.get("x-gitlab-event") or "").strip()[:64]

    def verify(body: bytes) -> None:
        wh.verify_gitlab(
            _secret(app, "gitlab_webhook_token"),
            request.headers.get("x-gitlab-token"),
            signing=_secret(app, "gitlab_webhook_signing_token"),
            headers=request.headers,
            body=body,
        )

    return await _receive(request, app, "gitlab", verify, event)
