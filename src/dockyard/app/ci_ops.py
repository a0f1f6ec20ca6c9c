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
import shutil
from datetime import datetime, timedelta

from dockyard.app.warehouse import run_macro
from dockyard.errors import DockyardError
from dockyard.slim import compare as comparing
from dockyard.slim import schema as pr_schema

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


def _operation(app, env_name: str, macro: str, args: dict | None = None):
    """Run one dockyard macro; the list (or mapping) it logs."""
    macros = {"dockyard__ops.sql": MACROS, comparing.FILE: comparing.MACRO}
    return run_macro(app, env_name, macro, args, macros=macros, folder="ci/ops")


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
        shutil.rmtree(app.ci.shadow_dir(env_name, pr), ignore_errors=True)
        shutil.rmtree(app.ci.target_dir(env_name, pr), ignore_errors=True)
    return dropped


def compare(app, run_id: int) -> list[dict]:
    """Rows and columns of the pull request's changed table and incremental models against
    the base's (one ``dbt run-operation``); written into the run's ci.json as
    ``comparisons``. Nothing to compare (or a warehouse that cannot be asked): ``[]``."""
    from dockyard.app.ci_run import write_report
    from dockyard.slim import manifest as mf

    root = app.runs.artifact_root(run_id)
    try:
        report = json.loads((root / "ci.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if report.get("compared"):  # done by the build's own dbt process (see pairs())
        return report.get("comparisons") or []
    try:
        base = mf.load(app.runs.folder(run_id) / "state" / "manifest.json")
    except (OSError, ValueError):
        return []
    manifests = sorted(root.glob("step-*/manifest.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not manifests:
        return []
    found_pairs = comparing.pairs(mf.load(manifests[-1]), base, report.get("selected", []))
    if not found_pairs:
        return []
    try:
        found = _operation(app, report["environment"], "dockyard__compare", {"pairs": found_pairs})
    except DockyardError as exc:
        log.warning("run %s: no row and column comparison: %s", run_id, exc.what)
        return []
    report["comparisons"] = comparing.comparisons(found_pairs, found)
    write_report(app.runs.folder(run_id), report)
    return report["comparisons"]
