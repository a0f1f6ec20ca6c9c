"""``dockyard init``: a commented dockyard.yml from the project's profile targets."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.config.loader import CONFIG_NAME, read_yaml
from dockyard.errors import ConfigError, Location, ProjectError
from dockyard.permissions import user_mode

TEMPLATE = """\
# dockyard.yml: environments and jobs for the dbt project "{project}".
# Every key is described in docs/configuration.md.

# store:
#   url: sqlite:///.dockyard/dockyard.db   # or postgresql://user@host/db; DOCKYARD_STORE_URL overrides

{project_line}environments:
{environments}
jobs:
  - name: "Daily {prod_title} Run"
    environment: {prod}
    schedule: {{cron: "0 2 * * *", timezone: "UTC"}}   # 02:00 every day, UTC
    commands:
      - dbt source freshness
      - dbt snapshot
      - dbt run
      - dbt test
    generate_docs: true          # adds 'dbt docs generate' as the last step
    timeout_seconds: 7200        # the run is stopped and marked error (timeout) after this
    triggers: {{schedule: true, on_merge: true}}   # on schedule, and after a merge is deployed (docs/ci.md)
    # notifications:
    #   - {{type: slack, webhook_url: "https://hooks.slack.com/services/...", on_failure: true}}
{ci_job}"""

CI_JOB = """\
  - name: "CI"                   # slim CI: what a pull request changed, and what depends on it
    environment: {ci}
    commands:
      - dbt build --select state:modified+   # dockyard supplies the state: {prod}'s last good run
    triggers: {{github_webhook: true}}   # started by pull-request webhooks and 'dockyard ci --pr N'
"""

CI_BLOCK = """\
ci:                              # slim CI of pull requests (docs/ci.md)
  environment: {ci}
  base: {prod}                   # compared with, and deferring to, this environment's last good run
  # github: {{repo: OWNER/NAME, token: "env:GITHUB_TOKEN"}}     # comment and status on the PR
  # gitlab: {{project: GROUP/NAME, token: "env:GITLAB_TOKEN"}}

"""

NO_CI = """\
  # ci:                          # a CI environment: pull requests build in schemas <prefix>_pr_<n>
  #   target: ci                 # add a 'ci' target to profiles.yml that can read {prod}'s relations
  #   pr_schema_prefix: dbt_ci   # (then a CI job and a ci: block, see docs/ci.md)
"""

ENV_TEMPLATE = """\
  {name}:
    target: {name}               # the profiles.yml target dbt uses
    # schema: {name}_analytics   # overrides the target's schema
    # threads: 4
    # env: {{MY_VAR: value}}       # plain environment variables for dbt
    # secrets: {{DBT_ENV_SECRET_PASSWORD: "env:{upper}_DB_PASSWORD"}}  # references, never values
{extra}"""
EXTRA = {
    "dev": "    # personal_schema: true    # build into dbt_<your OS user> (or $DOCKYARD_DEV_SCHEMA)\n",
    "ci": "    pr_schema_prefix: dbt_ci     # a pull request builds into dbt_ci_pr_<number>\n",
}


def write_config(project_dir: Path, force: bool = False, target: Path | None = None) -> Path:
    project_dir = project_dir.resolve()
    project_file = project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise ProjectError(
            f"{project_dir} does not contain a dbt_project.yml file",
            hint="run 'dockyard init' in your dbt project, or pass --project-dir",
        )
    target = Path(target) if target else project_dir / CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(
            f"{target} already exists", location=Location(str(target)), hint="edit it, or pass --force to overwrite it"
        )
    data = read_yaml(project_file) or {}
    if not isinstance(data, dict):
        raise ProjectError(
            f"{project_file} is not a mapping of keys such as name: and profile:",
            location=Location(str(project_file), 1),
            hint="see dbt's dbt_project.yml reference",
        )
    profile_name = str(data.get("profile") or data.get("name"))
    targets = _targets(project_dir, profile_name) or ["dev", "prod"]
    prod = next((t for t in targets if t in ("prod", "production")), targets[-1])
    envs = "".join(ENV_TEMPLATE.format(name=t, upper=t.upper(), extra=EXTRA.get(t, "")) for t in targets)
    ci = "ci" if "ci" in targets and prod != "ci" else None
    if ci is None:
        envs += NO_CI.format(prod=prod)
    rel = os.path.relpath(project_dir, target.resolve().parent)
    project_line = "" if rel == "." else f"project_dir: {rel}   # the dbt project, relative to this file\n\n"
    created = not target.exists()
    target.write_text(
        TEMPLATE.format(
            project=data.get("name", project_dir.name),
            environments=envs,
            project_line=project_line + (CI_BLOCK.format(ci=ci, prod=prod) if ci else ""),
            ci_job=CI_JOB.format(ci=ci, prod=prod) if ci else "",
            prod=prod,
            prod_title=prod.capitalize(),
        ),
        encoding="utf-8",
    )
    if created:  # a file of the user's project: the user's umask, not dockyard's private one
        os.chmod(target, user_mode(0o666))
    return target


def _targets(project_dir: Path, profile: str) -> list[str]:
    for folder in (os.environ.get("DBT_PROFILES_DIR"), project_dir, Path.home() / ".dbt"):
        if folder and (Path(folder) / "profiles.yml").is_file():
            path = Path(folder) / "profiles.yml"
            data = read_yaml(path) or {}
            entry = data.get(profile) if isinstance(data, dict) else None
            outputs = (entry.get("outputs") if isinstance(entry, dict) else None) or {}
            return [str(t) for t in outputs]
    return []
