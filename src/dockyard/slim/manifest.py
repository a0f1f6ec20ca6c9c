"""Two dbt manifests compared the way ``state:modified+`` compares them, with the reason each
node is selected (docs/ci.md, "How slim CI works").

:func:`explain` diffs the base manifest (the last good run of the base environment) and the
pull request's, node by node: ``new``, ``body changed``, ``config changed``, ``macro <name>
changed``, ``contract changed``, ``relation changed``, ``description changed``; every node
that depends on one of them is ``downstream of <the nearest changed ancestor>``. Nodes in the
base that are gone are ``deleted`` (reported, never built); exposures that depend on a
selected node are listed.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

#: Node types a ``dbt build`` runs (analyses and hooks are never selected for a build).
BUILT = frozenset({"model", "seed", "snapshot", "test", "unit_test"})
#: Config keys compared as the relation (``relation changed``), not as config, as dbt does.
RELATION_KEYS = ("database", "schema", "alias")
#: Config keys dbt leaves out of ``state:modified.configs`` (CompareBehavior.Exclude).
IGNORED_CONFIG = frozenset({*RELATION_KEYS, "tags", "group"})
#: Macros dockyard itself puts into a CI copy of the project (see :mod:`dockyard.slim.schema`).
OWN_MACROS = ("generate_schema_name", "generate_database_name", "dockyard__")


def load(path: Path | str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@dataclass
class Selection:
    """What a pull request selects against its base, and why."""

    selected: list[dict] = field(default_factory=list)  # {unique_id, resource_type, reason}
    deleted: list[dict] = field(default_factory=list)  # {unique_id, resource_type}
    exposures: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return {s["unique_id"] for s in self.selected}

    def built(self) -> list[dict]:
        """The selected nodes a build runs (sources are selected but not built)."""
        return [s for s in self.selected if s["resource_type"] in BUILT]


def _nodes(manifest: dict) -> dict[str, dict]:
    out = {k: v for k, v in (manifest.get("nodes") or {}).items() if v.get("resource_type") in BUILT}
    out.update(manifest.get("sources") or {})
    return out


def _macro_changes(base: dict, new: dict) -> set[str]:
    """The macros (unique ids) whose SQL differs, added or removed."""
    old_m, new_m = base.get("macros") or {}, new.get("macros") or {}
    changed = set()
    for uid in set(old_m) | set(new_m):
        if uid.split(".")[-1].startswith(OWN_MACROS):
            continue
        a, b = old_m.get(uid), new_m.get(uid)
        if a is None or b is None or a.get("macro_sql") != b.get("macro_sql"):
            changed.add(uid)
    return changed


def _macro_closure(new: dict, start: list[str], changed: set[str]) -> str | None:
    """The first changed macro that ``start`` (a node's depends_on.macros) reaches."""
    macros = new.get("macros") or {}
    seen: set[str] = set()
    queue = deque(sorted(start))
    while queue:
        uid = queue.popleft()
        if uid in seen:
            continue
        seen.add(uid)
        if uid in changed:
            return uid
        queue.extend(sorted((macros.get(uid) or {}).get("depends_on", {}).get("macros") or []))
    return None


def _body(node: dict):
    """dbt's same_body: the raw code (a seed: its file's checksum)."""
    if node.get("resource_type") == "seed":
        return (node.get("checksum") or {}).get("checksum")
    return node.get("raw_code")


def _config(node: dict) -> dict:
    return {k: v for k, v in (node.get("unrendered_config") or {}).items() if k not in IGNORED_CONFIG}


def _relation(node: dict) -> tuple:
    if node.get("resource_type") == "source":
        # unrendered (dbt >= 1.9 keeps both): a source whose schema is "{{ target.schema }}"
        # is the same source under the CI target (see align_sources)
        return (
            node.get("unrendered_database", node.get("database")),
            node.get("unrendered_schema", node.get("schema")),
            node.get("identifier"),
        )
    config = node.get("unrendered_config") or {}
    return tuple(config.get(k) for k in RELATION_KEYS)


def _descriptions(node: dict) -> tuple | None:
    persist = (node.get("config") or {}).get("persist_docs") or {}
    if not persist:
        return None
    columns = node.get("columns") or {}
    return (
        node.get("description") if persist.get("relation") else None,
        {k: (c or {}).get("description") for k, c in sorted(columns.items())} if persist.get("columns") else None,
    )


def _source_config(node: dict) -> tuple:
    return (
        node.get("quoting"),
        node.get("freshness"),
        node.get("loaded_at_field"),
        node.get("external"),
        {k: v for k, v in (node.get("config") or {}).items() if k not in ("freshness", "loaded_at_field")},
    )


def reason(old: dict | None, node: dict, macros_changed: set[str], new: dict) -> str | None:
    """Why ``node`` is modified against ``old`` (its base version), or None."""
    if old is None:
        return "new"
    if node.get("resource_type") == "source":
        if _relation(old) != _relation(node):
            return "relation changed"
        if _source_config(old) != _source_config(node) or old.get("fqn") != node.get("fqn"):
            return "config changed"
        return None
    if _body(old) != _body(node):
        return "body changed"
    if _config(old) != _config(node) or old.get("fqn") != node.get("fqn"):
        return "config changed"
    if _relation(old) != _relation(node):
        return "relation changed"
    old_contract, contract = old.get("contract") or {}, node.get("contract") or {}
    if (old_contract.get("enforced") or contract.get("enforced")) and (
        old_contract.get("enforced") != contract.get("enforced")
        or old_contract.get("checksum") != contract.get("checksum")
    ):
        return "contract changed"
    if _descriptions(old) != _descriptions(node):
        return "description changed"
    macro = _macro_closure(new, (node.get("depends_on") or {}).get("macros") or [], macros_changed)
    if macro:
        return f"macro {macro.split('.')[-1]} changed"
    return None


def explain(base: dict, new: dict) -> Selection:
    """``state:modified+`` of ``new`` against ``base``, each node with its reason."""
    old_nodes, new_nodes = _nodes(base), _nodes(new)
    macros_changed = _macro_changes(base, new)
    reasons: dict[str, str] = {}
    for uid in sorted(new_nodes):
        why = reason(old_nodes.get(uid), new_nodes[uid], macros_changed, new)
        if why:
            reasons[uid] = why
    children: dict[str, list[str]] = {}
    for uid in sorted(new_nodes):
        for parent in (new_nodes[uid].get("depends_on") or {}).get("nodes") or []:
            children.setdefault(parent, []).append(uid)
    # breadth first from every changed node at once: each other node is downstream of the
    # nearest changed ancestor (ties: the first in unique-id order)
    origin = {uid: uid for uid in reasons}
    queue = deque(sorted(reasons))
    while queue:
        uid = queue.popleft()
        for child in children.get(uid, ()):
            if child not in origin:
                origin[child] = origin[uid]
                queue.append(child)
    selected = [
        {
            "unique_id": uid,
            "resource_type": new_nodes[uid].get("resource_type", uid.split(".")[0]),
            "reason": reasons.get(uid) or f"downstream of {origin[uid]}",
        }
        for uid in sorted(origin)
    ]
    deleted = [
        {"unique_id": uid, "resource_type": node.get("resource_type")}
        for uid, node in sorted(old_nodes.items())
        if uid not in new_nodes and node.get("resource_type") in ("model", "seed", "snapshot", "source")
    ]
    ids = set(origin)
    exposures = sorted(
        uid
        for uid, exp in (new.get("exposures") or {}).items()
        if ids & set((exp.get("depends_on") or {}).get("nodes") or [])
    )
    return Selection(selected, deleted, exposures)


def align_sources(base: dict, new: dict) -> list[str]:
    """Render the base manifest's sources the way the pull request's target renders them,
    where they are the same source: same unrendered ``database`` and ``schema`` (dbt >= 1.9
    keeps these in every manifest) and the same identifier. dbt compares sources on their
    *rendered* database and schema, so under a CI target every source whose location follows
    the target (``schema: "{{ target.schema }}"``) would look modified and select the whole
    project. A source whose unrendered location did change keeps its old values (it is
    modified). Sources are never deferred to, so this changes nothing else. Returns the
    sources changed in ``base`` (in place)."""
    changed = []
    new_sources = new.get("sources") or {}
    for uid, old in sorted((base.get("sources") or {}).items()):
        now = new_sources.get(uid)
        if now is None or _relation(old) != _relation(now):
            continue
        if "unrendered_schema" not in old and "unrendered_database" not in old:
            continue  # a manifest of dbt < 1.9: nothing to tell by
        if (old.get("database"), old.get("schema")) != (now.get("database"), now.get("schema")):
            for key in ("database", "schema", "relation_name"):
                if key in now:
                    old[key] = now[key]
            changed.append(uid)
    return changed
