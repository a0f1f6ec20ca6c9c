"""What a verified webhook delivery does (docs/ci.md, "Webhooks and the server").

* pull request opened, reopened, synchronised (GitLab: open, reopen, update with new
  commits): every CI job (``app.ci.jobs()``) is queued as a CI run of the PR's head sha,
  then the PR's older CI runs still queued or running are cancelled; with ``repository:``
  a delivery whose head sha is no longer the PR's head (``refs/pull/N/head``: a late or
  redelivered event of an older push) queues and cancels nothing;
* closed or merged: the PR's active CI runs are cancelled and its schema dropped
  (``app.ci.cleanup``);
* push to ``repository.branch``: ``app.deploy(sha)``; when the commit is deployed, the jobs
  with ``triggers.on_merge`` run on it; a refused commit is answered (200) with the refusal.

Exactly once per delivery: the delivery is claimed in the store before it is acted on and
marked done after (:mod:`dockyard.store.webhooks`); its runs are queued under fire keys made
from the delivery id, so repeating a delivery whose handler died queues nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from dockyard.app.ci import pr_number
from dockyard.ci.webhooks import Event, OtherEvent, PingEvent, PullRequestEvent, PushEvent
from dockyard.domain import RunStatus
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.ci.webhooks")

BUILD_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
CLOSE_ACTIONS = frozenset({"closed", "merged"})
ACTIVE = [RunStatus.QUEUED.value, RunStatus.STARTING.value, RunStatus.RUNNING.value]
BRANCH = re.compile(r"^[A-Za-z0-9._/@+-]{1,255}$")  # what a trigger's git_branch may hold


class HandlingError(DockyardError):
    """A verified delivery whose action failed (500; the delivery may be sent again)."""

    status = 500


@dataclass
class Answer:
    """The HTTP status and JSON body of a webhook's answer."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def fire_key(provider: str, delivery: str) -> str:
    return f"webhook:{provider}:" + hashlib.sha256(delivery.encode()).hexdigest()[:40]


class Controller:
    def __init__(self, app):  # the App (dockyard.app)
        self.app = app

    # -- one delivery -------------------------------------------------------------------------
    def receive(self, provider: str, delivery: str, name: str, event: Event) -> Answer:
        """Act on a verified delivery once; a repeated delivery id answers ``duplicate``."""
        if isinstance(event, PingEvent):
            return Answer(200, {"ok": True, "event": "ping"})
        reason = self.ignored(event)
        if reason:
            return Answer(202, {"ignored": True, "event": name, "reason": reason})
        webhooks = self.app.store.webhooks
        claim = webhooks.claim(provider, delivery, name)
        if not claim.owner:
            body = {"duplicate": True, "delivery": delivery}
            if claim.state != "done":
                body["in_progress"] = True
            return Answer(200, body)
        if claim.retry:
            log.warning("%s delivery %s: repeating a delivery whose handling did not finish", provider, delivery)
        try:
            result = self.act(provider, delivery, event)
        except DockyardError as exc:
            webhooks.release(provider, delivery)
            log.error("%s delivery %s could not be handled: %s", provider, delivery, exc.render())
            if exc.status >= 500 or exc.status == 429:
                raise
            # the delivery was valid: the server could not act on it (a 5xx, so the provider
            # shows the failure and its redelivery, which may act at once, is worth it)
            # the answer carries the first line only (the full error is in the server log)
            first = exc.what.splitlines()[0][:300] if exc.what else type(exc).__name__
            raise HandlingError(f"The {provider} delivery could not be handled: {first}", hint=exc.hint) from exc
        except BaseException:
            webhooks.release(provider, delivery)
            raise
        webhooks.finish(provider, delivery, result)
        return Answer(200, result)

    def ignored(self, event: Event) -> str | None:
        """Why the event does nothing (None: it acts)."""
        if isinstance(event, OtherEvent):
            return f"dockyard does not act on {event.name!r} events"
        if isinstance(event, PullRequestEvent):
            if event.action in BUILD_ACTIONS:
                return None if event.head_sha else "the pull request event has no head sha"
            if event.action in CLOSE_ACTIONS:
                return None
            return f"pull request action {event.action!r}"
        if isinstance(event, PushEvent):
            repo = self.app.config.repository
            if repo is None:
                return "no repository: block in dockyard.yml (pushes deploy only code from git)"
            if event.branch != repo.branch:
                return f"push to {event.ref}, not to the deploy branch {repo.branch}"
            if event.after is None:
                return "the deploy branch was deleted"
        return None

    def act(self, provider: str, delivery: str, event: Event) -> dict[str, Any]:
        key = fire_key(provider, delivery)
        if isinstance(event, PullRequestEvent):
            if event.action in BUILD_ACTIONS:
                return self.build(event, key)
            return self.close(event)
        assert isinstance(event, PushEvent)
        return self.push(event, key)

    # -- pull requests ------------------------------------------------------------------------
    def build(self, event: PullRequestEvent, key: str) -> dict[str, Any]:
        """Queue the CI jobs for the PR's head sha, then cancel the PR's older CI runs."""
        ci = self.app.ci
        head = self.fetch_head(event)
        if head is not None and event.head_sha and self.superseded(event.head_sha, head):
            # a late or redelivered event of an older push (deliveries are not ordered): the
            # pull request's head has moved on past it, and its newer runs must not be cancelled
            log.warning(
                "%s pull request #%s: the %s delivery is for %s, the head is now %s: ignored",
                event.provider,
                event.number,
                event.action,
                event.head_sha,
                head,
            )
            return {
                "pull_request": event.number,
                "action": event.action,
                "runs": [],
                "cancelled": [],
                "stale": True,
                "head_sha": head,
                "note": f"the pull request's head is {head}, not {event.head_sha}: nothing queued or cancelled",
            }
        runs = []
        for view in ci.jobs():
            body = ci.trigger_options(
                event.number, sha=event.head_sha, branch=_branch(event.head_ref), provider=event.provider
            )
            body["cause"] = f"Pull request #{event.number}"
            runs.append(self._queue(view, body, key))
        if not runs:  # nothing replaces the PR's runs: leave them alone
            log.warning("%s pull request #%s: no CI job to run", event.provider, event.number)
            return {
                "pull_request": event.number,
                "action": event.action,
                "runs": [],
                "cancelled": [],
                "note": f"no job of environment {ci.environment()!r} has triggers.github_webhook or "
                "triggers.git_provider_webhook",
            }
        cancelled = self.cancel_runs(event.provider, event.number, before=min(runs))
        log.info(
            "%s pull request #%s (%s, %s): queued runs %s, cancelled %s",
            event.provider,
            event.number,
            event.action,
            event.head_sha,
            runs,
            cancelled,
        )
        return {"pull_request": event.number, "action": event.action, "runs": runs, "cancelled": cancelled}

    def fetch_head(self, event: PullRequestEvent) -> str | None:
        """With ``repository:``, fetch the PR's head ref (``refs/pull/N/head``,
        ``refs/merge-requests/N/head``) into the cached clone, so its sha is there when the run
        checks it out, also for a pull request from a fork; returns the ref's sha, the PR's
        head now (None without ``repository:`` or when the fetch failed: best effort, the run
        fetches the sha itself)."""
        if not self.app.repository.enabled:
            return None
        ref = (
            f"refs/pull/{event.number}/head"
            if event.provider == "github"
            else f"refs/merge-requests/{event.number}/head"
        )
        try:
            return self.app.repository.fetch(ref)
        except DockyardError as exc:
            log.warning("%s pull request #%s: fetching %s failed: %s", event.provider, event.number, ref, exc.what)
            return None

    def superseded(self, sha: str, head: str) -> bool:
        """Whether the pull request's head ``head`` is a later commit than ``sha`` (a
        descendant: after a force push, or when the provider's ref lags, the event builds)."""
        sha, head = sha.lower(), head.lower()
        return sha != head and self.app.repository.is_ancestor(sha, head)

    def close(self, event: PullRequestEvent) -> dict[str, Any]:
        cancelled = self.cancel_runs(event.provider, event.number)
        dropped = self.app.ci.cleanup(event.number)
        log.info(
            "%s pull request #%s %s: cancelled %s, dropped %s",
            event.provider,
            event.number,
            event.action,
            cancelled,
            dropped,
        )
        return {"pull_request": event.number, "action": event.action, "cancelled": cancelled, "dropped": dropped}

    def cancel_runs(self, provider: str, pr: int, *, before: int | None = None) -> list[int]:
        """Cancel the PR's CI runs still queued or running (with ``before``: only the runs
        older than that run id); returns the ids whose cancel was committed."""
        out = []
        for run in self.active_runs(provider, pr):
            if before is not None and run.id >= before:
                continue
            if self.app.runs.cancel(run.id, final_ok=True) != "final":
                out.append(run.id)
        return out

    def active_runs(self, provider: str, pr: int) -> list:
        """The runs queued, starting or running whose trigger overrides name this PR."""
        found, offset = [], 0
        while True:
            page, _ = self.app.runs.search(statuses=ACTIVE, order_by="id", limit=100, offset=offset)
            found += [r for r in page if pr_number(r.overrides) == (pr, provider)]
            if len(page) < 100:
                return found
            offset += 100

    # -- pushes -------------------------------------------------------------------------------
    def push(self, event: PushEvent, key: str) -> dict[str, Any]:
        """Deploy the pushed commit; when it is deployed, run the ``on_merge`` jobs on it."""
        answer = self.app.repository.deploy(event.after, branch=event.branch)  # app.deploy, with the branch
        status = answer.get("status", "ok")
        out: dict[str, Any] = {"push": event.ref, "sha": answer.get("sha", event.after), "deploy": status}
        if status != "ok":
            out["error"] = answer.get("error")
            log.warning("push of %s to %s: the commit was refused: %s", event.after, event.ref, answer.get("error"))
            return out
        out["runs"] = self.on_merge(out["sha"], event.branch, key)
        log.info("push of %s to %s: deployed, queued runs %s", out["sha"], event.ref, out["runs"])
        return out

    def on_merge(self, sha: str, branch: str | None, key: str) -> list[int]:
        """Queue the jobs with ``triggers.on_merge`` on a deployed ``sha``, once per ``key``
        (a delivery's fire key; ``fire_key("poll", sha)`` for a deploy found by polling)."""
        runs = []
        for view in self.app.jobs.list():
            if view.config.triggers.on_merge:
                body = {"cause": f"Merge to {branch} ({sha[:12]})", "git_sha": sha, "git_branch": _branch(branch)}
                runs.append(self._queue(view, {k: v for k, v in body.items() if v}, key, trigger="api"))
        return runs

    # -- queueing -----------------------------------------------------------------------------
    def _queue(self, view, body: dict, key: str, trigger: str = "ci") -> int:
        """One run of ``view`` (a new run, never folded into another), at most once per
        delivery and job (``key``). ``trigger``: ``ci`` for a pull request's build (dbt
        Cloud's cause_category ``github_pull_request``), ``api`` for a deploy's jobs."""
        return self.app.triggers.trigger(
            view, body, scope="admin", trigger=trigger, default_cause="Git webhook", fire_key=key
        )


def _branch(ref: str | None) -> str | None:
    """A branch name a trigger can carry (others are left out: the sha is what runs)."""
    return ref if ref and BRANCH.match(ref) else None
