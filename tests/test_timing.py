"""dockyard.timing: lanes, critical path, peak concurrency and idle gaps from hand-built intervals."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.timing import children_of, parents_from_manifest, timeline

T0 = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


@dataclass
class N:
    unique_id: str
    start: float | None
    end: float | None
    step_index: int = 1
    status: str = "success"
    thread: str | None = None
    name: str = ""
    resource_type: str = "model"

    @property
    def started_at(self):
        return None if self.start is None else T0 + timedelta(seconds=self.start)

    @property
    def finished_at(self):
        return None if self.end is None else T0 + timedelta(seconds=self.end)


@dataclass
class S:
    index: int
    start: float

    @property
    def started_at(self):
        return T0 + timedelta(seconds=self.start)

    finished_at = None


def ids(tl, nodes):
    return [nodes[k].unique_id for k in tl.critical]


def test_chain_and_a_side_branch():
    # a -> b -> d, a -> c (c is short: d waits for b)
    nodes = [N("a", 0, 2), N("b", 2, 6), N("c", 2, 3), N("d", 6, 7)]
    parents = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    tl = timeline(nodes, parents)
    assert ids(tl, nodes) == ["a", "b", "d"]
    assert [(x.parent, x.child, x.kind) for x in tl.links] == [(0, 1, "dependency"), (1, 3, "dependency")]
    assert tl.peak == 2 and tl.peak_at == 2.0
    assert tl.lanes == 2 and tl.lanes_from == "packing"
    assert tl.span == 7.0
    assert tl.critical_s == 7.0
    assert {b.unique_id for b in tl.bars if b.critical} == {"a", "b", "d"}


def test_ties_are_deterministic_and_touching_intervals_do_not_overlap():
    # two parents finish at the same instant: the one that started first (the longer) wins
    nodes = [N("p1", 1, 4), N("p2", 0, 4), N("x", 4, 5)]
    tl = timeline(nodes, {"x": ["p1", "p2"]})
    assert ids(tl, nodes) == ["p2", "x"]
    assert tl.peak == 2  # p1 and p2; x starts as they end
    assert ids(timeline(nodes, {"x": ["p2", "p1"]}), nodes) == ["p2", "x"]
    # same start and end: the first given
    nodes = [N("a", 0, 3), N("b", 0, 3)]
    assert ids(timeline(nodes, {}), nodes) == ["a"]
    assert ids(timeline(nodes[::-1], {}), nodes[::-1]) == ["b"]


def test_nodes_without_times_and_skipped_nodes():
    nodes = [
        N("a", 0, 1),
        N("b", None, None, status="skipped"),
        N("c", 1, 2),
        N("d", 3, None),
        N("e", 5, 4),  # ends before it starts: not drawn
    ]
    tl = timeline(nodes, {"c": ["a", "b"], "b": ["a"]})
    assert sorted(tl.untimed) == [1, 3, 4]
    assert {b.unique_id for b in tl.bars} == {"a", "c"}
    assert ids(tl, nodes) == ["a", "c"]
    assert tl.as_json()["untimed"] == 3
    empty = timeline([N("x", None, None)], {})
    assert empty.bars == [] and empty.critical == [] and empty.peak == 0 and empty.untimed == [0]
    assert timeline([], {}).t0 is None


def test_critical_path_crosses_steps_and_gaps_show_startup():
    steps = [S(1, 0), S(2, 10)]
    nodes = [
        N("seed.a", 2, 3, step_index=1),
        N("seed.b", 2, 5, step_index=1),
        N("model.m", 14, 16, step_index=2),  # its parent is in another step
        N("model.n", 16, 20, step_index=2),
    ]
    parents = {"model.m": ["seed.a"], "model.n": ["model.m"]}
    tl = timeline(nodes, parents, steps=steps)
    assert ids(tl, nodes) == ["seed.b", "model.m", "model.n"]
    assert [x.kind for x in tl.links] == ["step", "dependency"]
    gaps = [(g.start, g.end, g.after_step, g.before_step) for g in tl.gaps]
    assert gaps == [(0.0, 2.0, None, 1), (5.0, 14.0, 1, 2)]
    assert timeline(nodes, parents, steps=steps, min_gap_s=3).gaps[0].duration == 9.0


def test_thread_lanes_when_known_else_packing():
    nodes = [
        N("a", 0, 5, thread="Thread-2 (worker)"),
        N("b", 0, 2, thread="Thread-1 (worker)"),
        N("c", 2, 4, thread="Thread-1 (worker)"),
        N("d", 5, 6, thread="Thread-10 (worker)"),
    ]
    tl = timeline(nodes, {})
    assert tl.lanes_from == "threads" and tl.lanes == 3
    lane = {b.unique_id: b.lane for b in tl.bars}
    assert lane == {"b": 0, "c": 0, "a": 1, "d": 2}
    # a thread whose intervals overlap (not dbt's): packing instead
    nodes[2].start = 1
    tl = timeline(nodes, {})
    assert tl.lanes_from == "packing"
    by = {b.unique_id: b for b in tl.bars}
    assert by["a"].lane != by["b"].lane and by["c"].lane not in (by["a"].lane, by["b"].lane)
    assert tl.lanes == 3
    # packing reuses the lowest free lane and never overlaps two bars in one lane
    rng = random.Random(7)
    many = []
    for i in range(300):
        s = rng.uniform(0, 100)
        many.append(N(f"n{i}", s, s + rng.uniform(0, 10)))
    tl = timeline(many, {})
    lanes: dict[int, list] = {}
    for b in tl.bars:
        lanes.setdefault(b.lane, []).append(b)
    for row in lanes.values():
        row.sort(key=lambda b: b.start)
        assert all(x.end <= y.start for x, y in zip(row, row[1:], strict=False))
    assert tl.lanes == tl.peak  # interval graphs: the fewest lanes is the peak overlap


def test_manifest_parents_and_children():
    manifest = {
        "nodes": {
            "model.p.b": {"depends_on": {"nodes": ["model.p.a", "source.p.s.t"]}},
            "test.p.t1": {"depends_on": {"nodes": ["model.p.b"]}},
            "model.p.a": {"depends_on": {}},
        },
        "sources": {"source.p.s.t": {}},
    }
    parents = parents_from_manifest(manifest)
    assert parents["model.p.b"] == ["model.p.a", "source.p.s.t"]
    assert parents["model.p.a"] == [] and parents["source.p.s.t"] == []
    assert sorted(children_of(parents)["model.p.b"]) == ["test.p.t1"]


def test_json_shape():
    nodes = [N("model.p.a", 0, 1, name="a"), N("model.p.b", 1, 3.25)]
    data = timeline(nodes, {"model.p.b": ["model.p.a"]}).as_json()
    assert data["t0"] == "2024-05-01T02:00:00Z"
    assert [b["name"] for b in data["bars"]] == ["a", "b"]
    assert data["bars"][1]["e"] == 3.25 and data["critical"] == [0, 1] and data["links"][0]["kind"] == "dependency"


def test_two_thousand_nodes_are_fast():
    rng = random.Random(1)
    nodes, parents = [], {}
    for i in range(2000):
        s = rng.uniform(0, 600)
        nodes.append(N(f"model.p.m{i}", s, s + rng.uniform(0.1, 30), thread=f"Thread-{i % 8}"))
        if i:
            parents[f"model.p.m{i}"] = [f"model.p.m{rng.randrange(i)}" for _ in range(3)]
    timeline(nodes, parents)  # warm
    best = min(_timed(lambda: timeline(nodes, parents)) for _ in range(3))
    assert best < 0.1, best
    tl = timeline(nodes, parents)
    assert len(tl.bars) == 2000 and tl.critical
    # every dependency hop is a real parent that finished before its child started
    by = {b.key: b for b in tl.bars}
    for link in tl.links:
        p, c = by[link.parent], by[link.child]
        assert p.unique_id in parents[c.unique_id] and p.end <= c.start + 0.05


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
