"""The pull-request schema: its name, its enforcement over a project's own
``generate_schema_name``, and the check after parsing that nothing selected writes elsewhere.

dbt only calls the root project's ``generate_schema_name``. In the CI copy of the project
(:mod:`dockyard.slim.shadow`) the project's macro is renamed
``dockyard__project_generate_schema_name`` and dockyard's ``generate_schema_name`` wraps it:
whatever the project's macro answers, the final schema is the PR schema (the CI target's
schema) or starts with ``<pr schema>_``, so a project that routes models to custom schemas
verbatim (``marts``) writes ``<pr schema>_marts`` in CI, never the production schema.
"""

from __future__ import annotations

import re

from dockyard.errors import DockyardError

PROJECT_MACRO = "dockyard__project_generate_schema_name"
PR_SCHEMA = re.compile(r"^(?P<prefix>[A-Za-z_][A-Za-z0-9_]*)_pr_(?P<pr>[0-9]+)$")
_DEFINITION = re.compile(r"(\{%-?\s*macro\s+)generate_schema_name(\s*\()")
MACRO_FILE = "dockyard__pr_schema.sql"
WRAPPER = (
    """{# written by dockyard for a pull-request build: every schema starts with the PR schema #}
{% macro generate_schema_name(custom_schema_name=none, node=none) -%}
  {%- set pr_schema = target.schema | trim -%}
  {%- set chosen = ("""
    + PROJECT_MACRO
    + """(custom_schema_name, node) | trim) -%}
  {%- if chosen | lower == pr_schema | lower or (chosen | lower).startswith((pr_schema ~ '_') | lower) -%}
    {{ chosen }}
  {%- else -%}
    {{ pr_schema }}_{{ chosen }}
  {%- endif -%}
{%- endmacro %}
"""
)


def pr_schema(prefix: str, pr: int) -> str:
    return f"{prefix}_pr_{int(pr)}"


def parse_pr_schema(name: str) -> tuple[str, int] | None:
    """``(prefix, pr)`` of a schema named ``<prefix>_pr_<n>`` (or ``<prefix>_pr_<n>_<custom>``
    is not matched: the custom variants belong to their PR schema), else None."""
    m = PR_SCHEMA.match(name)
    return (m.group("prefix"), int(m.group("pr"))) if m else None


def belongs(schema: str, pr_schema_name: str) -> bool:
    """Whether ``schema`` is the PR schema or one of its custom variants (``<pr>_<custom>``)."""
    s, p = schema.lower(), pr_schema_name.lower()
    return s == p or s.startswith(p + "_")


def rename_definition(sql: str) -> tuple[str, int]:
    """The project's macro file with its ``generate_schema_name`` definition renamed."""
    return _DEFINITION.subn(lambda m: m.group(1) + PROJECT_MACRO + m.group(2), sql)


def check(manifest: dict, selected: list[str], pr_schema_name: str) -> None:
    """Every selected model, seed and snapshot (not ephemeral) writes into the PR schema or
    one of its variants; a :class:`DockyardError` naming the others otherwise."""
    nodes = manifest.get("nodes") or {}
    wrong = []
    for uid in selected:
        node = nodes.get(uid)
        if not node or node.get("resource_type") not in ("model", "seed", "snapshot"):
            continue
        if (node.get("config") or {}).get("materialized") == "ephemeral":
            continue
        if not belongs(str(node.get("schema") or ""), pr_schema_name):
            wrong.append(f"{uid} -> {node.get('schema')}")
    if wrong:
        raise DockyardError(
            f"pull-request build refused: {len(wrong)} selected node(s) would write outside the PR schema "
            f"{pr_schema_name}: {', '.join(wrong[:10])}",
            hint="the project's generate_schema_name (or a schema config) must build on target.schema; "
            "dockyard prefixes the schema the project's generate_schema_name returns, so check a "
            "generate_schema_name defined in a package or through adapter.dispatch",
        )
