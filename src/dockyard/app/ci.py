"""``app.ci``: slim CI for pull requests (docs/ci.md, "How slim CI works").

A run whose trigger overrides carry a pull-request number is a CI run: it builds into the PR
schema ``<prefix>_pr_<n>``, with the base environment's last good manifest as its state, and
writes ``artifacts/ci.json`` (which nodes are selected and why) before its first step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, UnknownEnvironmentError

#: The trigger fields that make a run a CI run (dbt Cloud's names), by provider.
PR_FIELDS = {
    "github": "github_pull_request_id",
    "gitlab": "gitlab_merge_request_id",
    "azure": "azure_pull_request_id",
    "other": "non_native_pull_request_id",
}


def pr_number(overrides: dict | None) -> tuple[int, str] | None:
    """The pull request of a run's overrides, with its provider; None for a normal run."""
    for provider, key in PR_FIELDS.items():
        value = (overrides or {}).get(key)
        if value is not None and value != "":
            return int(value), provider
    return None


@dataclass
class CiResult:
    """A foreground CI build: the run, its PR schema, what was selected and why."""

    run: Any  # dockyard.app.runs.Run
    schema: str
    selected: list[dict] = field(default_factory=list)
    deleted: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return getattr(self.run.status, "value", self.run.status) == "success"


class Ci:
    """Slim CI over the app: PR schemas, CI jobs, foreground builds, cleanup, the janitor."""

    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    @property
    def config(self):
        return self.app.config.ci

    def environment(self, env_name: str | None = None) -> str:
        name = env_name or self.config.environment
        if name not in self.app.config.environments:
            raise UnknownEnvironmentError(
                f"no environment '{name}' for CI",
                hint="set ci.environment (or pass --env) to one of: " + ", ".join(self.app.config.environments),
            )
        return name

    # -- the PR schema --------------------------------------------------------------------------
    def pr_schema(self, env_name: str, pr: int) -> str:
        """``<prefix>_pr_<pr>``: the environment's ``pr_schema_prefix``, else its ``schema``,
        else the schema of its target in the profile."""
        env = self.app.config.environments[self.environment(env_name)]
        prefix = env.pr_schema_prefix or env.schema_
        if not prefix:
            output = self.app.project.profile(env).get("outputs", {}).get(env.target) or {}
            prefix = str(output.get("schema") or "dbt")
        return f"{prefix}_pr_{int(pr)}"

    # -- the CI jobs ----------------------------------------------------------------------------
    def jobs(self, env_name: str | None = None) -> list:
        """The CI jobs (``JobView``) of the CI environment: jobs with ``triggers.github_webhook``
        or ``triggers.git_provider_webhook``."""
        name = self.environment(env_name)
        out = []
        for view in self.app.jobs.list():
            triggers = view.config.triggers
            if view.config.environment == name and (triggers.github_webhook or triggers.git_provider_webhook):
                out.append(view)
        return out

    def trigger_options(
        self, pr: int, *, sha: str | None = None, branch: str | None = None, provider: str = "github"
    ) -> dict:
        """The trigger body of a CI run (dbt Cloud's field names)."""
        key = PR_FIELDS.get(provider)
        if key is None:
            raise DockyardError(f"unknown git provider {provider!r}", hint="use github or gitlab")
        body: dict = {key: int(pr), "cause": f"CI for pull request #{int(pr)}"}
        if sha:
            body["git_sha"] = sha
        if branch:
            body["git_branch"] = branch
        return body

    # -- builds ---------------------------------------------------------------------------------
    def build(
        self,
        pr: int,
        *,
        env: str | None = None,
        base: str | None = None,
        sha: str | None = None,
        branch: str | None = None,
        state: Path | None = None,
        server: str | None = None,
        token: str | None = None,
        provider: str = "github",
    ) -> CiResult:
        """Build pull request ``pr`` in the foreground (``dockyard ci --pr N``)."""
        raise NotImplementedError("app.ci.build: being written (helper B)")

    def cleanup(self, pr: int, env: str | None = None) -> list[str]:
        """Drop the PR's schema(s) in the warehouse; returns the schemas dropped."""
        raise NotImplementedError("app.ci.cleanup: being written (helper B)")

    def janitor(self, open_prs: set[int] | None = None, now: datetime | None = None) -> list[str]:
        """Drop PR schemas whose PR is closed (not in ``open_prs``), or, when ``open_prs`` is
        None, that saw no build for ``ci.janitor_after_hours``; returns what it dropped."""
        raise NotImplementedError("app.ci.janitor: being written (helper B)")

    def report(self, run_id: int) -> dict | None:
        """The run's ci.json merged with its node results (for the summary); None when the run
        is not a CI run."""
        import json

        path = self.app.runs.artifact_root(run_id) / "ci.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
