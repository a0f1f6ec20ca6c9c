"""Dropping pull-request schemas: ``app.ci.cleanup`` and ``app.ci.janitor``.

The warehouse is asked through dbt itself, so that every adapter works the same way: two
dockyard macros (``dockyard__list_schemas``, ``dockyard__drop_schemas``, over dbt's
``list_schemas`` and ``drop_schema``, which each adapter implements) run with ``dbt
run-operation`` in a copy of the project (``<state_dir>/ci/ops/<env>``, its partial parse kept in
``<state_dir>/ci/ops-target/<env>``), with the CI environment's profile and secrets.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path

from dockyard import overrides as ov
from dockyard.errors import DockyardError
from dockyard.project import dbt_environment, hidden_files, resolve_secrets
from dockyard.runner.isolation import file_view
from dockyard.slim import schema as pr_schema
from dockyard.slim import shadow

log = logging.getLogger("dockyard.app.ci")
MACROS = """{# written by dockyard: listing and dropping pull-request schemas #}
{% macro dockyard__list_schemas() %}
  {% set names = list_schemas(target.database).columns[0].values() | list %}
  {{ log('dockyard-schemas: ' ~ tojson(names), info=True) }}
{% endmacro %}

{% macro dockyard__drop_schemas(schemas) %}
  {% set dropped = [] %}
  {% for name in list_schemas(target.database).columns[0].values() | sort %}
    {% for wanted in schemas %}
      {% set n, w = name | lower, wanted | lower %}
      {% if (n == w or n.startswith(w ~ '_')) and name not in dropped %}
        {% do drop_schema(api.Relation.create(database=target.database, schema=name)) %}
        {% do dropped.append(name) %}
      {% endif %}
    {% endfor %}
  {% endfor %}
  {% if dropped %}{% do adapter.commit() %}{% endif %}
  {{ log('dockyard-dropped: ' ~ tojson(dropped), info=True) }}
{% endmacro %}
"""
OUTPUT = re.compile(r"dockyard-(schemas|dropped): (\[.*\])\s*$")


def _operation(app, env_name: str, macro: str, args: dict | None = None) -> list[str]:
    """Run one dockyard macro; the list it logs."""
    from dockyard.app.ci_run import call_dbt

    project = app.project
    env = app.config.environments[env_name]
    target = project.target_for(env_name)
    target, profiles_dir = ov.profile_for_run(project, env_name, target, {}, app.state_dir)
    source = app.repository.project_dir(None)
    copy = shadow.make(Path(source), app.state_dir / "ci" / "ops" / env_name, {"dockyard__ops.sql": MACROS})
    target_path = app.state_dir / "ci" / "ops-target" / env_name
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
    code, lines = call_dbt(argv, source, env_vars, view, mode="subprocess", timeout=600)
    for line in reversed(lines):
        m = OUTPUT.search(line)
        if m:
            return list(json.loads(m.group(2)))
    raise DockyardError(
        f"dbt run-operation {macro} in environment '{env_name}' (target {env.target}) failed (exit {code}):\n"
        + "\n".join(lines[-10:]),
        hint="check the CI environment's connection (dockyard validate --connection)",
    )


def drop_schemas(app, env_name: str, schemas: list[str]) -> list[str]:
    """Drop each schema and its custom variants (``<schema>_*``); the names dropped."""
    if not schemas:
        return []
    dropped = _operation(app, env_name, "dockyard__drop_schemas", {"schemas": sorted(schemas)})
    log.info("dropped pull-request schemas in %s: %s", env_name, ", ".join(dropped) or "none")
    return dropped


def janitor(app, env_name: str, open_prs: set[int] | None, now: datetime) -> list[str]:
    store = app.store.pr_schemas
    prefix = app.ci.pr_schema(env_name, 0).rsplit("_pr_", 1)[0]
    after = timedelta(hours=app.config.ci.janitor_after_hours)
    known = {r.schema.lower(): r for r in store.list(environment=env_name, states=("open", "closed"))}
    doomed: dict[str, int] = {}
    for record in known.values():
        if (open_prs is not None and record.pr_number not in open_prs) or (
            open_prs is None and now - record.updated_at >= after
        ):
            doomed[record.schema] = record.pr_number
    for name in _operation(app, env_name, "dockyard__list_schemas"):
        parsed = pr_schema.parse_pr_schema(name)
        if parsed is None or parsed[0].lower() != prefix.lower() or name.lower() in known:
            continue
        if open_prs is None or parsed[1] not in open_prs:  # no build recorded it: a crash, another host
            doomed[name] = parsed[1]
    if not doomed:
        return []
    dropped = drop_schemas(app, env_name, sorted(doomed))
    for pr in sorted(set(doomed.values())):
        store.mark(env_name, pr, "dropped")
    return dropped
