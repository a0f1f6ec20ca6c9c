"""How routes get the App: ``app: AppDep`` (``Depends(get_app)``). The API never sees the
store; everything goes through the App's services (``app.runs``, ``app.jobs``,
``app.triggers``, ``app.tokens``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dockyard.app import App
from dockyard.app.jobs import Jobs
from dockyard.errors import NotFoundError


def get_app(request: Request) -> App:
    """The App of this API, following dockyard.yml (re-read when it changed, at most once a
    second: :meth:`App.refresh`)."""
    app: App = request.app.state.dockyard
    app.refresh()
    return app


AppDep = Annotated[App, Depends(get_app)]


def account_jobs(app: App, account_id: int | None = None) -> Jobs:
    """The catalog (``app.jobs``); with ``account_id``, 404 unless it is this server's account."""
    if account_id is not None and account_id != app.jobs.account_id:
        raise NotFoundError(f"Account {account_id} not found")
    return app.jobs
