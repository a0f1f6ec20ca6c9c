"""The lineage of a dbt project: its graph from ``manifest.json``, a subset of dbt's node
selection syntax evaluated on it, and a layered layout to draw it (docs/ui.md#lineage).

Pure (no dockyard state). :func:`graph_of` keeps models, seeds, snapshots, sources,
exposures, metrics, semantic models and saved queries (tests when asked), with the edges of
their ``depends_on.nodes``. :func:`select` follows dbt's ``--select``/``--exclude`` as
dbt-core's ``graph/selector_methods.py`` evaluates them: a space is a union, a comma an
intersection, ``+``/``N+`` before a term its ancestors (to depth N), ``+``/``+N`` after it
its descendants, ``@`` the descendants and all their ancestors; a term without a method is a
``path:`` when it holds a ``/``, a ``file:`` when it ends ``.sql``/``.py``/``.csv``, else an
``fqn:``. :func:`layout` layers the nodes by their longest path from a root and orders each
layer by a few barycenter sweeps (fewer crossings); :func:`cached` keeps the graph and its
layouts per manifest sha256 (bounded), so a 2,000-node project is laid out once.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Any

from dockyard.errors import DockyardError

KINDS = ("model", "seed", "snapshot")  # of manifest["nodes"], with "test" when tests are kept
TOP_LEVEL = ("sources", "exposures", "metrics", "semantic_models", "saved_queries")
METHODS = (
    "fqn",
    "tag",
    "path",
    "file",
    "source",
    "resource_type",
    "package",
    "config",
    "exposure",
    "metric",
    "semantic_model",
    "saved_query",
    "test_name",
)
NEEDS_STATE = ("state", "result", "source_status")  # dbt methods that need a run's state
# dbt-core's RAW_SELECTOR_PATTERN (graph/selector_spec.py)
ATOM = re.compile(
    r"^(?P<at>@)?(?P<parents>(?P<parents_depth>\d*)\+)?((?P<method>[\w.]+):)?"
    r"(?P<value>.*?)(?P<children>\+(?P<children_depth>\d*))?$"
)
X_GAP, Y_GAP = 260, 36  # layout units between layers and between nodes of a layer
SWEEPS = 4
CACHE_SIZE = 8  # manifests kept
LAYOUTS_PER_GRAPH = 32  # selections laid out per manifest


class SelectorError(DockyardError):
    """A selector dbt would refuse, or one this subset does not evaluate."""


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]]  # unique id -> what the selector methods read
    parents: dict[str, tuple[str, ...]]
    children: dict[str, list[str]]
    project: str | None = None
    sha256: str = ""
    layouts: OrderedDict = field(default_factory=OrderedDict, repr=False)


def _record(uid: str, raw: dict, kind: str) -> dict[str, Any]:
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    fqn = raw.get("fqn") if isinstance(raw.get("fqn"), list) else [raw.get("name") or uid]
    return {
        "unique_id": uid,
        "name": str(raw.get("name") or uid.rsplit(".", 1)[-1]),
        "resource_type": kind,
        "package": str(raw.get("package_name") or ""),
        "path": str(raw.get("original_file_path") or ""),
        "patch_path": str(raw.get("patch_path") or "").split("://", 1)[-1],
        "tags": [str(t) for t in raw.get("tags") or []],
        "fqn": [str(p) for p in fqn],
        "versioned": raw.get("version") is not None,
        "config": config,
        "source_name": str(raw.get("source_name") or ""),
        "test_name": str((raw.get("test_metadata") or {}).get("name") or ""),
    }


def graph_of(manifest: dict, *, tests: bool = False) -> Graph:
    """The nodes and edges of a parsed ``manifest.json`` (a dict)."""
    kinds = (*KINDS, "test") if tests else KINDS
    nodes: dict[str, dict[str, Any]] = {}
    depends: dict[str, list[str]] = {}
    for uid, raw in (manifest.get("nodes") or {}).items():
        if isinstance(raw, dict) and raw.get("resource_type") in kinds:
            nodes[uid] = _record(uid, raw, raw["resource_type"])
            depends[uid] = list((raw.get("depends_on") or {}).get("nodes") or [])
    for section in TOP_LEVEL:
        for uid, raw in (manifest.get(section) or {}).items():
            if isinstance(raw, dict):
                nodes[uid] = _record(uid, raw, str(raw.get("resource_type") or section.rstrip("s")))
                depends[uid] = list((raw.get("depends_on") or {}).get("nodes") or [])
    parents = {uid: tuple(dict.fromkeys(p for p in depends[uid] if p in nodes and p != uid)) for uid in nodes}
    children: dict[str, list[str]] = {uid: [] for uid in nodes}
    for uid, ps in parents.items():
        for p in ps:
            children[p].append(uid)
    project = (manifest.get("metadata") or {}).get("project_name")
    return Graph(nodes, parents, children, project)


# -- selection -------------------------------------------------------------------------------
def _fqn_match(fqn: list[str], selector: str, versioned: bool) -> bool:
    """dbt-core's ``is_selected_node``."""
    parts = selector.split(".")
    if versioned and len(fqn) > 1:
        if fqn[-2] == selector or "_".join(fqn[-2:]) == "_".join(parts[-2:]):
            return True
    elif fqn and fqn[-1] == selector:
        return True
    flat = [item for segment in fqn for item in segment.split(".")]
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if any(w in part for w in "*?[]"):
            if fnmatchcase(".".join(flat[i:]), ".".join(parts[i:])):
                return True
            if "." not in selector and fqn:
                return fnmatchcase(fqn[-2] if versioned and len(fqn) > 1 else fqn[-1], selector)
            return False
        if flat[i] != part:
            return False
    return True


def _glob(path: str, pattern: str) -> bool:
    """``path`` is one of the paths ``Path.glob(pattern)`` would yield (relative to the project)."""
    got, want = PurePosixPath(path).parts, PurePosixPath(pattern).parts
    if "**" in want:
        i = want.index("**")
        head, tail = want[:i], want[i + 1 :]
        return (
            len(got) >= len(head) + len(tail)
            and all(fnmatchcase(g, w) for g, w in zip(got, head, strict=False))
            and all(fnmatchcase(g, w) for g, w in zip(got[len(got) - len(tail) :], tail, strict=False))
        )
    return len(got) == len(want) and all(fnmatchcase(g, w) for g, w in zip(got, want, strict=True))


def _path_match(node: dict, pattern: str) -> bool:
    pattern = pattern.rstrip("/") or "."
    if pattern in (".", "./"):
        return bool(node["path"])
    pattern = pattern.removeprefix("./")
    path = PurePosixPath(node["path"])
    candidates = [str(path), *(str(p) for p in path.parents if str(p) != ".")]
    if node["patch_path"]:
        candidates.append(node["patch_path"])
    return any(_glob(c, pattern) for c in candidates)


def _config_match(node: dict, keys: list[str], selector: str) -> bool:
    value: Any = node["config"]
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    if keys == ["severity"] and isinstance(value, str):
        return value.upper() == selector.upper()
    truth = {"true": True, "false": False}.get(selector.lower())
    if isinstance(value, list):
        return selector in value or (truth is not None and truth in value)
    return selector == value or (truth is not None and value is truth)


def _method_match(graph: Graph, method: str, args: list[str], value: str) -> set[str]:
    nodes = graph.nodes.values()
    if method == "fqn":
        return {
            n["unique_id"]
            for n in nodes
            if n["resource_type"] != "source"
            and (_fqn_match(n["fqn"], value, n["versioned"]) or _fqn_match(n["fqn"][1:], value, n["versioned"]))
        }
    if method == "tag":
        return {n["unique_id"] for n in nodes if any(fnmatchcase(t, value) for t in n["tags"])}
    if method == "path":
        return {n["unique_id"] for n in nodes if _path_match(n, value)}
    if method == "file":
        return {
            n["unique_id"]
            for n in nodes
            if fnmatchcase(PurePosixPath(n["path"]).name, value) or fnmatchcase(PurePosixPath(n["path"]).stem, value)
        }
    if method == "package":
        pkg = graph.project if value == "this" and graph.project else value
        return {n["unique_id"] for n in nodes if fnmatchcase(n["package"], pkg)}
    if method == "resource_type":
        return {n["unique_id"] for n in nodes if n["resource_type"] == value}
    if method == "config":
        return {n["unique_id"] for n in nodes if _config_match(n, args, value)}
    if method == "test_name":
        return {n["unique_id"] for n in nodes if n["resource_type"] == "test" and fnmatchcase(n["test_name"], value)}
    if method == "source":
        parts = value.split(".")
        if not 1 <= len(parts) <= 3:
            raise SelectorError(
                f"invalid source selector value {value!r}",
                hint="sources are source:<source>, source:<source>.<table> or source:<package>.<source>.<table>",
            )
        package, source, table = ["*", parts[0], "*"] if len(parts) == 1 else ["*", *parts][-3:]
        return {
            n["unique_id"]
            for n in nodes
            if n["resource_type"] == "source"
            and fnmatchcase(n["package"], package)
            and fnmatchcase(n["source_name"], source)
            and fnmatchcase(n["name"], table)
        }
    # exposure, metric, semantic_model, saved_query: <name> or <package>.<name>
    parts = value.split(".")
    if len(parts) > 2:
        raise SelectorError(
            f"invalid {method} selector value {value!r}", hint=f"use {method}:<name> or <package>.<name>"
        )
    package, name = (["*", *parts])[-2:]
    return {
        n["unique_id"]
        for n in nodes
        if n["resource_type"] == method and fnmatchcase(n["package"], package) and fnmatchcase(n["name"], name)
    }


def _walk(start: Iterable[str], edges: dict, depth: int | None) -> set[str]:
    """What ``edges`` reach from ``start`` in at most ``depth`` steps (``start`` excluded)."""
    seen: set[str] = set()
    frontier = deque((uid, 0) for uid in start)
    while frontier:
        uid, d = frontier.popleft()
        if depth is not None and d >= depth:
            continue
        for nxt in edges.get(uid, ()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append((nxt, d + 1))
    return seen


def _atom(graph: Graph, text: str) -> set[str]:
    found = ATOM.match(text)
    if not found or not found["value"]:
        raise SelectorError(f"invalid selector {text!r}", hint="e.g. +model_name+, tag:nightly, path:models/staging")
    if found["at"] and found["parents"]:
        raise SelectorError(f"invalid selector {text!r}: '@' and a leading '+' cannot be combined")
    value = found["value"]
    if found["method"] is None:
        method = "path" if "/" in value else "file" if value.lower().endswith((".sql", ".py", ".csv")) else "fqn"
        args: list[str] = []
    else:
        method, *args = found["method"].split(".")
    if method in NEEDS_STATE:
        raise SelectorError(
            f"the selector method '{method}:' needs a run's state and cannot be shown here",
            hint="use fqn, tag, path, file, source, resource_type, package, config or a graph operator",
        )
    if method not in METHODS or (method == "config") != bool(args):
        raise SelectorError(f"unknown selector method '{found['method']}:'", hint="methods: " + ", ".join(METHODS))
    matched = _method_match(graph, method, args, value)
    out = set(matched)
    if found["at"]:
        down = matched | _walk(matched, graph.children, None)
        return down | _walk(down, graph.parents, None)
    if found["parents"]:
        out |= _walk(matched, graph.parents, int(found["parents_depth"]) if found["parents_depth"] else None)
    if found["children"]:
        out |= _walk(matched, graph.children, int(found["children_depth"]) if found["children_depth"] else None)
    return out


def _spec(graph: Graph, text: str) -> set[str]:
    """A space-separated union of comma-separated intersections."""
    out: set[str] = set()
    for term in text.split():
        parts = [p for p in term.split(",") if p]
        if not parts:
            continue
        chosen = _atom(graph, parts[0])
        for part in parts[1:]:
            chosen &= _atom(graph, part)
        out |= chosen
    return out


def select(graph: Graph, select: str | None = None, exclude: str | None = None) -> set[str]:
    """The unique ids of ``--select select --exclude exclude`` (everything without a select).
    Tests in the graph follow their parents (dbt's eager indirect selection)."""
    chosen = _spec(graph, select) if select and select.strip() else set(graph.nodes)
    excluded = _spec(graph, exclude) if exclude and exclude.strip() else set()
    chosen -= excluded
    for uid, node in graph.nodes.items():
        if node["resource_type"] == "test" and uid not in excluded and any(p in chosen for p in graph.parents[uid]):
            chosen.add(uid)
    return chosen


# -- layout ----------------------------------------------------------------------------------
def layout(graph: Graph, ids: Iterable[str] | None = None) -> dict[str, tuple[float, float, int]]:
    """``unique id -> (x, y, layer)`` of the nodes ``ids`` (all by default)."""
    keep = set(graph.nodes) if ids is None else set(ids) & set(graph.nodes)
    parents = {u: [p for p in graph.parents[u] if p in keep] for u in keep}
    children: dict[str, list[str]] = {u: [] for u in keep}
    for u, ps in parents.items():
        for p in ps:
            children[p].append(u)
    # longest path from a root (Kahn's order; a cycle's leftovers go after their known parents)
    waiting = {u: len(ps) for u, ps in parents.items()}
    queue = deque(sorted(u for u, n in waiting.items() if n == 0))
    layer: dict[str, int] = {}
    while queue or len(layer) < len(keep):
        if not queue:
            queue.append(min(u for u in keep if u not in layer))
        u = queue.popleft()
        if u in layer:
            continue
        layer[u] = max((layer[p] + 1 for p in parents[u] if p in layer), default=0)
        for c in children[u]:
            waiting[c] -= 1
            if waiting[c] == 0:
                queue.append(c)
    depth = max(layer.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for u in sorted(keep, key=lambda u: (graph.nodes[u]["resource_type"], graph.nodes[u]["name"], u)):
        layers[layer[u]].append(u)
    pos = {u: i / max(1, len(lay)) for lay in layers for i, u in enumerate(lay)}

    def sweep(order: range, neighbours: dict[str, list[str]]) -> None:
        for k in order:
            lay = layers[k]
            key = {
                u: (sum(pos[n] for n in neighbours[u]) / len(neighbours[u]) if neighbours[u] else pos[u]) for u in lay
            }
            lay.sort(key=lambda u: key[u])
            for i, u in enumerate(lay):
                pos[u] = i / max(1, len(lay))

    for _ in range(SWEEPS):
        sweep(range(1, depth), parents)
        sweep(range(depth - 2, -1, -1), children)
    out: dict[str, tuple[float, float, int]] = {}
    for k, lay in enumerate(layers):
        mid = (len(lay) - 1) / 2
        for i, u in enumerate(lay):
            out[u] = (float(k * X_GAP), float((i - mid) * Y_GAP), k)
    return out


def drawing(graph: Graph, select_: str | None = None, exclude: str | None = None) -> dict[str, Any]:
    """The selected nodes with their coordinates and the edges between them (index pairs),
    laid out once per selection of this graph."""
    key = (select_ or "", exclude or "")
    if key in graph.layouts:
        graph.layouts.move_to_end(key)
        return graph.layouts[key]
    ids = select(graph, select_, exclude)
    coords = layout(graph, ids)
    order = sorted(coords, key=lambda u: (coords[u][2], coords[u][1]))
    index = {u: i for i, u in enumerate(order)}
    nodes = [
        {
            "id": u,
            "name": graph.nodes[u]["name"],
            "label": _label(u, graph.nodes[u]),
            "type": graph.nodes[u]["resource_type"],
            "x": coords[u][0],
            "y": coords[u][1],
            "layer": coords[u][2],
        }
        for u in order
    ]
    edges = [[index[p], index[u]] for u in order for p in graph.parents[u] if p in index]
    result = {"nodes": nodes, "edges": edges, "total": len(graph.nodes)}
    with _LOCK:
        graph.layouts[key] = result
        while len(graph.layouts) > LAYOUTS_PER_GRAPH:
            graph.layouts.popitem(last=False)
    return result


_CACHE: OrderedDict[tuple[str, bool], Graph] = OrderedDict()
_LOCK = threading.Lock()


def cached(data: bytes, *, tests: bool = False) -> Graph:
    """The graph of the manifest ``data`` (bytes of manifest.json), kept per sha256."""
    sha = hashlib.sha256(data).hexdigest()
    key = (sha, tests)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise DockyardError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise DockyardError("manifest.json is not a JSON object")
    graph = graph_of(manifest, tests=tests)
    graph.sha256 = sha
    with _LOCK:
        _CACHE[key] = graph
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return graph


def _label(uid: str, node: dict) -> str:
    """What the graph shows: a source as ``source_name.table`` (a seed and the source that
    reads it often share a name), anything else by its name."""
    if node["resource_type"] == "source" and uid.count(".") >= 3:
        return ".".join(uid.split(".")[2:])
    return node["name"]
