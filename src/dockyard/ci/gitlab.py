"""GitLab's REST API (v4), the parts a CI run reports through: a merge request note and a commit status.

* the note: ``GET /projects/{id}/merge_requests/{iid}/notes`` (every page) finds the one
  holding the marker, ``PUT /projects/{id}/merge_requests/{iid}/notes/{note_id}`` updates it,
  or ``POST /projects/{id}/merge_requests/{iid}/notes`` creates it;
* the status: ``POST /projects/{id}/statuses/{sha}`` (state pending, running, success, failed
  or canceled; name ``dockyard/ci``).

``{id}`` is the numeric id or the URL-encoded path (``group%2Fsub%2Fname``). Header
``PRIVATE-TOKEN``. Retries and errors: :mod:`dockyard.ci.rest`.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from dockyard.ci.github import _sha, _short
from dockyard.ci.rest import ProviderError, Rest

NAME = "dockyard/ci"
STATES = ("pending", "running", "success", "failed", "canceled")
DESCRIPTION_CHARS = 255


class GitLab(Rest):
    provider = "GitLab"

    def __init__(self, api_url: str, project: str | int, token: str, client: httpx.Client | None = None):
        if not str(project or "").strip():
            raise ProviderError("no GitLab project", hint="give it as GROUP/NAME or its numeric id")
        if not token:
            raise ProviderError(
                "no GitLab token", hint="set GITLAB_TOKEN, pass --gitlab-token, or set ci.gitlab.token: env:NAME"
            )
        super().__init__(
            api_url or "https://gitlab.com/api/v4",
            {"PRIVATE-TOKEN": token, "User-Agent": "dockyard-ci"},
            client=client,
            secret=token,
        )
        self.project = str(project)
        self._base = "/projects/" + quote(self.project, safe="")

    def find_note(self, mr: int, marker: str) -> dict | None:
        for note in self.pages(f"{self._base}/merge_requests/{int(mr)}/notes", {"sort": "asc"}):
            if not note.get("system") and marker in (note.get("body") or ""):
                return note
        return None

    def upsert_note(self, mr: int, body: str, marker: str) -> int:
        """Update the MR's note holding ``marker``, or create it; returns the note's id."""
        if marker not in body:
            body = f"{marker}\n{body}"
        found = self.find_note(mr, marker)
        notes = f"{self._base}/merge_requests/{int(mr)}/notes"
        if found is None:
            return int(self.request("POST", notes, json={"body": body}).json()["id"])
        if found.get("body") != body:
            self.request("PUT", f"{notes}/{int(found['id'])}", json={"body": body})
        return int(found["id"])

    def set_status(
        self, sha: str, state: str, description: str = "", name: str = NAME, target_url: str | None = None
    ) -> None:
        if state not in STATES:
            raise ValueError(f"GitLab status state must be one of {', '.join(STATES)}")
        payload = {"state": state, "name": name, "description": _short(description, DESCRIPTION_CHARS)}
        if target_url:
            payload["target_url"] = target_url
        try:
            self.request("POST", f"{self._base}/statuses/{_sha(sha)}", json=payload)
        except ProviderError as exc:
            # GitLab answers 400 "Cannot transition status via :run from :running" to a repeat
            if "Cannot transition status" not in exc.what:
                raise
