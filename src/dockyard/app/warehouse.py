"""Asking the warehouse through dbt: one dockyard macro run with ``dbt run-operation``.

Everything dockyard reads from or writes to the warehouse outside a job's own steps (PR
schemas listed and dropped, row counts compared, monitors measured, run history written)
goes through dbt itself, so every adapter works the same way, with the environment's
profile, target and secrets. The macros are written into a copy of the project
(:func:`dockyard.slim.shadow.make`, ``<state_dir>/<folder>/<env>``, dbt's partial parse of it
kept in ``<state_dir>/<folder>-target/<env>``); the macro logs its answer as one line
``dockyard-<word>: <json>``, which :func:`run_macro` returns. Out of band: never inside a
job's dbt invocation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dockyard import overrides as ov
from dockyard.errors import DockyardError
from dockyard.project import dbt_environment, hidden_files, resolve_secrets
from dockyard.runner.isolation import file_view
from dockyard.slim import shadow

OUTPUT = re.compile(r"dockyard-([a-z_]+): ([\[{].*[\]}])\s*$")


def run_macro(
    app,
    env_name: str,
    macro: str,
    args: dict | None = None,
    *,
    macros: dict[str, str],
    folder: str = "ops",
    timeout: float = 600,
) -> Any:
    """Run ``macro`` (defined in ``macros``: file name -> text) in environment ``env_name``;
    the JSON value of the last ``dockyard-<word>: <json>`` line it logged.
    :class:`DockyardError` when dbt fails or the macro logged no answer."""
    from dockyard.app.ci_run import call_dbt

    project = app.project
    env = app.config.environments[env_name]
    target = project.target_for(env_name)
    target, profiles_dir = ov.profile_for_run(project, env_name, target, {}, app.state_dir)
    source = app.repository.project_dir(None)
    copy = shadow.make(Path(source), app.state_dir / folder / env_name, macros)
    target_path = app.state_dir / f"{folder}-target" / env_name
    target_path.mkdir(parents=True, exist_ok=True)
    argv = ["run-operation", macro]
    if args:
        argv += ["--args", json.dumps(args)]
    argv += ["--target", target, "--profiles-dir", str(profiles_dir), "--project-dir", str(copy)]
    argv += ["--target-path", str(target_path), "--log-level-file", "none"]
    env_vars = dbt_environment(app.loaded, env_name, resolve_secrets(app.loaded, env_name))
    view = file_view(
        app.state_dir,
        base=source,
        argv=argv,
        reveal=[copy, target_path, profiles_dir],
        hide_files=hidden_files(app.loaded, env_name, app.store_url),
    )
    code, lines = call_dbt(argv, source, env_vars, view, mode="subprocess", timeout=timeout)
    for line in reversed(lines):
        m = OUTPUT.search(line)
        if m:
            return json.loads(m.group(2))
    raise DockyardError(
        f"dbt run-operation {macro} in environment '{env_name}' (target {env.target}) failed (exit {code}):\n"
        + "\n".join(lines[-10:]),
        hint="check the environment's connection (dockyard validate --connection)",
    )
