"""The ``repository:`` and ``ci:`` blocks of dockyard.yml (docs/ci.md, docs/configuration.md).

``repository:`` makes dockyard run the dbt project from git instead of the folder it is
started in (see :mod:`dockyard.repository`); ``ci:`` holds the slim CI defaults of
``dockyard ci`` and of pull-request runs (see :mod:`dockyard.app.ci`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/+-]{1,200}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_secret_ref(value: str | None, what: str) -> str | None:
    """A secret is given by reference (``env:NAME`` or ``file:PATH``), never literally."""
    if value is None:
        return None
    if not SECRET_REF.match(value):
        raise ValueError(
            f"{what} must be a reference such as 'env:NAME' or 'file:/run/secrets/x', never a literal value"
        )
    return value


class RepositoryConfig(_Strict):
    """Where the dbt project's code comes from: a git remote and the branch deployed."""

    url: str = Field(min_length=1, max_length=2000)  # a local path, file://, https:// (or ssh) URL
    branch: str = "main"  # the deploy branch: its head is what the server runs
    username: str | None = Field(None, max_length=200)  # https user (default x-access-token with a token)
    token: str | None = None  # a secret reference (env:NAME, file:PATH) for https
    # fetch the remote every N seconds (0: only on `dockyard deploy` and push webhooks)
    poll_seconds: float = Field(0, ge=0, le=86400)
    # where dockyard.yml is inside the repository (its folder is the base of project_dir)
    config_path: str = Field("dockyard.yml", min_length=1, max_length=500)

    @field_validator("config_path")
    @classmethod
    def _config_path(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts or not parts[-1]:
            raise ValueError(f"{value!r} must be a relative file path inside the repository, e.g. 'dockyard.yml'")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not BRANCH.match(value) or value.endswith((".lock", "/", ".")):
            raise ValueError(f"{value!r} is not a valid git branch name")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "repository.token")


class GitHubConfig(_Strict):
    repo: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # OWNER/NAME
    token: str | None = None  # secret reference
    api_url: str = "https://api.github.com"
    # "status" (commit status) or "check" (check run; needs a GitHub App token)
    report: Literal["status", "check"] = "status"

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "ci.github.token")


class GitLabConfig(_Strict):
    project: str | None = Field(None, max_length=500)  # GROUP/NAME or a numeric id
    token: str | None = None  # secret reference
    api_url: str = "https://gitlab.com/api/v4"

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "ci.gitlab.token")


class CiConfig(_Strict):
    environment: str = "ci"  # where pull requests build (dockyard ci --env)
    base: str = "prod"  # whose last successful run's manifest is the state (dockyard ci --base)
    # no base manifest yet: build everything ("full") or fail with a clear message ("fail")
    without_base: Literal["full", "fail"] = "full"
    # the command a pull request builds when no job of the CI environment says otherwise
    command: str = "dbt build --select state:modified+"
    # the janitor drops PR schemas whose pull request is closed, or that saw no build for this long
    janitor_after_hours: float = Field(72, gt=0, le=24 * 365)
    # where a reader of the PR finds the run (the status's link, the summary's "see ..."): a URL
    # with {run_id}, e.g. https://dockyard.example.com/api/v1/runs/{run_id}
    run_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s<>]+$")
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    gitlab: GitLabConfig = Field(default_factory=GitLabConfig)
