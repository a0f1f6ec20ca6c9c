"""Rows and columns of a pull request's changed models against production: which relations
to compare (:func:`pairs`), the dockyard macro that measures them (:data:`MACRO`, carried in
the CI copy of the project so that the build's own dbt process runs it right after the build,
on the manifest it parsed), and its answer as the summary's rows (:func:`comparisons`)."""

from __future__ import annotations

COMPARED = ("table", "incremental")

# rows and columns of relation pairs; also put into a pull request's CI copy, so that its
# build's dbt process compares right after the build, on the manifest it parsed
FILE = "dockyard__compare.sql"
MACRO = """{# written by dockyard: rows and columns of the changed models #}
{% macro dockyard__compare(pairs) %}
  {% set out = {} %}
  {% for pair in pairs %}
    {% set sides = {} %}
    {% for side in ['pr', 'base'] %}
      {% set r = pair[side] %}
      {% set rel = adapter.get_relation(database=r[0], schema=r[1], identifier=r[2]) %}
      {% if rel is not none %}
        {% set rows = run_query('select count(*) from ' ~ rel).columns[0].values()[0] %}
        {% set cols = [] %}
        {% for c in adapter.get_columns_in_relation(rel) %}
          {% do cols.append([c.name, c.data_type]) %}
        {% endfor %}
        {% do sides.update({side: {'rows': rows | int, 'columns': cols}}) %}
      {% endif %}
    {% endfor %}
    {% do out.update({pair['unique_id']: sides}) %}
  {% endfor %}
  {{ log('dockyard-compared: ' ~ tojson(out), info=True) }}
{% endmacro %}
"""
MARK = "dockyard-compared: "


def pairs(new: dict, base: dict, selected: list[dict]) -> list[dict]:
    """The relations to compare: each selected model changed itself (not only downstream),
    materialised as a table or incremental, in the pull request and in the base."""
    out = []
    for s in selected:
        uid = s["unique_id"]
        node, old = (new.get("nodes") or {}).get(uid), (base.get("nodes") or {}).get(uid)
        if s["reason"].startswith("downstream of ") or not node or not old or node.get("resource_type") != "model":
            continue
        if (node.get("config") or {}).get("materialized") not in COMPARED:
            continue
        out.append({"unique_id": uid, "pr": _rel(node), "base": _rel(old)})
    return out


def comparisons(pairs: list[dict], found: dict) -> list[dict]:
    """What ``dockyard__compare`` logged for ``pairs``, as the summary's rows."""
    out = []
    for pair in pairs:
        sides = (found or {}).get(pair["unique_id"]) or {}
        pr, old = sides.get("pr") or {}, sides.get("base") or {}
        pr_cols, old_cols = dict(pr.get("columns") or []), dict(old.get("columns") or [])
        out.append(
            {
                "unique_id": pair["unique_id"],
                "rows_pr": pr.get("rows"),
                "rows_base": old.get("rows"),
                "columns_added": [c for c in pr_cols if c not in old_cols],
                "columns_removed": [c for c in old_cols if c not in pr_cols],
                "columns_changed": [c for c in pr_cols if c in old_cols and pr_cols[c] != old_cols[c]],
            }
        )
    return out


def _rel(node: dict) -> list:
    return [node.get("database"), node.get("schema"), node.get("alias") or node.get("name")]
