"""Trigger options of one run (dbt Cloud's trigger body): validation, the run's commands,
and how the executor applies them. They change that run only, never the job.

Stored in ``runs.overrides`` under dbt Cloud's field names, so the API echoes them back as
the run's ``trigger`` object.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dockyard.dbt.command import CommandError, parse_command
from dockyard.errors import DockyardError
from dockyard.payload import PayloadError, loads
from dockyard.permissions import open_private, private_dir
from dockyard.text import control_problem

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
TARGET = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
BRANCH = r"^[A-Za-z0-9._/@+-]+$"
MAX_TIMEOUT = 7 * 86400
MAX_STEPS = 100
#: Stored with a run's overrides when its ``target_name_override`` may switch to another
#: output of the profile (only for unrestricted admins: see :mod:`dockyard.policy`).
TARGET_SWITCH = "target_switch"


class TriggerOptions(BaseModel):
    """The body of ``POST .../jobs/{id}/run/`` (unknown keys and nulls are ignored)."""

    model_config = ConfigDict(extra="ignore")

    cause: str | None = Field(None, max_length=10000)
    git_sha: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4,64}$")
    git_branch: str | None = Field(None, max_length=255, pattern=BRANCH)
    schema_override: str | None = Field(None, max_length=200, pattern=IDENT)
    dbt_version_override: str | None = Field(None, max_length=50)
    threads_override: int | None = Field(None, ge=1, le=64)
    target_name_override: str | None = Field(None, max_length=200, pattern=TARGET)
    generate_docs_override: bool | None = None
    timeout_seconds_override: int | None = Field(None, ge=0, le=MAX_TIMEOUT)
    steps_override: list[str] | None = Field(None, max_length=MAX_STEPS)
    azure_pull_request_id: int | None = Field(None, ge=0)
    github_pull_request_id: int | None = Field(None, ge=0)
    gitlab_merge_request_id: int | None = Field(None, ge=0)
    non_native_pull_request_id: int | None = Field(None, ge=0)

    @field_validator("cause")
    @classmethod
    def _cause(cls, value: str | None) -> str | None:
        if value is not None and (problem := control_problem(value, "the value")):
            raise ValueError(problem)
        return value

    @field_validator("steps_override", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if isinstance(value, str):  # form-encoded: one command, or a JSON list
            text = value.strip()
            if text.startswith("["):
                try:
                    return loads(text, "steps_override")
                except PayloadError as exc:
                    raise ValueError(exc.what) from None
                except ValueError:
                    raise ValueError("steps_override is not a JSON list") from None
            return [text] if text else None
        return value

    @field_validator("steps_override")
    @classmethod
    def _commands(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            return None
        for text in value:
            try:
                parse_command(text)
            except CommandError as exc:
                raise ValueError(f"Invalid dbt commands: {text!r}: {exc}") from None
        return value

    @field_validator("dbt_version_override")
    @classmethod
    def _dbt_version(cls, value: str | None) -> str | None:
        if value in (None, "", "latest", "versionless", "latest-fusion"):
            return value or None
        installed = dbt_version()
        wanted = value.removesuffix(".latest").removesuffix("-latest")
        if not (installed == wanted or installed.startswith(wanted + ".")):
            raise ValueError(f"dbt {value} is not installed here (dbt {installed} is)")
        return value


def parse_options(body: dict[str, Any]) -> TriggerOptions:
    """Validate a trigger body; a problem is a 400 whose message names the field."""
    clean = {k: v for k, v in body.items() if v is not None and v != ""}
    if "cause" in clean and not isinstance(clean["cause"], str):
        clean["cause"] = str(clean["cause"])
    try:
        return TriggerOptions.model_validate(clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise DockyardError(
            message if message.startswith("Invalid dbt commands") else f"{where}: {message}",
            hint="see the trigger fields in docs/api.md",
        ) from None


def run_commands(job, options: TriggerOptions) -> list[str]:
    """The run's commands: ``steps_override`` or the job's, plus the job's freshness step and
    the docs step (``generate_docs_override`` wins over the job's ``generate_docs``)."""
    commands = list(options.steps_override or job.commands)
    names = [parse_command(c).name for c in commands]
    if job.run_generate_sources and "source freshness" not in names:
        commands.insert(0, "dbt source freshness")
    docs = job.generate_docs if options.generate_docs_override is None else options.generate_docs_override
    if docs and "docs generate" not in names:
        commands.append("dbt docs generate")
    if not docs and options.generate_docs_override is False and not options.steps_override:
        commands = [c for c in commands if parse_command(c).name != "docs generate"]
    return commands


def stored(options: TriggerOptions) -> dict[str, Any] | None:
    """What goes into ``runs.overrides`` (only the fields given)."""
    data = options.model_dump(exclude_none=True, exclude={"cause", "git_sha", "git_branch"})
    return data or None


def timeout_seconds(job_timeout: float, overrides: dict | None) -> float:
    value = (overrides or {}).get("timeout_seconds_override")
    if value is None:
        return job_timeout
    return MAX_TIMEOUT if int(value) == 0 else int(value)


def profile_for_run(project, env_name: str, target: str, overrides: dict | None, state_dir: Path) -> tuple[str, Path]:
    """The target and profiles folder of one run. ``schema_override`` and a
    ``target_name_override`` need a derived profile (the user's profile, unrendered, with
    that schema / an output of that name copied from ``target``, so ``target.name`` is that
    name but the credentials stay the environment's), written under
    ``state_dir/profiles/<env>/run-<hash>/``. Only a run whose overrides carry
    :data:`TARGET_SWITCH` (set for unrestricted admins, see :mod:`dockyard.policy`) runs on
    the profile's output of that name instead."""
    ov = overrides or {}
    schema, name = ov.get("schema_override"), ov.get("target_name_override")
    if not schema and project.loaded.config.environments[env_name].personal_schema:
        schema = personal_schema()  # dev on a laptop: dbt_<user> (docs/ci.md, "Environments in practice")
    if name and ov.get(TARGET_SWITCH) and name in project.targets(project.loaded.config.environments[env_name]):
        target, name = name, None
    elif name == target:
        name = None
    if not schema and not name:
        return target, project.effective_profiles_dir(env_name, target)
    from ruamel.yaml import YAML

    env = project.loaded.config.environments[env_name]
    profile = project.profile(env)
    output = dict(profile["outputs"][target])
    if env.schema_:
        output["schema"] = env.schema_
    if schema:
        output["schema"] = schema
    if name:
        profile["outputs"][name] = output
        target = name
    else:
        profile["outputs"][target] = output
    key = hashlib.sha256(json.dumps([target, schema, name], sort_keys=True).encode()).hexdigest()[:12]
    folder = private_dir(state_dir / "profiles" / env_name / f"run-{key}")
    tmp = folder / ".profiles.yml.tmp"
    with open_private(tmp, "w", encoding="utf-8") as fh:  # 0600, like all of the state folder
        YAML(typ="rt").dump({project.profile_name: profile}, fh)
    tmp.replace(folder / "profiles.yml")
    return target, folder


def personal_schema(environ: dict[str, str] | None = None) -> str:
    """The schema of an environment with ``personal_schema: true``: ``$DOCKYARD_DEV_SCHEMA``, else
    ``dbt_<OS user>`` lower-cased with every character but ``a-z0-9_`` made ``_``."""
    import getpass
    import os
    import re

    environ = os.environ if environ is None else environ
    given = environ.get("DOCKYARD_DEV_SCHEMA")
    if given:
        if not re.match(IDENT, given) or len(given) > 63:
            raise DockyardError(
                f"DOCKYARD_DEV_SCHEMA={given!r} is not a schema name",
                hint="use letters, digits and _ (starting with a letter or _), at most 63 characters",
            )
        return given
    try:
        user = environ.get("USER") or environ.get("LOGNAME") or getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return "dbt_" + (re.sub(r"[^a-z0-9_]", "_", user.lower())[:50] or "dev")


def run_env(overrides: dict | None, git_sha: str | None, git_branch: str | None) -> dict[str, str]:
    """dbt Cloud's variables for the trigger's git ref and pull request."""
    out: dict[str, str] = {}
    if git_sha:
        out["DBT_CLOUD_GIT_SHA"] = git_sha
    if git_branch:
        out["DBT_CLOUD_GIT_BRANCH"] = git_branch
    for key in (
        "github_pull_request_id",
        "gitlab_merge_request_id",
        "azure_pull_request_id",
        "non_native_pull_request_id",
    ):
        if (overrides or {}).get(key):
            out["DBT_CLOUD_PR_ID"] = str(overrides[key])
    return out


_VERSION: list[str] = []


def dbt_version() -> str:
    if not _VERSION:
        try:
            _VERSION.append(metadata.version("dbt-core"))
        except metadata.PackageNotFoundError:  # pragma: no cover
            _VERSION.append("unknown")
    return _VERSION[0]
