"""GitHub's REST API, the parts a CI run reports through: a PR comment, a commit status, a check run.

* the comment: ``GET /repos/{owner}/{repo}/issues/{n}/comments`` (every page) finds the one
  holding the marker, ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` updates it, or
  ``POST /repos/{owner}/{repo}/issues/{n}/comments`` creates it: one comment per PR and
  environment, edited in place on every push;
* the status: ``POST /repos/{owner}/{repo}/statuses/{sha}`` (state pending, success, failure
  or error; context ``dockyard/ci``; a description of at most 140 characters);
* the check run (``ci.github.report: check``, which needs a GitHub App's token):
  ``POST /repos/{owner}/{repo}/check-runs``, ``PATCH /repos/{owner}/{repo}/check-runs/{id}``,
  found again with ``GET /repos/{owner}/{repo}/commits/{sha}/check-runs?check_name=...``.

Headers: ``Authorization: Bearer <token>``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version: 2022-11-28``. Retries and errors: :mod:`dockyard.ci.rest`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from dockyard.ci.rest import ProviderError, Rest

CONTEXT = "dockyard/ci"
STATES = ("pending", "success", "failure", "error")
DESCRIPTION_CHARS = 140
CHECK_TEXT_CHARS = 65535  # a check run's output.summary and output.text
REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class GitHub(Rest):
    provider = "GitHub"

    def __init__(self, api_url: str, repo: str, token: str, client: httpx.Client | None = None):
        if not REPO.match(repo or ""):
            raise ProviderError(f"GitHub repository {repo!r} is not OWNER/NAME", hint="give it as owner/name")
        if not token:
            raise ProviderError(
                "no GitHub token", hint="set GITHUB_TOKEN, pass --github-token, or set ci.github.token: env:NAME"
            )
        super().__init__(
            api_url or "https://api.github.com",
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "dockyard-ci",
            },
            client=client,
            secret=token,
        )
        self.repo = repo
        self._base = "/repos/" + "/".join(quote(part, safe="") for part in repo.split("/"))

    def find_comment(self, pr: int, marker: str) -> dict | None:
        """The first comment of the PR holding ``marker``, else None."""
        for comment in self.pages(f"{self._base}/issues/{int(pr)}/comments"):
            if marker in (comment.get("body") or ""):
                return comment
        return None

    def upsert_comment(self, pr: int, body: str, marker: str) -> int:
        """Update the PR's comment holding ``marker`` (``body`` must hold it too), or create it;
        returns the comment's id. An unchanged body is not written again."""
        if marker not in body:
            body = f"{marker}\n{body}"
        found = self.find_comment(pr, marker)
        if found is None:
            response = self.request("POST", f"{self._base}/issues/{int(pr)}/comments", json={"body": body})
            return int(response.json()["id"])
        if found.get("body") != body:
            self.request("PATCH", f"{self._base}/issues/comments/{int(found['id'])}", json={"body": body})
        return int(found["id"])

    def set_status(
        self, sha: str, state: str, description: str, context: str = CONTEXT, target_url: str | None = None
    ) -> None:
        if state not in STATES:
            raise ValueError(f"GitHub status state must be one of {', '.join(STATES)}")
        payload = {"state": state, "description": _short(description, DESCRIPTION_CHARS), "context": context}
        if target_url:
            payload["target_url"] = target_url
        self.request("POST", f"{self._base}/statuses/{_sha(sha)}", json=payload)

    def check_run(
        self,
        sha: str,
        *,
        status: str,
        conclusion: str | None = None,
        title: str = "dockyard CI",
        summary: str = "",
        details_url: str | None = None,
        name: str = CONTEXT,
    ) -> int:
        """Create the check run ``name`` on ``sha``, or update the one already there; its id.
        ``status`` queued|in_progress|completed; ``conclusion`` (with completed) success|failure|..."""
        payload: dict = {
            "name": name,
            "status": status,
            "output": {"title": _short(title, 255), "summary": _short(summary or title, CHECK_TEXT_CHARS)},
        }
        if conclusion:
            payload["conclusion"] = conclusion
        if details_url:
            payload["details_url"] = details_url
        found = self.request(
            "GET", f"{self._base}/commits/{_sha(sha)}/check-runs", params={"check_name": name, "per_page": 1}
        ).json()
        runs = found.get("check_runs") or [] if isinstance(found, dict) else []
        if runs:
            check_id = int(runs[0]["id"])
            self.request("PATCH", f"{self._base}/check-runs/{check_id}", json=payload)
            return check_id
        response = self.request("POST", f"{self._base}/check-runs", json={**payload, "head_sha": _sha(sha)})
        return int(response.json()["id"])


def _short(text: str, chars: int) -> str:
    text = str(text)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _sha(sha: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{7,64}", str(sha or "")):
        raise ProviderError(f"{sha!r} is not a commit sha", hint="give the full hex sha of the head commit")
    return str(sha)
