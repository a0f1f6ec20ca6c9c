"""Reporting a CI run on its pull request: one comment (or GitLab note) kept up to date, and a
commit status or check run on the head sha (docs/ci.md, "The pull-request summary").

:func:`post` is what ``dockyard ci`` calls after its build (and, with ``pending=True``,
before); :class:`PullRequestSink` (``events.sinks: [{type: pull_request}]``) does the same
on the server: ``pending`` when a CI run starts, the summary when its final event arrives.

Where it posts: ``--github-repo`` / ``--gitlab-project`` when given, else ``ci.github.repo``
or ``ci.gitlab.project`` (the one of the run's provider). The token: ``token`` when given,
else ``ci.github.token`` / ``ci.gitlab.token`` (secret references), else ``$GITHUB_TOKEN`` /
``$GITLAB_TOKEN``. The comment is found again by its hidden marker (one per CI environment),
so posting twice (the CLI and the sink) edits the same comment.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from dockyard.ci import summary
from dockyard.ci.github import GitHub
from dockyard.ci.gitlab import GitLab
from dockyard.ci.rest import ProviderError
from dockyard.events import Event, RunEvent
from dockyard.plugins import Sink, SinkContext
from dockyard.views import node_dict

log = logging.getLogger("dockyard.ci.reporter")
ACTIVE = ("queued", "starting", "running")


def _secret(ref: str | None, what: str) -> str | None:
    from dockyard.ci.webhooks import resolve_secret

    return resolve_secret(ref, what)


def _status(run) -> str:
    return str(getattr(run.status, "value", run.status))


def merged(report: dict, run) -> dict:
    """The report with the run's outcome (status, id, node results) where it lacks them."""
    out = dict(report)
    if run is not None:
        out.setdefault("status", _status(run))
        out.setdefault("run_id", run.id)
        if out.get("nodes") is None and out.get("results") is None:
            out["nodes"] = [node_dict(n) for n in run.executed_nodes]
        out["sha"] = out.get("sha") or getattr(run, "git_sha", None)
        out["environment"] = out.get("environment") or run.environment
    return out


def run_link(app, run_id: int | None) -> str | None:
    template = app.config.ci.run_url
    return template.replace("{run_id}", str(run_id)) if template and run_id else None


def provider_of(app, github_repo: str | None = None, gitlab_project: str | None = None) -> str | None:
    """The provider posted to: ``github``/``gitlab`` from the options, else the one
    ``ci.github.repo`` / ``ci.gitlab.project`` configures; None when neither is given."""
    if github_repo:
        return "github"
    if gitlab_project:
        return "gitlab"
    if app.config.ci.github.repo:
        return "github"
    return "gitlab" if app.config.ci.gitlab.project else None


def targets(
    app,
    provider: str,
    *,
    github_repo: str | None = None,
    gitlab_project: str | None = None,
    token: str | None = None,
) -> list[GitHub | GitLab]:
    """The clients to post through (see the module doc); [] when nothing is configured."""
    ci = app.config.ci
    if not (github_repo or gitlab_project):
        if provider == "gitlab":
            gitlab_project = ci.gitlab.project
        else:
            github_repo = ci.github.repo
    out: list[GitHub | GitLab] = []
    if github_repo:
        secret = token or _secret(ci.github.token, "ci.github.token") or os.environ.get("GITHUB_TOKEN")
        out.append(GitHub(ci.github.api_url, github_repo, secret or ""))
    if gitlab_project:
        secret = token or _secret(ci.gitlab.token, "ci.gitlab.token") or os.environ.get("GITLAB_TOKEN")
        out.append(GitLab(ci.gitlab.api_url, gitlab_project, secret or ""))
    return out


def describe(report: dict) -> tuple[str, str]:
    """The outcome word (``success``, ``failure``, ``cancelled``, ``pending``) and a one-line
    description for the status."""
    status = str(report.get("status") or "unknown")
    selected = report.get("selected") or []
    down = sum(1 for s in selected if summary.kind(s) != "changed")
    what = f"{len(selected) - down} changed, {down} downstream"
    if status in ACTIVE:
        return "pending", f"building {what} in {report.get('schema') or 'the PR schema'}"
    nodes = report.get("results") if report.get("nodes") is None else report.get("nodes")
    failed = [n for n in nodes or [] if str(n.get("status")) in summary.FAILED]
    if status == "success":
        return "success", f"passed: {what}"
    if status == "cancelled":
        return "cancelled", f"cancelled ({what})"
    return "failure", f"failed: {len(failed)} node(s) failed ({what})"


GITHUB_STATE = {"pending": "pending", "success": "success", "failure": "failure", "cancelled": "error"}
GITLAB_STATE = {"pending": "running", "success": "success", "failure": "failed", "cancelled": "canceled"}
CHECK = {"success": "success", "failure": "failure", "cancelled": "cancelled"}


def post(
    app,
    report: dict,
    run=None,
    *,
    github_repo: str | None = None,
    gitlab_project: str | None = None,
    token: str | None = None,
    pending: bool = False,
) -> list[dict[str, Any]]:
    """Post ``report`` (``app.ci.report(run_id)``, merged with ``run``) on its pull request:
    the comment (not when ``pending``) and the status / check run on the head sha. Returns
    what was posted, one dict per provider. Raises :class:`~dockyard.ci.rest.ProviderError`."""
    report = merged(report, run)
    if pending:
        report["status"] = "running"
    pr = report.get("pr")
    if pr is None:
        raise ProviderError("the run is not a CI run (its report names no pull request)", hint="use dockyard ci --pr N")
    link = run_link(app, report.get("run_id"))
    outcome, description = describe(report)
    sha = report.get("sha")
    posted: list[dict[str, Any]] = []
    provider = str(report.get("provider") or "github")
    for client in targets(app, provider, github_repo=github_repo, gitlab_project=gitlab_project, token=token):
        done: dict[str, Any] = {"provider": client.provider.lower(), "pr": pr}
        mark = summary.marker(report.get("environment") or "ci")
        body = None if pending else summary.render(report, link=link)
        try:
            if isinstance(client, GitHub):
                if body is not None:
                    done["comment_id"] = client.upsert_comment(int(pr), body, mark)
                if sha and app.config.ci.github.report == "check":
                    done["check_run_id"] = client.check_run(
                        sha,
                        status="in_progress" if pending else "completed",
                        conclusion=None if pending else CHECK[outcome],
                        title=description,
                        summary=body or description,
                        details_url=link,
                    )
                elif sha:
                    client.set_status(sha, GITHUB_STATE[outcome], description, target_url=link)
                    done["state"] = GITHUB_STATE[outcome]
            else:
                if body is not None:
                    done["note_id"] = client.upsert_note(int(pr), body, mark)
                if sha:
                    client.set_status(sha, GITLAB_STATE[outcome], description, target_url=link)
                    done["state"] = GITLAB_STATE[outcome]
        finally:
            client.close()
        posted.append(done)
    return posted


class PullRequestSink(Sink):
    """``events.sinks: [{type: pull_request}]``: a CI run's status goes ``pending`` when it
    starts, and its summary and final status are posted when its final event arrives. Runs
    that are not CI runs (no pull request in their overrides) are passed over. A failure to
    post is raised, so the dispatcher retries it with backoff (the comment is found again by
    its marker: a repeat edits it)."""

    type = "pull_request"

    def __init__(self, name: str, options: dict[str, Any], context: SinkContext):
        super().__init__(name, options, context)
        if options:
            raise ValueError(
                f"the pull_request sink has no option {', '.join(map(repr, sorted(options)))} "
                "(it posts where ci.github / ci.gitlab say)"
            )
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from dockyard.app import App

            self._app = App.open(self.context.config_path or self.context.base_dir / "dockyard.yml")
        return self._app

    def deliver(self, event: Event) -> None:
        if event.type != RunEvent.STARTED and not event.type.is_final:
            return
        from dockyard.app.ci import pr_number

        app = self.app
        app.refresh()
        run = app.runs.get(event.run_id)
        found = pr_number(run.overrides)
        if found is None:
            return
        pr, provider = found
        report = app.ci.report(run.id) or {}
        report = {"pr": pr, "provider": provider, **report}
        if event.type == RunEvent.STARTED and _status(run) not in ACTIVE:
            return  # delivered late: the final event posts the outcome
        posted = post(app, report, run, pending=event.type == RunEvent.STARTED)
        if posted:
            log.info("run %s: reported on pull request #%s (%s)", run.id, pr, ", ".join(p["provider"] for p in posted))

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None
