"""``app.validate``: ``dockyard validate`` for every front-end: the config, the dbt project,
each environment's profile, target and secrets (and, asked, its connection), every job's next
fires, and the permissions of the state folder."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.domain import JobRecord
from dockyard.errors import DockyardError
from dockyard.project import dbt_environment, resolve_secrets


@dataclass
class Check:
    """One line of ``dockyard validate``."""

    name: str
    ok: bool
    detail: str = ""
    warning: bool = False  # ok, but worth fixing (printed with a "!")


@dataclass
class ValidationReport:
    checks: list[Check] = field(default_factory=list)
    jobs: list[tuple[JobRecord, list]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


class Validate:
    """Called: ``app.validate(connection=False)`` returns a :class:`ValidationReport`."""

    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    def __call__(self, connection: bool = False) -> ValidationReport:
        app = self.app
        report = ValidationReport()
        report.checks.append(Check("config", True, str(app.loaded.path)))
        try:
            project = app.project
            report.checks.append(Check("dbt project", True, f"{project.name} at {project.project_dir}"))
        except DockyardError as exc:
            report.checks.append(Check("dbt project", False, exc.render()))
            return report
        for name in app.config.environments:
            try:
                env = app.config.environments[name]
                target = project.target_for(name)
                resolve_secrets(app.loaded, name)
                detail = f"target {target} in {project.profiles_dir(env) / 'profiles.yml'}"
                report.checks.append(Check(f"environment {name}", True, detail))
            except DockyardError as exc:
                report.checks.append(Check(f"environment {name}", False, exc.render()))
                continue
            if connection:
                report.checks.append(self.connection(name))
        for record in app.jobs():
            report.jobs.append((record, app.next_fires(record, 3)))
        report.checks.extend(Check("permissions", True, line, warning=True) for line in app.permission_warnings())
        report.checks.extend(Check("notifications", True, line, warning=True) for line in app.alerts.warnings())
        return report

    def connection(self, env_name: str) -> Check:
        """``dbt debug`` against the environment's target."""
        from dockyard.runner.probe import dbt_debug

        app = self.app
        target = app.project.target_for(env_name)
        secrets = resolve_secrets(app.loaded, env_name)
        ok, detail = dbt_debug(
            project_dir=app.project.project_dir,
            profiles_dir=app.project.effective_profiles_dir(env_name, target),
            target=target,
            env=dbt_environment(app.loaded, env_name, secrets),
            secrets=list(secrets.values()),
        )
        return Check(f"connection {env_name}", ok, detail)
