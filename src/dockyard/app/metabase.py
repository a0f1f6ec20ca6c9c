"""``dockyard sync metabase``: the dbt project's descriptions in Metabase (docs/bi.md).

Through Metabase's REST API with an API key (``x-api-key``): ``GET /api/database`` (the
database, by name when there are several), ``GET /api/table`` (its tables, matched to the
models, seeds and snapshots by schema and name, case-insensitively), ``GET
/api/table/:id/query_metadata`` (the fields), then ``PUT /api/table/:id`` and ``PUT
/api/field/:id`` with what differs: the description (of the model, of each column) and the
display name (``meta.metabase.display_name``). An empty dbt value never blanks Metabase's.
:meth:`MetabaseSync.plan` only reads; :meth:`MetabaseSync.apply` writes a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from dockyard.errors import DockyardError

NODES = ("model", "seed", "snapshot")


@dataclass(frozen=True)
class Change:
    kind: str  # table | field
    id: int
    label: str  # schema.table or schema.table.column
    key: str  # description | display_name
    old: str | None
    new: str


def _wanted(item: dict[str, Any]) -> dict[str, str]:
    meta = item.get("meta") or (item.get("config") or {}).get("meta") or {}
    metabase = meta.get("metabase") if isinstance(meta.get("metabase"), dict) else {}
    out = {}
    if item.get("description"):
        out["description"] = str(item["description"])
    if metabase.get("display_name"):
        out["display_name"] = str(metabase["display_name"])
    return out


class MetabaseSync:
    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0):
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"x-api-key": api_key}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise DockyardError(f"Metabase {method} {path}: {type(exc).__name__}", hint="check --url") from None
        if response.status_code in (401, 403):
            raise DockyardError(f"Metabase {method} {path}: HTTP {response.status_code}", hint="check the API key")
        if response.status_code >= 400:
            raise DockyardError(f"Metabase {method} {path}: HTTP {response.status_code}")
        return response.json() if response.content else None

    def database_id(self, name: str | None) -> int:
        found = self._call("GET", "/api/database")
        databases = found.get("data", []) if isinstance(found, dict) else found
        if name is not None:
            databases = [d for d in databases if d.get("name") == name]
        if len(databases) != 1:
            names = ", ".join(
                sorted(str(d.get("name")) for d in (found.get("data", []) if isinstance(found, dict) else found))
            )
            raise DockyardError(
                f"{'no' if not databases else 'several'} Metabase database{'' if name else 's'}"
                + (f" named {name!r}" if name else ""),
                hint=f"pass --database (databases: {names or 'none'})",
            )
        return int(databases[0]["id"])

    def plan(self, manifest: dict[str, Any], database: str | None = None) -> list[Change]:
        db_id = self.database_id(database)
        tables = {
            ((t.get("schema") or "").lower(), (t.get("name") or "").lower()): t
            for t in self._call("GET", "/api/table")
            if t.get("db_id") == db_id
        }
        changes: list[Change] = []
        for uid in sorted(manifest.get("nodes") or {}):
            node = manifest["nodes"][uid]
            if node.get("resource_type") not in NODES:
                continue
            ident = node.get("alias") or node.get("name") or ""
            table = tables.get(((node.get("schema") or "").lower(), ident.lower()))
            if table is None:
                continue
            label = f"{table.get('schema')}.{table.get('name')}"
            for key, value in _wanted(node).items():
                if (table.get(key) or "") != value:
                    changes.append(Change("table", int(table["id"]), label, key, table.get(key), value))
            columns = {(c.get("name") or k).lower(): c for k, c in (node.get("columns") or {}).items()}
            if not columns:
                continue
            metadata = self._call("GET", f"/api/table/{int(table['id'])}/query_metadata")
            for field in metadata.get("fields") or []:
                column = columns.get((field.get("name") or "").lower())
                if column is None:
                    continue
                for key, value in _wanted(column).items():
                    if (field.get(key) or "") != value:
                        changes.append(
                            Change("field", int(field["id"]), f"{label}.{field['name']}", key, field.get(key), value)
                        )
        return changes

    def apply(self, changes: list[Change]) -> int:
        """PUT each table's and field's changes (one request per table or field); returns how
        many requests were made."""
        grouped: dict[tuple[str, int], dict[str, str]] = {}
        for change in changes:
            grouped.setdefault((change.kind, change.id), {})[change.key] = change.new
        for (kind, ident), body in grouped.items():
            self._call("PUT", f"/api/{kind}/{ident}", body)
        return len(grouped)
