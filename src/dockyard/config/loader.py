"""Load dockyard.yml: YAML with line numbers, pydantic validation, located errors."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from dockyard.config.model import Config, Job
from dockyard.config.yamlfile import parse_yaml, read_text, read_yaml
from dockyard.errors import ConfigError, ConfigErrors, Location

__all__ = ["CONFIG_NAME", "LoadedConfig", "find_config", "load_config", "parse_yaml", "read_yaml"]

CONFIG_NAME = "dockyard.yml"
# Keys whose values an error message must not repeat (they are or may embed secrets).
SENSITIVE_KEYS = frozenset({"secrets", "integration_key", "webhook_url", "url"})


@dataclass
class LoadedConfig:
    """A validated config plus where it came from."""

    config: Config
    path: Path
    raw: Any
    text: str | None = None  # what it was loaded from (a reload compares it with the file)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def line_of(self, *keys: str | int) -> int | None:
        return line_of(self.raw, keys)

    def location(self, *keys: str | int) -> Location:
        return Location(str(self.path), self.line_of(*keys), _dotted(keys))

    def job(self, name_or_id: str) -> Job:
        for job in self.config.jobs:
            if name_or_id in (job.name, job.identifier):
                return job
        raise ConfigError(
            f"no job named '{name_or_id}'",
            location=Location(str(self.path), key="jobs"),
            hint=_suggest(name_or_id, [j.name for j in self.config.jobs], "job"),
        )


def find_config(start: Path | None = None) -> Path:
    """``dockyard.yml`` in ``start`` or its parents (or ``$DOCKYARD_CONFIG``)."""
    if env := os.environ.get("DOCKYARD_CONFIG"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or its parents",
        hint="run 'dockyard init' in your dbt project, or pass --config PATH",
    )


def load_config(path: Path | str | None = None, *, text: str | None = None) -> LoadedConfig:
    """Load and validate dockyard.yml; ``text``: its content, already read (and decoded) by
    the caller (a reload checks a snapshot of the file, then loads that same snapshot)."""
    path = Path(path) if path else find_config()
    if text is None:
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist",
                hint="pass the path of your dockyard.yml with --config, or run 'dockyard init'",
            )
        text = read_text(path)
    raw = parse_yaml(text, str(path))
    if raw is None:
        raise ConfigError(
            "the config file is empty",
            location=Location(str(path), 1),
            hint="declare at least 'environments:'; 'dockyard init' writes a commented example",
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            "the top level must be a mapping of keys such as environments: and jobs:",
            location=Location(str(path), 1),
            hint="see docs/configuration.md",
        )
    data = _plain(raw)
    if isinstance(data.get("jobs"), dict):  # dbt-jobs-as-code shape: jobs keyed by identifier
        data["jobs"] = [{"identifier": k, **(v or {})} for k, v in data["jobs"].items()]
        raw = _jobs_as_list(raw)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors([_located(err, raw, path) for err in exc.errors()]) from None
    loaded = LoadedConfig(config, path.resolve(), raw, text)
    _cross_check(loaded)
    return loaded


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _jobs_as_list(raw: CommentedMap) -> CommentedMap:
    seq = CommentedSeq()
    seq.lc.data = {}
    for i, (key, value) in enumerate(raw["jobs"].items()):
        seq.append(value)
        line, col = raw["jobs"].lc.key(key)
        seq.lc.data[i] = [line, col, line, col]
    raw["jobs"] = seq  # keeps the key's line; items keep their lines through seq.lc
    return raw


def line_of(raw: Any, keys: tuple) -> int | None:
    """1-based line of the deepest existing key along ``keys``."""
    node, line = raw, None
    for key in keys:
        try:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        except (KeyError, AttributeError, TypeError):
            break
    return line


def _dotted(keys: tuple) -> str | None:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or None


def _model_at(keys: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``keys`` (for typo suggestions)."""
    model: Any = Config
    for key in keys[:-1]:
        if isinstance(key, int):
            continue
        if model is Config and key == "environments":
            from dockyard.config.model import Environment

            model = {"__env__": Environment}
            continue
        if isinstance(model, dict):
            model = model["__env__"]
            continue
        field = model.model_fields.get(key) or next((f for f in model.model_fields.values() if f.alias == key), None)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or (ann,)
        model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            args2 = [getattr(a, "__args__", ()) for a in args]
            model = next((b for arg in args2 for b in arg if isinstance(b, type) and issubclass(b, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) else None


def _suggest(word: str, choices: list[str], what: str = "key") -> str | None:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean the {what} '{close[0]}'?" if close else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _located(err: dict, raw: Any, path: Path) -> ConfigError:
    loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith("function-")))
    loc = tuple(k for k in loc if k not in ("literal['fork','subprocess']",))
    location = Location(str(path), line_of(raw, loc) or 1, _dotted(loc))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        hint = _suggest(str(loc[-1]), _keys_of(model)) if model else None
        valid = ", ".join(_keys_of(model)) if model else ""
        return ConfigError(
            f"unknown key '{loc[-1]}'",
            location=location,
            hint=hint or (f"valid keys here are: {valid}" if valid else "remove it"),
        )
    if kind == "missing":
        return ConfigError(
            f"required key '{loc[-1]}' is missing",
            location=location,
            hint=f"add '{loc[-1]}:' here (see docs/configuration.md)",
        )
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        return ConfigError(msg, location=location, hint=_fix_hint(loc, msg))
    # never echo a value written where a secret (or a URL holding credentials) belongs
    got = "" if SENSITIVE_KEYS.intersection(k for k in loc if isinstance(k, str)) else f" (got {err.get('input')!r})"
    return ConfigError(f"{msg.rstrip('.')}{got}", location=location, hint=_fix_hint(loc, msg))


def _fix_hint(loc: tuple, msg: str) -> str:
    named = [k for k in loc if isinstance(k, str)]
    last = named[-1] if named else ""
    hints = {
        "cron": "use 5 fields that match real dates, e.g. '0 2 * * *' (02:00 every day)",
        "timezone": "use an IANA name such as 'UTC', 'Europe/Paris' or 'America/New_York'",
        "commands": "write each command as 'dbt <subcommand> [flags]', one per list entry",
        "secrets": "reference the value, e.g. DBT_ENV_SECRET_PASSWORD: env:PROD_DB_PASSWORD",
        "threads": "use a whole number from 1 to 64",
        "timeout_seconds": "use a whole number of seconds, e.g. 3600",
        "mode": "use 'fork' or 'subprocess'",
        "type": "use one of slack, email, pagerduty, msteams, webhook",
    }
    for key in reversed(loc):
        if isinstance(key, str) and key in hints:
            return hints[key]
    return f"correct the value of '{last}' (see docs/configuration.md)"


def _cross_check(loaded: LoadedConfig) -> None:
    cfg, errors = loaded.config, []
    env_names = list(cfg.environments)
    seen: dict[str, int] = {}
    for i, job in enumerate(cfg.jobs):
        if job.environment not in cfg.environments:
            errors.append(
                ConfigError(
                    f"job '{job.name}' uses environment '{job.environment}', which is not declared",
                    location=loaded.location("jobs", i, "environment"),
                    hint=_suggest(job.environment, env_names, "environment")
                    or f"declare it under environments: (declared: {', '.join(env_names)})",
                )
            )
        if job.name in seen:
            errors.append(
                ConfigError(
                    f"job name '{job.name}' is used twice",
                    location=loaded.location("jobs", i, "name"),
                    hint=f"job names must be unique (first used by jobs[{seen[job.name]}])",
                )
            )
        seen.setdefault(job.name, i)
        if job.schedule and job.triggers.schedule is None:
            job.triggers.schedule = True
        after = job.triggers.after
        for k, upstream in enumerate(after.jobs if after else []):
            if upstream not in seen and upstream not in [j.name for j in cfg.jobs]:
                errors.append(
                    ConfigError(
                        f"job '{job.name}' waits for job '{upstream}', which is not declared",
                        location=loaded.location("jobs", i, "triggers", "after", "jobs", k),
                        hint=_suggest(upstream, [j.name for j in cfg.jobs], "job") or "name a job of this file",
                    )
                )
            elif upstream == job.name:
                errors.append(
                    ConfigError(
                        f"job '{job.name}' cannot wait for itself",
                        location=loaded.location("jobs", i, "triggers", "after", "jobs", k),
                        hint="remove it from triggers.after.jobs",
                    )
                )
    if errors:
        raise ConfigErrors(errors)
