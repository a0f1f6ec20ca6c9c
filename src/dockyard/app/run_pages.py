"""The reads behind the web UI's runs list, run page and model page (docs/ui.md, "Runs and
models"): bounded queries through ``app.store.reader`` (:mod:`dockyard.store.run_pages`),
the run's model timing (:mod:`dockyard.timing`) with the dependencies of the step's
``manifest.json`` (parsed once per manifest, by its sha256), failed nodes with the compiled
SQL dbt wrote into ``run_results.json``, a CI run's selection from ``artifacts/ci.json``, and
the run's logs as one byte stream that a page polls from an offset."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard import files, timing
from dockyard.app.ci import pr_number
from dockyard.app.run_nodes import NodeTable, node_table
from dockyard.domain import FAILED_STATUSES, StepStatus
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store.run_pages import RunFilter

PER_PAGE = 25
FAILED_SHOWN = 100  # failed nodes shown with their error and SQL (the table has them all)
LOG_CHUNK = 256 * 1024  # the most log bytes one poll returns
LOG_START = 64 * 1024  # a first poll (offset -1) starts this far from the end
MAX_JSON_BYTES = 256 * 1024 * 1024  # a manifest or run_results.json larger than this is not parsed
_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (kind, sha256) -> parsed data
_CACHE_SIZE = 8


@dataclass
class RunsPage:
    runs: list
    total: int
    more: bool  # more than ``total`` match (the count stopped at its cap)
    page: int
    pages: int
    filters: dict[str, str]
    choices: dict[str, list[str]]


@dataclass
class RunPage:
    run: Any
    nodes: list  # executed nodes, in the store's order (step, start)
    table: NodeTable  # the page of them the node table shows
    failed: list[dict]  # {"node", "sql"}
    timeline: dict
    steps: list[dict]
    artifacts: list
    ci: dict | None
    pr: tuple[int, str] | None
    counts: dict[str, int] = field(default_factory=dict)
    failed_more: int = 0  # failed nodes past the first FAILED_SHOWN (in the table only)


def _cached(kind: str, sha: str, path: Path, parse):
    key = (kind, sha)
    if sha and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        value = parse(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None
    if sha:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def _compiled(run_results: dict) -> dict[str, str]:
    return {
        r["unique_id"]: r.get("compiled_code") or ""
        for r in run_results.get("results") or []
        if isinstance(r, dict) and r.get("unique_id")
    }


def _manifest_view(manifest: dict) -> dict[str, Any]:
    parents = timing.parents_from_manifest(manifest)
    sql = {uid: n.get("compiled_code") or "" for uid, n in (manifest.get("nodes") or {}).items() if isinstance(n, dict)}
    return {"parents": parents, "children": timing.children_of(parents), "sql": sql}


class RunPages:
    def __init__(self, app):  # the App (dockyard.app)
        self.app = app

    @property
    def reader(self):
        return self.app.store.reader.run_pages

    # -- the runs list ----------------------------------------------------------------------
    def list(self, params: dict[str, str], *, per_page: int = PER_PAGE) -> RunsPage:
        """The page of runs the query parameters ask for (status, job, trigger, branch, pr,
        environment, since, until, page); bad values raise :class:`DockyardError` (400)."""
        keep = {k: v.strip() for k, v in params.items() if k in FILTERS and v and v.strip()}
        f = RunFilter()
        if "status" in keep:
            f.statuses = [s.strip() for s in keep["status"].split(",") if s.strip()]
        if "job" in keep:
            ref = keep["job"]
            f.job_ids = [self.app.jobs.get(int(ref) if ref.isdigit() else ref).id]
        if "trigger" in keep:
            f.triggers = [keep["trigger"]]
        if "environment" in keep:
            f.environments = [keep["environment"]]
        f.branch = keep.get("branch")
        if "pr" in keep:
            f.pr = _int(keep["pr"], "pr")
        f.since = _when(keep.get("since"), "since")
        f.until = _when(keep.get("until"), "until")
        page = max(1, _int(keep.get("page", "1"), "page"))
        self.app.runs.reap_lost()
        runs, total, more = self.reader.list_page(f, limit=per_page, offset=(page - 1) * per_page)
        pages = max(1, math.ceil(total / per_page))
        return RunsPage(runs, total, more, page, pages, keep, self.reader.choices())

    # -- one run ------------------------------------------------------------------------------
    def run(self, run_id: int, params: dict[str, str] | None = None) -> RunPage:
        """The run page: ``params`` choose the node table's page, filter and sort
        (:func:`dockyard.app.run_nodes.node_table`)."""
        run = self._run(run_id)
        nodes = run.nodes
        by_step = {a.step_index: {} for a in run.artifacts}
        for a in run.artifacts:
            by_step[a.step_index][a.name] = a
        root = self.app.runs.artifact_root(run)
        views = {}
        for step, names in by_step.items():
            m = names.get("manifest.json")
            if m is not None:
                views[step] = _cached("manifest", m.sha256, _safe(root, m.path), _manifest_view)
        parents: dict[str, list[str]] = {}
        for view in views.values():
            if view:
                parents.update(view["parents"])
        tl = timing.timeline(nodes, parents, steps=run.steps)
        data = tl.as_json()
        by_key = {b["k"]: b for b in data["bars"]}
        data["critical_rows"] = [by_key[k] for k in data["critical"]]
        data["steps"] = [
            {"index": s.index, "command": s.command, "status": s.status.value} for s in sorted(run.steps, key=_idx)
        ]
        failed_nodes = [n for n in nodes if n.status in FAILED_STATUSES]
        failed = []
        for n in failed_nodes[:FAILED_SHOWN]:
            sql = ""
            rr = by_step.get(n.step_index or 0, {}).get("run_results.json")
            if rr is not None:
                sql = (_cached("results", rr.sha256, _safe(root, rr.path), _compiled) or {}).get(n.unique_id, "")
            if not sql and views.get(n.step_index or 0):
                sql = views[n.step_index]["sql"].get(n.unique_id, "")
            failed.append({"node": n, "sql": sql})
        table = node_table(run.id, nodes, params or {})
        pr = pr_number(run.overrides)
        ci = None
        if pr is not None:
            try:
                ci = json.loads(files.read_text(root, "ci.json"))
            except (DockyardError, OSError, ValueError):
                ci = None
        steps = [{"step": s, "duration_s": _seconds(s.started_at, s.finished_at)} for s in sorted(run.steps, key=_idx)]
        page = RunPage(run, nodes, table, failed, data, steps, list(run.artifacts), ci, pr, dict(table.statuses))
        page.failed_more = len(failed_nodes) - len(failed)
        return page

    def nodes(self, run_id: int, params: dict[str, str]) -> tuple[Any, NodeTable]:
        """The run (no steps) and its page's node table alone (``GET /runs/{id}/nodes``:
        runpage.js swaps it in without reloading the page)."""
        run = self.app.runs.summary(run_id, with_steps=False)
        return run, node_table(run_id, self._nodes(run_id), params)

    def _run(self, run_id: int):
        """The run with its steps, artifacts and executed nodes (the page's columns only)."""
        run = self.app.runs.summary(run_id)
        run.nodes = self._nodes(run_id)
        return run

    def _nodes(self, run_id: int) -> list:
        return self.reader.run_nodes(run_id)

    def live(self, run_id: int, log_offset: int = -1) -> dict[str, Any]:
        """A running run's state for the page's poll: status, steps, nodes done of total, and
        the log bytes after ``log_offset`` (-1: the last 64 KB), with the next offset."""
        run = self._run(run_id)
        nodes = run.nodes
        done = sum(1 for n in nodes if n.finished_at is not None)
        segments = self._log_segments(run)
        size = sum(len(s) if isinstance(s, bytes) else s[1] for s in segments)
        start = max(0, size - LOG_START) if log_offset < 0 else min(log_offset, size)
        chunk = _read_segments(segments, start, LOG_CHUNK)
        return {
            "id": run.id,
            "status": run.status.value,
            "final": run.status.is_final,
            "steps": [
                {
                    "index": s.index,
                    "command": s.command,
                    "status": s.status.value,
                    "duration_s": _seconds(s.started_at, s.finished_at),
                }
                for s in sorted(run.steps, key=_idx)
            ],
            "nodes_done": done,
            "nodes_total": len(nodes),
            "log": chunk.decode("utf-8", errors="replace"),
            "log_offset": start + len(chunk),
            "log_size": size,
        }

    def _log_segments(self, run) -> list:
        """The run's logs as :meth:`dockyard.app.runs.Runs.logs` joins them: a header per
        started step, then its file (``(name, size)``)."""
        root = self.app.runs.folder(run) / "logs"
        out: list = []
        for s in sorted(run.steps, key=_idx):
            if s.status == StepStatus.QUEUED and not run.status.is_final:
                break
            out.append(f"== step {s.index}: {s.command} ==\n".encode())
            name = f"step-{s.index}.log"
            try:
                out.append((name, files.resolve(root, name).stat().st_size, root))
            except (OSError, files.OutsideRoot):
                continue
        return out

    # -- one model ----------------------------------------------------------------------------
    def model(self, environment: str, unique_id: str, *, history: int = 50) -> dict[str, Any]:
        if environment not in self.app.config.environments:
            raise NotFoundError(
                f"Environment '{environment}' not found",
                hint="environments: " + ", ".join(self.app.config.environments),
            )
        rows = self.reader.node_history(environment, unique_id, limit=history)
        view, sql, manifest_run = None, "", None
        found = self.reader.latest_artifact(environment, "manifest.json")
        if found is not None:
            manifest_run, step = found
            run = self.app.runs.summary(manifest_run, with_steps=False)
            ref = next(a for a in run.artifacts if a.step_index == step and a.name == "manifest.json")
            view = _cached("manifest", ref.sha256, _safe(self.app.runs.artifact_root(run), ref.path), _manifest_view)
        upstream = sorted((view or {}).get("parents", {}).get(unique_id, []))
        downstream = sorted((view or {}).get("children", {}).get(unique_id, []))
        tests = [u for u in downstream if u.startswith("test.")]
        if rows:  # the compiled SQL of its newest execution, from that step's run_results.json
            newest = rows[0]
            run = self.app.runs.summary(newest["run_id"], with_steps=False)
            ref = next(
                (a for a in run.artifacts if a.step_index == newest["step_index"] and a.name == "run_results.json"),
                None,
            )
            if ref is not None:
                root = self.app.runs.artifact_root(run)
                sql = (_cached("results", ref.sha256, _safe(root, ref.path), _compiled) or {}).get(unique_id, "")
        if not sql and view:
            sql = view["sql"].get(unique_id, "")
        return {
            "environment": environment,
            "unique_id": unique_id,
            "name": rows[0]["name"] if rows else unique_id.rsplit(".", 1)[-1],
            "resource_type": rows[0]["resource_type"] if rows else unique_id.split(".", 1)[0],
            "history": rows,
            "trend": [
                {"run_id": r["run_id"], "s": r["execution_time_s"], "status": r["status"]}
                for r in reversed(rows)
                if r["execution_time_s"] is not None
            ],
            "tests": [self._test_row(t, r) for t, r in self._latest(environment, tests).items()],
            "sql": sql,
            "upstream": upstream,
            "downstream": [u for u in downstream if not u.startswith("test.")],
            "manifest_run": manifest_run,
        }

    def _latest(self, environment: str, ids: list[str]) -> dict[str, dict | None]:
        found = self.reader.latest_results(environment, ids)
        return {t: found.get(t) for t in ids}

    @staticmethod
    def _test_row(uid: str, row: dict | None) -> dict[str, Any]:
        return {"unique_id": uid, "name": uid.split(".")[2] if uid.count(".") >= 2 else uid, "result": row}


FILTERS = ("status", "job", "trigger", "branch", "pr", "environment", "since", "until", "page")


def _safe(root: Path, relpath: str) -> Path:
    try:
        return files.resolve(root, relpath)
    except files.OutsideRoot:
        return root / ".missing"


def _read_segments(segments: list, start: int, limit: int) -> bytes:
    out: list[bytes] = []
    pos = 0
    want = limit
    for seg in segments:
        length = len(seg) if isinstance(seg, bytes) else seg[1]
        if want <= 0:
            break
        if pos + length <= start:
            pos += length
            continue
        skip = max(0, start - pos)
        take = min(length - skip, want)
        if isinstance(seg, bytes):
            data = seg[skip : skip + take]
        else:
            name, _, root = seg
            data = files.read_from(root, name, skip, take)
        out.append(data)
        want -= len(data)
        pos += length
        if len(data) < take:
            break  # the file is shorter than it was a moment ago: stop here
    return b"".join(out)


def _idx(step) -> int:
    return step.index


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DockyardError(f"{name} must be a number, not {value[:40]!r}") from None


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DockyardError(f"{name} must be a date or time (2024-05-01 or 2024-05-01T02:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
