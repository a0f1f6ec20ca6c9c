"""Model timing of a run: Gantt lanes, the critical path, peak concurrency and idle gaps.

Pure (no dockyard state): built from a run's node intervals and the dependencies of its
manifest. The run page draws it (``ui/static/gantt.js``); :func:`timeline` is its one entry.

- **Lanes**: dbt's thread ids when every timed node has one and no two intervals of a thread
  overlap; otherwise greedy interval packing (the fewest lanes, each node in the lowest free one).
- **Critical path**: from the node that finished last, walk back to its parent (in the same
  step) that finished last before it started; a node with no such parent follows the end of
  the previous step (the node that finished last there): the chain of what the run waited for.
  Ties go to the node that started first (the longer one), then to the first given.
- **Peak concurrency**: the most nodes running at once, and when it was first reached (a node
  ending at the instant another starts does not overlap it).
- **Idle gaps**: stretches where no node ran (dbt starting and parsing between steps, or a
  slow ``on-run-start`` hook), from the first node or step start to the last end.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: a parent may appear to finish this many seconds after its child started (clock rounding)
SLACK_S = 0.05


class TimedNode(Protocol):
    unique_id: str
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    step_index: int | None


class StepSpan(Protocol):
    index: int
    started_at: datetime | None
    finished_at: datetime | None


@dataclass
class Bar:
    """One node of the Gantt chart; ``start``/``end`` are seconds after :attr:`Timeline.t0`."""

    key: int  # position in the nodes given
    unique_id: str
    step: int
    status: str
    start: float
    end: float
    lane: int = 0
    critical: bool = False
    name: str = ""
    resource_type: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Link:
    """A hop of the critical path: ``kind`` is ``dependency`` (the parent of ``child`` in
    the manifest) or ``step`` (``child`` is the first of its step and waited for the last
    node of the previous one)."""

    parent: int  # bar keys
    child: int
    kind: str


@dataclass
class Gap:
    start: float
    end: float
    after_step: int | None  # the step of the node that ended before the gap
    before_step: int | None  # the step of the node that started after it

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    t0: datetime | None
    span: float  # seconds from t0 to the last end
    bars: list[Bar] = field(default_factory=list)
    untimed: list[int] = field(default_factory=list)  # keys of nodes without both times
    lanes: int = 0
    lanes_from: str = "packing"  # "threads" or "packing"
    critical: list[int] = field(default_factory=list)  # bar keys, first to last
    links: list[Link] = field(default_factory=list)
    peak: int = 0
    peak_at: float | None = None
    gaps: list[Gap] = field(default_factory=list)

    @property
    def critical_s(self) -> float:
        """Time spent running the critical path's nodes."""
        by_key = {b.key: b for b in self.bars}
        return sum(by_key[k].duration for k in self.critical)

    def as_json(self) -> dict[str, Any]:
        return {
            "t0": self.t0.isoformat().replace("+00:00", "Z") if self.t0 else None,
            "span": round(self.span, 3),
            "lanes": self.lanes,
            "lanes_from": self.lanes_from,
            "bars": [
                {
                    "k": b.key,
                    "id": b.unique_id,
                    "name": b.name or b.unique_id.rsplit(".", 1)[-1],
                    "type": b.resource_type,
                    "step": b.step,
                    "status": b.status,
                    "s": round(b.start, 3),
                    "e": round(b.end, 3),
                    "lane": b.lane,
                    "crit": b.critical,
                }
                for b in self.bars
            ],
            "critical": self.critical,
            "links": [{"p": x.parent, "c": x.child, "kind": x.kind} for x in self.links],
            "critical_s": round(self.critical_s, 3),
            "peak": self.peak,
            "peak_at": None if self.peak_at is None else round(self.peak_at, 3),
            "gaps": [
                {"s": round(g.start, 3), "e": round(g.end, 3), "after": g.after_step, "before": g.before_step}
                for g in self.gaps
            ],
            "untimed": len(self.untimed),
        }


def parents_from_manifest(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each node's parents (``depends_on.nodes``) in a dbt ``manifest.json``."""
    out: dict[str, list[str]] = {}
    for section in ("nodes", "sources", "snapshots", "seeds", "exposures", "metrics", "semantic_models"):
        for uid, node in (manifest.get(section) or {}).items():
            if isinstance(node, Mapping):
                deps = (node.get("depends_on") or {}).get("nodes") or []
                out[uid] = [str(d) for d in deps if isinstance(d, str)]
    return out


def children_of(parents: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            out.setdefault(p, []).append(child)
    return out


def timeline(
    nodes: Sequence[TimedNode],
    parents: Mapping[str, Iterable[str]] | None = None,
    *,
    threads: Sequence[str | None] | None = None,
    steps: Sequence[StepSpan] = (),
    min_gap_s: float = 0.0,
) -> Timeline:
    """The timing of ``nodes`` (a run's node results, any order). ``parents``: unique id →
    its parents (:func:`parents_from_manifest`); ``threads``: dbt's thread id per node (the
    nodes' ``thread`` attribute when not given); ``steps``: the run's steps, whose starts
    count for the idle gap before the first node of each; gaps under ``min_gap_s`` are left out."""
    parents = parents or {}
    timed: list[tuple[int, TimedNode]] = []
    untimed: list[int] = []
    for key, n in enumerate(nodes):
        if n.started_at is not None and n.finished_at is not None and n.finished_at >= n.started_at:
            timed.append((key, n))
        else:
            untimed.append(key)
    starts = [n.started_at for _, n in timed] + [s.started_at for s in steps if s.started_at is not None]
    if not timed:
        return Timeline(t0=min(starts) if starts else None, span=0.0, untimed=untimed)
    t0 = min(starts)
    bars = [
        Bar(
            key=key,
            unique_id=n.unique_id,
            step=n.step_index or 0,
            status=n.status,
            start=(n.started_at - t0).total_seconds(),  # type: ignore[operator]
            end=(n.finished_at - t0).total_seconds(),  # type: ignore[operator]
            name=getattr(n, "name", "") or "",
            resource_type=getattr(n, "resource_type", "") or "",
        )
        for key, n in timed
    ]
    bars.sort(key=lambda b: (b.start, b.end, b.key))
    out = Timeline(t0=t0, span=max(b.end for b in bars), bars=bars, untimed=untimed)
    thread_of = [(threads[b.key] if threads is not None else getattr(nodes[b.key], "thread", None)) for b in bars]
    out.lanes, out.lanes_from = _lanes(bars, thread_of)
    out.peak, out.peak_at = _peak(bars)
    out.critical, out.links = _critical(bars, parents)
    crit = set(out.critical)
    for b in bars:
        b.critical = b.key in crit
    step_starts = sorted((s.started_at - t0).total_seconds() for s in steps if s.started_at is not None)
    out.gaps = _gaps(bars, step_starts, min_gap_s)
    return out


def _lanes(bars: list[Bar], thread_of: list[str | None]) -> tuple[int, str]:
    """Set each bar's lane (bars sorted by start); the number of lanes and where they came from."""
    if all(thread_of):
        names = sorted(set(thread_of), key=_thread_order)  # type: ignore[arg-type]
        index = {name: i for i, name in enumerate(names)}
        last_end: dict[str, float] = {}
        ok = True
        for b, t in zip(bars, thread_of, strict=True):
            if last_end.get(t, float("-inf")) > b.start + 1e-9:  # type: ignore[arg-type]
                ok = False
                break
            last_end[t] = b.end  # type: ignore[index]
        if ok:
            for b, t in zip(bars, thread_of, strict=True):
                b.lane = index[t]  # type: ignore[index]
            return len(names), "threads"
    busy: list[tuple[float, int]] = []  # (end, lane) of lanes in use
    free: list[int] = []
    count = 0
    for b in bars:
        while busy and busy[0][0] <= b.start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        b.lane = lane
        heapq.heappush(busy, (b.end, lane))
    return count, "packing"


def _thread_order(name: str) -> tuple:
    digits = "".join(c if c.isdigit() else " " for c in name).split()
    return (int(digits[0]) if digits else 0, name)


def _peak(bars: list[Bar]) -> tuple[int, float | None]:
    events = [(b.start, 1) for b in bars] + [(b.end, -1) for b in bars]
    events.sort(key=lambda e: (e[0], e[1]))  # at one instant, ends before starts
    running = best = 0
    at: float | None = None
    for t, delta in events:
        running += delta
        if running > best:
            best, at = running, t
    return best, at


def _critical(bars: list[Bar], parents: Mapping[str, Iterable[str]]) -> tuple[list[int], list[Link]]:
    by_step_uid: dict[tuple[int, str], Bar] = {(b.step, b.unique_id): b for b in bars}
    by_step: dict[int, list[Bar]] = {}
    for b in bars:
        by_step.setdefault(b.step, []).append(b)
    order = sorted(by_step)

    def last(candidates: Iterable[Bar]) -> Bar | None:
        best = None
        for c in candidates:
            if best is None or (c.end, -c.start, -c.key) > (best.end, -best.start, -best.key):
                best = c
        return best

    node = last(bars)
    chain: list[Bar] = []
    links: list[Link] = []
    seen: set[int] = set()
    while node is not None and node.key not in seen:
        seen.add(node.key)
        chain.append(node)
        ps = (by_step_uid.get((node.step, p)) for p in parents.get(node.unique_id, ()))
        parent = last(p for p in ps if p is not None and p.end <= node.start + SLACK_S and p.key not in seen)
        kind = "dependency"
        if parent is None:
            earlier = [s for s in order if s < node.step]
            kind = "step"
            parent = last(b for b in by_step[earlier[-1]] if b.end <= node.start + SLACK_S) if earlier else None
        if parent is not None:
            links.append(Link(parent=parent.key, child=node.key, kind=kind))
        node = parent
    chain.reverse()
    links.reverse()
    return [b.key for b in chain], links


def _gaps(bars: list[Bar], step_starts: list[float], min_gap_s: float) -> list[Gap]:
    gaps: list[Gap] = []
    start = min([*step_starts, bars[0].start])
    reach, reach_step = start, None
    for b in bars:  # sorted by start
        if b.start > reach + 1e-9 and b.start - reach >= max(min_gap_s, 1e-9):
            gaps.append(Gap(start=reach, end=b.start, after_step=reach_step, before_step=b.step))
        if b.end > reach:
            reach, reach_step = b.end, b.step
    return gaps
