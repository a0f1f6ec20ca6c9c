"""The dbt project a config points at: paths, profiles, targets and the environment for dbt."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from dockyard.config.loader import LoadedConfig, read_yaml
from dockyard.config.model import Environment
from dockyard.errors import ConfigError, Location, ProjectError
from dockyard.permissions import open_private, private_dir
from dockyard.secrets import UnreadableSecret, read_reference

# Variables of dockyard's own environment that every dbt process gets.
BASE_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PYTHONPATH",
)


@dataclass
class DbtProject:
    """The dbt project folder, its profile name, and where its profiles live."""

    loaded: LoadedConfig
    project_dir: Path = field(init=False)
    profile_name: str = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.loaded.config
        # a commit's config (code from git, dockyard.app.repository): the project is in its checkout
        root = getattr(self.loaded, "project_root", None) or self.loaded.base_dir
        self.project_dir = (root / (cfg.project_dir or ".")).resolve()
        project_file = self.project_dir / "dbt_project.yml"
        if not project_file.is_file():
            raise ProjectError(
                f"{self.project_dir} does not contain a dbt_project.yml file",
                location=self.loaded.location("project_dir"),
                hint="put dockyard.yml at the dbt project's root or set project_dir: to it",
            )
        data = read_yaml(project_file) or {}
        if not isinstance(data, dict):
            raise ProjectError(
                f"{project_file} is not a mapping of keys such as name: and profile:",
                location=Location(str(project_file), 1),
                hint="see dbt's dbt_project.yml reference",
            )
        self.profile_name = str(data.get("profile") or data.get("name") or "default")
        self.name = str(data.get("name", self.project_dir.name))

    @property
    def state_dir(self) -> Path:
        return (self.loaded.base_dir / self.loaded.config.state_dir).resolve()

    def profiles_dir(self, env: Environment | None = None) -> Path:
        """Precedence: environment's profiles_dir, top-level profiles_dir, $DBT_PROFILES_DIR,
        the project folder when it has a profiles.yml, then ~/.dbt."""
        for candidate in (
            env.profiles_dir if env else None,
            self.loaded.config.profiles_dir,
            os.environ.get("DBT_PROFILES_DIR"),
        ):
            if candidate:
                return (self.loaded.base_dir / os.path.expanduser(candidate)).resolve()
        home = getattr(self.loaded, "profiles_home", None) or self.project_dir  # never a commit's
        if (home / "profiles.yml").is_file():
            return home
        return Path.home() / ".dbt"

    def profile(self, env: Environment | None = None) -> dict[str, Any]:
        """The raw (unrendered) profile of this project from profiles.yml."""
        folder = self.profiles_dir(env)
        path = folder / "profiles.yml"
        if not path.is_file():
            raise ProjectError(
                f"no profiles.yml in {folder}",
                hint="create it, or set profiles_dir: in dockyard.yml to the folder that has it",
            )
        data = read_yaml(path) or {}
        if not isinstance(data, dict) or not isinstance(data.get(self.profile_name, {}), dict):
            raise ProjectError(
                f"{path} is not a mapping of profile names to profiles",
                location=Location(str(path), 1),
                hint="see dbt's profiles.yml reference",
            )
        if self.profile_name not in data:
            raise ProjectError(
                f"profile '{self.profile_name}' (from dbt_project.yml) is not in {path}",
                hint=f"profiles there: {', '.join(k for k in data if k != 'config') or 'none'}",
            )
        return data[self.profile_name]

    def output_in(self, profiles_dir: Path | str, target: str) -> dict[str, Any] | None:
        """The raw output ``target`` of this project's profile in ``profiles_dir``, or None."""
        path = Path(profiles_dir) / "profiles.yml"
        try:
            data = read_yaml(path) or {}
            output = data[self.profile_name]["outputs"][target]
        except (OSError, KeyError, TypeError, ConfigError):
            return None
        return dict(output) if isinstance(output, dict) else None

    def targets(self, env: Environment | None = None) -> list[str]:
        return list((self.profile(env).get("outputs") or {}).keys())

    def target_for(self, env_name: str, target_override: str | None = None) -> str:
        env = self.loaded.config.environments[env_name]
        target = target_override or env.target
        names = self.targets(env)
        if target not in names:
            import difflib

            close = difflib.get_close_matches(target, names, n=1)
            raise ConfigError(
                f"target '{target}' of environment '{env_name}' is not in profile '{self.profile_name}'",
                location=self.loaded.location("environments", env_name, "target"),
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + f"targets in {self.profiles_dir(env) / 'profiles.yml'}: {', '.join(names) or 'none'}",
            )
        return target

    def effective_profiles_dir(self, env_name: str, target: str) -> Path:
        """The profiles folder to hand dbt: the user's, or a derived copy with the
        environment's ``schema`` written into the target (dbt has no flag for it)."""
        env = self.loaded.config.environments[env_name]
        if not env.schema_:
            return self.profiles_dir(env)
        profile = self.profile(env)
        profile["outputs"][target]["schema"] = env.schema_
        folder = private_dir(self.state_dir / "profiles" / env_name)
        yaml = YAML(typ="rt")
        text_path = folder / "profiles.yml"
        with open_private(text_path, "w", encoding="utf-8") as fh:
            yaml.dump({self.profile_name: profile}, fh)
        return folder

    def target_path(self, env_name: str) -> Path:
        """One dbt target folder per environment, so partial parsing survives between runs."""
        return self.state_dir / "targets" / env_name


def resolve_secrets(loaded: LoadedConfig, env_name: str) -> dict[str, str]:
    env = loaded.config.environments[env_name]
    out: dict[str, str] = {}
    for name, ref in env.secrets.items():
        try:  # an empty variable is a value (a profile may read an optional secret)
            out[name] = read_reference(ref, allow_empty=True)
        except UnreadableSecret as exc:
            where = loaded.location("environments", env_name, "secrets", name)
            raise ConfigError(f"secret {name} {exc.problem}", location=where, hint=exc.hint) from None
    return out


def hidden_files(loaded: LoadedConfig, env_name: str, store_url: str | None = None) -> list[str]:
    """Files a step of ``env_name`` must not read: the ``file:`` secrets of the other
    environments, and a SQLite store kept outside the state folder (see
    :mod:`dockyard.runner.isolation`)."""
    out = []
    for name, env in loaded.config.environments.items():
        if name != env_name:
            out += [
                os.path.abspath(os.path.expanduser(ref[5:])) for ref in env.secrets.values() if ref.startswith("file:")
            ]
    if store_url and store_url.startswith("sqlite:///"):
        database = store_url[len("sqlite:///") :].split("?", 1)[0]
        if database and database != ":memory:":
            database = os.path.abspath(database)  # sqlite:////abs -> /abs
            out += [database + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    return out


def dbt_environment(
    loaded: LoadedConfig,
    env_name: str,
    secrets: dict[str, str],
    run_id: int | None = None,
    *,
    job_id: int | None = None,
    cause: str | None = None,
    trigger: str = "manual",
) -> dict[str, str]:
    """The explicit environment a dbt process gets: a few base variables, DBT_* variables
    (but those some environment's ``secrets`` read), ``runner.inherit_env``, the environment's
    ``env`` and its resolved ``secrets``."""
    env = loaded.config.environments[env_name]
    keep = set(BASE_ENV) | set(loaded.config.runner.inherit_env)
    # a DBT_* variable behind some environment's secret (env:DBT_PROD_PW) is that secret, not
    # a pass-through: each environment gets its own secrets under their declared names only
    sources = {
        ref[4:] for e in loaded.config.environments.values() for ref in e.secrets.values() if ref.startswith("env:")
    }
    out = {k: v for k, v in os.environ.items() if k in keep or (k.startswith("DBT_") and k not in sources)}
    out.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # dbt creates its log folder even with the file log off (--log-level-file none): in the
    # state folder (private, like everything there), not as an empty logs/ in the project
    out.setdefault("DBT_LOG_PATH", str((loaded.base_dir / loaded.config.state_dir / "dbt-logs").resolve()))
    out.update(env.env)
    out.update(secrets)
    out["DOCKYARD_ENVIRONMENT"] = env_name
    if run_id is not None:
        out["DOCKYARD_RUN_ID"] = str(run_id)
        # dbt Cloud's run variables, also with dbt's metadata prefix so that every artifact's
        # metadata.env carries them (clients such as dagster-dbt read DBT_CLOUD_RUN_ID there).
        category = {"schedule": "scheduled", "ci": "github_pull_request"}.get(trigger, "other")
        cloud = {
            "DBT_CLOUD_PROJECT_ID": "1",
            "DBT_CLOUD_JOB_ID": str(job_id or 0),
            "DBT_CLOUD_RUN_ID": str(run_id),
            "DBT_CLOUD_RUN_REASON_CATEGORY": category,
            "DBT_CLOUD_RUN_REASON": cause or "Kicked off by dockyard",
        }
        for key, value in cloud.items():
            out[key] = value
            out["DBT_ENV_CUSTOM_ENV_" + key] = value
    return out
