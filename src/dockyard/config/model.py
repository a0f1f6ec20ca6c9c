"""The dockyard.yml schema (pydantic 2). Every key is documented in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard import plugins
from dockyard.config.alerts import AlertsConfig, Notification, check_names
from dockyard.config.ci import CiConfig, RepositoryConfig, check_secret_ref
from dockyard.config.cron import Schedule
from dockyard.config.metrics import MetricsConfig
from dockyard.config.monitors import Monitors
from dockyard.config.openlineage import OpenLineageConfig
from dockyard.dbt.command import CommandError, parse_command
from dockyard.text import control_problem

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_. -]*$"


def _check_command(text: str) -> str:
    try:
        parse_command(text)
    except CommandError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return text


Command = Annotated[str, AfterValidator(_check_command)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StoreConfig(Strict):
    url: str | None = None


class RunnerConfig(Strict):
    mode: Literal["fork", "subprocess"] = "fork"
    preload: bool | None = None
    grace_seconds: float = Field(10.0, ge=0, le=600)
    inherit_env: list[str] = Field(default_factory=list)
    # warm runs in workers (docs/warm-runs.md): a parsed manifest kept per environment
    warm: bool = True
    warm_idle_seconds: float = Field(900.0, gt=0, le=7 * 86400)
    warm_max_memory_mb: int = Field(4096, ge=64, le=1 << 20)
    # dockyard run hands its run to a live worker slot of a running server (docs/cli.md)
    hand_off: bool = True


class ServerConfig(Strict):
    account_id: int = Field(1, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(8580, ge=1, le=65535)
    workers: int = Field(2, ge=0, le=64)
    max_concurrent_runs: int | None = Field(None, ge=1)
    heartbeat_seconds: float = Field(5.0, gt=0, le=60)
    # a scheduler or worker slot whose heartbeat is older is restarted (default 3 x heartbeat + 10 s)
    stale_after_seconds: float | None = Field(None, gt=0, le=86400)
    lost_after_seconds: float = Field(30.0, gt=0, le=3600)
    poll_seconds: float = Field(0.25, gt=0, le=10)
    shutdown_grace_seconds: float = Field(60.0, ge=0, le=86400)
    reload: bool = True
    # the API (per token, per server process): requests and run triggers per minute
    request_rate_per_minute: int = Field(30000, ge=1)
    trigger_rate_per_minute: int = Field(60, ge=1)
    # admin tokens may ask for any dbt command, environment and profile output (docs/api.md, "Trust model")
    api_admin_unrestricted: bool = False
    # push and pull-request webhooks (docs/ci.md): secret references (env:NAME, file:PATH)
    github_webhook_secret: str | None = None
    gitlab_webhook_token: str | None = None
    gitlab_webhook_signing_token: str | None = None  # GitLab's signing token (Standard Webhooks)
    # where the server's pages are reached (alerts link to <public_url>/runs/<id>)
    public_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s/?#]+[^\s?#]*$")
    # GET /metrics (Prometheus) without a token (default: a read token, like the API)
    metrics_public: bool = False
    # a web UI login lasts this long (docs/ui.md, "Auth")
    ui_session_hours: float = Field(12.0, gt=0, le=24 * 90)

    @field_validator("github_webhook_secret", "gitlab_webhook_token", "gitlab_webhook_signing_token")
    @classmethod
    def _webhook_secrets(cls, value: str | None, info) -> str | None:
        return check_secret_ref(value, f"server.{info.field_name}")


class SinkSpec(BaseModel):
    """One ``events.sinks[]`` entry: ``type`` (a registered sink, see dockyard.plugins),
    an optional ``name`` and the sink's own options (checked by the sink class)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1)
    name: str | None = Field(None, min_length=1, max_length=200, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _known(self) -> SinkSpec:
        try:
            plugins.build_sink(self.spec(), plugins.SinkContext(Path("."), Path(".")))
        except plugins.UnknownSinkError as exc:
            raise ValueError(str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"sink {plugins.sink_name(self.spec())!r}: {exc}") from None
        return self

    def spec(self) -> dict:
        """The entry as a plain dict (type, name, options)."""
        data = {"type": self.type, **(self.model_extra or {})}
        if self.name is not None:
            data["name"] = self.name
        return data


class EventsConfig(Strict):
    sinks: list[SinkSpec] = Field(default_factory=list)
    # a foreground dockyard run waits at most this long for its events to be delivered
    foreground_wait_seconds: float = Field(10.0, ge=0, le=600)
    # one sink delivery taking longer counts as failed (and is retried with backoff)
    delivery_timeout_seconds: float = Field(10.0, gt=0, le=600)
    max_backoff_seconds: float = Field(300.0, ge=1, le=86400)
    retention_days: float = Field(7.0, gt=0, le=3650)

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, value: list[SinkSpec]) -> list[SinkSpec]:
        names = [s.name or s.type for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two sinks are named {', '.join(dupes)}: give each a distinct 'name'")
        return value


class Environment(Strict):
    target: str = Field(min_length=1, max_length=200)
    schema_: str | None = Field(None, alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    threads: int | None = Field(None, ge=1, le=64)
    max_concurrent_runs: int | None = Field(None, ge=1)
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    profiles_dir: str | None = None
    # pull-request builds in this environment go to <prefix>_pr_<number> (default: its schema)
    pr_schema_prefix: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # a personal schema on a laptop: dbt_<OS user>, or $DOCKYARD_DEV_SCHEMA
    personal_schema: bool = False
    # warm runs for this environment (default: runner.warm)
    warm: bool | None = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict) -> dict:
        for name in value:
            if not name.replace("_", "").isalnum() or name[0].isdigit():
                raise ValueError(f"'{name}' is not a valid environment variable name")
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}

    @field_validator("secrets")
    @classmethod
    def _secret_refs(cls, value: dict) -> dict:
        for name, ref in value.items():
            if not name.replace("_", "").isalnum() or name[0].isdigit():
                raise ValueError(f"'{name}' is not a valid environment variable name")
            if not (ref.startswith("env:") and len(ref) > 4) and not (ref.startswith("file:") and len(ref) > 5):
                raise ValueError(
                    f"secret {name} must be a reference such as 'env:{name}' or 'file:/run/secrets/x', "
                    "never a literal value"
                )
        return value


class JobSettings(Strict):
    threads: int | None = Field(None, ge=1, le=64)
    target_name: str | None = None


class AfterJobs(Strict):
    jobs: list[str] = Field(min_length=1)
    when: Literal["all", "any"] = "all"
    status: list[Literal["success", "error", "cancelled"]] = Field(default_factory=lambda: ["success"])


class Triggers(Strict):
    schedule: bool | None = None
    after: AfterJobs | None = None
    fresh_sources_only: bool = False
    on_merge: bool = False
    github_webhook: bool = False
    git_provider_webhook: bool = False
    custom_branch_only: bool | None = None


class Retries(Strict):
    max_attempts: int = Field(1, ge=1, le=20)
    backoff_seconds: float = Field(30.0, ge=0, le=86400)
    on: Literal["transient", "any"] = "transient"


class Job(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    identifier: str | None = None
    environment: str
    description: str | None = None
    commands: list[Command] = Field(min_length=1)
    schedule: Schedule | None = None
    settings: JobSettings = Field(default_factory=JobSettings)
    triggers: Triggers = Field(default_factory=Triggers)
    timeout_seconds: int = Field(7200, ge=1, le=7 * 86400)
    retries: Retries = Field(default_factory=Retries)
    catchup: Literal["latest", "none", "all"] = "latest"
    catchup_window_seconds: int = Field(86400, ge=0, le=90 * 86400)
    allow_overlap: bool = False
    priority: int = Field(0, ge=-100, le=100)
    generate_docs: bool = False
    run_generate_sources: bool = False
    notifications: list[Notification] = Field(default_factory=list)
    # Fields of the dbt Cloud jobs-as-code shape that dockyard accepts and keeps, without effect.
    account_id: int | None = None
    project_id: int | None = None
    environment_id: int | None = None
    dbt_version: str | None = None
    job_type: str | None = None
    deferring_environment_id: int | None = None
    state: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data):
        if isinstance(data, dict) and "execute_steps" in data and "commands" not in data:
            data = dict(data)
            data["commands"] = data.pop("execute_steps")
        if (
            isinstance(data, dict)
            and isinstance(data.get("retries"), int)
            and not isinstance(data.get("retries"), bool)
        ):
            data = dict(data)
            data["retries"] = {"max_attempts": data["retries"] + 1}
        return data

    @property
    def all_commands(self) -> list[str]:
        """The job's commands, plus ``dbt source freshness`` / ``dbt docs generate`` when asked."""
        cmds = list(self.commands)
        if (self.run_generate_sources or self.triggers.fresh_sources_only) and not any(
            parse_command(c).name == "source freshness" for c in cmds
        ):
            cmds.insert(0, "dbt source freshness")
        if self.generate_docs and not any(parse_command(c).name == "docs generate" for c in cmds):
            cmds.append("dbt docs generate")
        return cmds

    @property
    def cron(self) -> str | None:
        if self.schedule is None or self.triggers.schedule is False:
            return None
        return self.schedule.cron


class Config(Strict):
    version: Literal[1] = 1
    project_dir: str | None = None
    profiles_dir: str | None = None
    state_dir: str = ".dockyard"
    store: StoreConfig = Field(default_factory=StoreConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    repository: RepositoryConfig | None = None
    ci: CiConfig = Field(default_factory=CiConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)  # docs/metrics.md
    environments: Annotated[dict[str, Environment], Field(min_length=1)]
    jobs: list[Job] = Field(default_factory=list)
    # alerts (docs/alerts.md): channels for every job (filtered), and how deliveries are made
    notifications: list[Notification] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    monitors: Monitors = Field(default_factory=list)  # data monitors (docs/monitors.md)
    openlineage: OpenLineageConfig = Field(default_factory=OpenLineageConfig)  # docs/integrations.md

    @field_validator("notifications")
    @classmethod
    def _notification_names(cls, value: list[Notification]) -> list[Notification]:
        return check_names(value)

    @field_validator("environments")
    @classmethod
    def _env_names(cls, value: dict) -> dict:
        for name in value:  # shown in terminals and the API, like job names
            if problem := control_problem(name, f"environment name {name!r}"):
                raise ValueError(problem)
            if not name or len(name) > 200:  # the store's column
                raise ValueError(f"environment names have 1 to 200 characters ({name[:40]!r}... has {len(name)})")
        return value
