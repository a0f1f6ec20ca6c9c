"""LookML from the dbt project (``dockyard export lookml``, docs/bi.md).

One view per model: ``sql_table_name`` is the model's relation, a dimension per column (a
``dimension_group`` of type time for dates and timestamps) typed from ``catalog.json`` (the
manifest's ``data_type`` otherwise), the column's description, ``primary_key`` for a column
with both ``unique`` and ``not_null`` tests, a ``count`` measure; ``meta.looker`` overrides:
on a column, ``dimension: {...}`` (merged into its dimension, e.g. ``label``, ``hidden``) and
``measures: {name: {...}}``; on a model, ``measures``, ``label`` and ``explore: false``. One
explore per mart. Written with ``lkml.dump``; names and order are stable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lkml

NUMBER = re.compile(r"int|numeric|decimal|double|float|real|number|hugeint", re.I)
TIME = re.compile(r"timestamp|datetime|date|time", re.I)
BOOL = re.compile(r"bool", re.I)
TIMEFRAMES = ["raw", "time", "date", "week", "month", "quarter", "year"]
DATE_TIMEFRAMES = ["raw", "date", "week", "month", "quarter", "year"]


def _looker(meta: dict[str, Any] | None) -> dict[str, Any]:
    looker = (meta or {}).get("looker") or {}
    return looker if isinstance(looker, dict) else {}


def select(manifest: dict[str, Any], spec: str | None) -> list[str]:
    """Unique ids of the models to export: by default those under a ``marts`` folder; with
    ``spec`` (space or comma separated) the models named, ``tag:<tag>`` or
    ``path:<folder prefix>`` (relative to the project, e.g. ``path:models/marts``)."""
    models = {u: n for u, n in (manifest.get("nodes") or {}).items() if n.get("resource_type") == "model"}
    terms = [t for t in re.split(r"[\s,]+", spec or "") if t]
    chosen = []
    for uid, node in sorted(models.items()):
        path = node.get("original_file_path") or ""
        if not terms:
            keep = "marts" in Path(path).parts[:-1]
        else:
            keep = any(
                (t.startswith("tag:") and t[4:] in (node.get("tags") or []))
                or (t.startswith("path:") and path.startswith(t[5:].rstrip("/") + "/"))
                or t == node.get("name")
                for t in terms
            )
        if keep and (node.get("config") or {}).get("materialized") != "ephemeral":
            chosen.append(uid)
    return chosen


def _tested(manifest: dict[str, Any], uid: str) -> dict[str, set[str]]:
    """column -> the generic tests on it (``unique``, ``not_null``...)."""
    found: dict[str, set[str]] = {}
    for node in (manifest.get("nodes") or {}).values():
        meta = node.get("test_metadata") or {}
        if node.get("resource_type") == "test" and node.get("attached_node") == uid and node.get("column_name"):
            found.setdefault(node["column_name"], set()).add(meta.get("name", ""))
    return found


def _field(name: str, kind: str | None, description: str, primary: bool) -> tuple[str, dict[str, Any]]:
    kind = kind or ""
    field: dict[str, Any] = {"name": name}
    if TIME.search(kind) and not NUMBER.search(kind):
        field["type"] = "time"
        is_date = kind.lower() == "date"
        field["timeframes"] = DATE_TIMEFRAMES if is_date else TIMEFRAMES
        if is_date:
            field["convert_tz"] = "no"
            field["datatype"] = "date"
        group = "dimension_groups"
    else:
        field["type"] = "number" if NUMBER.search(kind) else "yesno" if BOOL.search(kind) else "string"
        group = "dimensions"
        if primary:
            field["primary_key"] = "yes"
    if description:
        field["description"] = description
    field["sql"] = "${TABLE}." + name
    return group, field


def view(manifest: dict[str, Any], catalog: dict[str, Any], uid: str) -> dict[str, Any]:
    node = manifest["nodes"][uid]
    types = {k.lower(): v for k, v in (((catalog.get("nodes") or {}).get(uid) or {}).get("columns") or {}).items()}
    tests = _tested(manifest, uid)
    out: dict[str, Any] = {"name": node["name"], "sql_table_name": node.get("relation_name") or node["name"]}
    looker = _looker(node.get("meta") or (node.get("config") or {}).get("meta"))
    if looker.get("label"):
        out["label"] = looker["label"]
    if node.get("description"):
        out["description"] = node["description"]
    groups: dict[str, list[dict[str, Any]]] = {"dimensions": [], "dimension_groups": []}
    measures: list[dict[str, Any]] = [{"name": "count", "type": "count"}]
    names = list((node.get("columns") or {}).keys())
    names += [types[k].get("name", k) for k in types if k not in {n.lower() for n in names}]
    for key in names:
        col = (node.get("columns") or {}).get(key) or {"name": key}
        name = col.get("name") or key
        kind = (types.get(name.lower()) or {}).get("type") or col.get("data_type")
        group, field = _field(
            name, kind, col.get("description") or "", {"unique", "not_null"} <= tests.get(name, set())
        )
        col_looker = _looker(col.get("meta"))
        field.update(col_looker.get("dimension") or {})
        groups[group].append(field)
        for measure_name, spec in sorted((col_looker.get("measures") or {}).items()):
            measures.append({"name": measure_name, "sql": "${TABLE}." + name, **(spec or {})})
    for measure_name, spec in sorted((looker.get("measures") or {}).items()):
        measures.append({"name": measure_name, **(spec or {})})
    for group, fields in groups.items():
        if fields:
            out[group] = fields
    out["measures"] = measures
    return out


def render(manifest: dict[str, Any], catalog: dict[str, Any] | None, uids: list[str]) -> dict[str, str]:
    """File name -> LookML text: ``views/<model>.view.lkml`` per model and ``explores.lkml``
    (an explore per model unless its ``meta.looker.explore`` is false)."""
    catalog = catalog or {}
    files = {}
    explores = []
    for uid in uids:
        node = manifest["nodes"][uid]
        files[f"views/{node['name']}.view.lkml"] = lkml.dump({"views": [view(manifest, catalog, uid)]}) + "\n"
        looker = _looker(node.get("meta") or (node.get("config") or {}).get("meta"))
        if looker.get("explore", True) is not False:
            explore: dict[str, Any] = {"name": node["name"]}
            if node.get("description"):
                explore["description"] = node["description"]
            explores.append(explore)
    files["explores.lkml"] = lkml.dump({"include": "views/*.view.lkml", "explores": explores}) + "\n"
    return files


def write(out_dir: Path, rendered: dict[str, str]) -> list[Path]:
    written = []
    for name, text in sorted(rendered.items()):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
