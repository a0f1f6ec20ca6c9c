"""``app.ci``: slim CI for pull requests (docs/ci.md, "How slim CI works").

A run whose trigger overrides carry a pull-request number is a CI run: it builds into the PR
schema ``<prefix>_pr_<n>``, with the base environment's last good manifest as its state, and
writes ``artifacts/ci.json`` (which nodes are selected and why) before its first step.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard import clock
from dockyard.errors import DockyardError, SetupError, UnknownEnvironmentError
from dockyard.slim import schema as slim_schema
from dockyard.slim.state import uses_state

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
        # where a foreground build's base state comes from (--base/--state/--server), by
        # (environment, pr), until its run is planned
        self._options: dict[tuple[str, int], Any] = {}

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
        return slim_schema.pr_schema(prefix, pr)

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

    # -- a run's CI part (called by Execution.plan) ---------------------------------------------
    def run_for(self, run, env_name: str):
        """The :class:`~dockyard.app.ci_run.CiRun` of a run whose overrides carry a pull
        request, else None."""
        found = pr_number(run.overrides if run is not None else None)
        if found is None:
            return None
        from dockyard.app.ci_run import CiRun

        pr, provider = found
        return CiRun(self.app, run, env_name, pr, provider, self._options.pop((env_name, pr), None))

    def shadow_dir(self, env_name: str, pr: int) -> Path:
        """The CI copy of the project for pull request ``pr`` (see :mod:`dockyard.slim.shadow`)."""
        return self.app.state_dir / "ci" / "projects" / env_name / f"pr-{int(pr)}"

    def target_dir(self, env_name: str, pr: int) -> Path:
        """Where the builds of pull request ``pr`` keep dbt's partial parse."""
        return self.app.state_dir / "ci" / "targets" / env_name / f"pr-{int(pr)}"

    def base_run(self, base_env: str) -> tuple[int, Path] | None:
        """The last successful run of ``base_env`` that kept a manifest: ``(run id, path)``."""
        runs, _ = self.app.runs.search(environments=[base_env], statuses=["success"], order_by="-id", limit=20)
        for run in runs:
            if pr_number(run.overrides) is not None:
                continue  # a pull-request build in the base environment is no base
            manifests = sorted(
                (a for a in self.app.runs.artifacts(run.id) if a.name == "manifest.json"), key=lambda a: a.step_index
            )
            for ref in reversed(manifests):
                path = self.app.runs.artifact_root(run.id) / ref.path
                if path.is_file():
                    return run.id, path
        return None

    def timings(self, run_id: int) -> dict[str, float]:
        """Seconds per node of a run (its last execution of each)."""
        return {
            n.unique_id: round(n.execution_time_s, 3)
            for n in self.app.runs.get(run_id).executed_nodes
            if n.execution_time_s is not None
        }

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
        observer=None,
        on_start=None,
    ) -> CiResult:
        """Build pull request ``pr`` in the foreground (``dockyard ci --pr N``): the CI job of
        the environment (the first with a git webhook trigger; else the environment's first
        job running ``ci.command``) as a CI run."""
        from dockyard.app.ci_run import BaseOptions

        env_name = self.environment(env)
        if base is not None:
            self.app.triggers.check_environment(base)
        views = self.jobs(env_name)
        body = self.trigger_options(pr, sha=sha, branch=branch, provider=provider)
        if not views:
            views = [v for v in self.app.jobs.list() if v.config.environment == env_name]
            if not views:
                raise DockyardError(
                    f"environment '{env_name}' has no job to build pull requests with",
                    hint="add a job to it with triggers: {github_webhook: true} and commands such as "
                    f"[{self.config.command!r}]",
                )
            body["steps_override"] = [self.config.command]
        view = views[0]
        options = self.app.triggers.options(body)
        self._options[(env_name, int(pr))] = BaseOptions(base=base, state=state, server=server, token=token)
        before, _ = self.app.runs.search(job_ids=[view.id], order_by="-id", limit=1)
        try:
            run_id = self.app.execution.run_foreground(
                view.record,
                view.config,
                env_name,
                self.app.triggers.commands(view.config, options),
                trigger="ci",
                cause=options.cause or f"CI for pull request #{pr}",
                observer=observer,
                on_start=on_start,  # (run_id, executor): the CLI's Ctrl-C cancels through it
                overrides=overrides_of(options),
                git_sha=options.git_sha,
                git_branch=options.git_branch,
            ).id
        except SetupError:  # the run failed before dbt started (no base, a parse error): it is final
            after, _ = self.app.runs.search(job_ids=[view.id], order_by="-id", limit=1)
            if not after or (before and after[0].id == before[0].id):
                raise
            run_id = after[0].id
        finally:
            self._options.pop((env_name, int(pr)), None)
        if self.app.runs.get(run_id).status.value == "success":
            self.compare(run_id)
        run = self.app.runs.get(run_id)
        report = self.report(run.id) or {}
        return CiResult(
            run=run,
            schema=report.get("schema") or self.pr_schema(env_name, pr),
            selected=[{"unique_id": s["unique_id"], "reason": s["reason"]} for s in report.get("selected", [])],
            deleted=report.get("deleted", []),
            report=report,
        )

    def cleanup(self, pr: int, env: str | None = None) -> list[str]:
        """Drop the PR's schema(s) in the warehouse (``<pr schema>`` and ``<pr schema>_*``),
        mark them dropped; returns the schemas dropped."""
        from dockyard.app.ci_ops import drop_schemas

        env_name = self.environment(env)
        record = self.app.store.pr_schemas.get(env_name, int(pr))
        schema = record.schema if record else self.pr_schema(env_name, pr)
        dropped = drop_schemas(self.app, env_name, [schema])
        self.app.store.pr_schemas.mark(env_name, int(pr), "dropped")
        shutil.rmtree(self.shadow_dir(env_name, pr), ignore_errors=True)
        shutil.rmtree(self.target_dir(env_name, pr), ignore_errors=True)
        return dropped

    def janitor(self, open_prs: set[int] | None = None, now: datetime | None = None) -> list[str]:
        """Drop PR schemas whose PR is closed (not in ``open_prs``), or, when ``open_prs`` is
        None, that saw no build for ``ci.janitor_after_hours``; also schemas of the warehouse
        named ``<prefix>_pr_<n>`` that the store does not know (a crash, an API-triggered
        build), by the same rule. Returns what it dropped."""
        from dockyard.app.ci_ops import janitor

        return janitor(self.app, self.environment(None), open_prs, now or clock.now())

    def compare(self, run_id: int) -> list[dict]:
        """Rows and columns of the changed table/incremental models in the PR schema against
        production, added to the run's ci.json (``comparisons``); ``build`` calls it after a
        successful build, a server-side reporter before it posts."""
        from dockyard.app.ci_ops import compare

        return compare(self.app, run_id)

    def report(self, run_id: int) -> dict | None:
        """The run's ci.json merged with its node results (``results``: status, seconds,
        rows, message per node, for the summary); None when the run is not a CI run."""
        path = self.app.runs.artifact_root(run_id) / "ci.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        run = self.app.runs.get(run_id)
        report["run_id"] = run.id
        report["status"] = run.status.value
        report["results"] = [
            {
                "unique_id": n.unique_id,
                "resource_type": n.resource_type,
                "status": n.status,
                "execution_time_s": n.execution_time_s,
                "rows_affected": n.rows_affected,
                "message": n.message,
            }
            for n in run.executed_nodes
        ]
        # what dbt built for a reason dockyard does not model (only from the steps that select
        # by state: a plain `dbt seed` before the build is not part of the selection)
        slim_steps = {s.index for s in run.steps if uses_state(shlex.split(s.command)[1:])}
        known = {s["unique_id"] for s in report.get("selected", [])}
        for n in run.executed_nodes:
            if n.step_index in slim_steps and n.unique_id not in known and n.resource_type != "exposure":
                report.setdefault("selected", []).append(
                    {"unique_id": n.unique_id, "resource_type": n.resource_type, "reason": "selected by dbt"}
                )
                known.add(n.unique_id)
        return report


def overrides_of(options) -> dict | None:
    from dockyard.overrides import stored

    return stored(options)
