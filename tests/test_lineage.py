"""dockyard.lineage: the graph of a manifest, dbt's selector subset, the layered layout.
A synthetic manifest (dicts shaped like dbt's manifest.json v12); the comparison with
``dbt ls`` on the real shop is in tests/ui/test_lineage_pages.py."""

from __future__ import annotations

import json
import random
import time

import pytest

from dockyard import lineage
from dockyard.lineage import SelectorError, drawing, graph_of, layout, select


def node(uid: str, parents=(), *, path=None, tags=(), materialized="view", package="shop", fqn=None, **extra):
    kind, pkg, name = uid.split(".")[0], uid.split(".")[1], uid.split(".")[-1]
    return {
        "unique_id": uid,
        "resource_type": kind,
        "name": name,
        "package_name": pkg or package,
        "original_file_path": path or f"models/{name}.sql",
        "tags": list(tags),
        "fqn": fqn or [pkg, name],
        "config": {"materialized": materialized, "enabled": True, "tags": list(tags)},
        "depends_on": {"nodes": list(parents), "macros": []},
        **extra,
    }


@pytest.fixture(scope="module")
def small():
    """raw seeds and a source -> staging -> marts -> an exposure; one test."""
    nodes = {
        "seed.shop.raw_orders": node("seed.shop.raw_orders", path="seeds/raw_orders.csv", materialized="seed"),
        "model.shop.stg_orders": node(
            "model.shop.stg_orders",
            ["seed.shop.raw_orders"],
            path="models/staging/stg_orders.sql",
            tags=["staging"],
            fqn=["shop", "staging", "stg_orders"],
        ),
        "model.shop.stg_customers": node(
            "model.shop.stg_customers",
            ["source.shop.crm.customers"],
            path="models/staging/stg_customers.sql",
            tags=["staging", "pii"],
            fqn=["shop", "staging", "stg_customers"],
            patch_path="shop://models/staging/_staging.yml",
        ),
        "model.shop.fct_orders": node(
            "model.shop.fct_orders",
            ["model.shop.stg_orders", "model.shop.stg_customers"],
            path="models/marts/fct_orders.sql",
            materialized="table",
            tags=["nightly"],
            fqn=["shop", "marts", "fct_orders"],
        ),
        "model.shop.ltv": node(
            "model.shop.ltv", ["model.shop.fct_orders"], path="models/marts/ltv.sql", fqn=["shop", "marts", "ltv"]
        ),
        "model.util.dates": node("model.util.dates", path="models/dates.sql", fqn=["util", "dates"]),
        "snapshot.shop.cust_snap": node(
            "snapshot.shop.cust_snap", ["model.shop.stg_customers"], path="snapshots/cust_snap.sql"
        ),
        "test.shop.not_null_fct_orders_id.abc": node(
            "test.shop.not_null_fct_orders_id.abc",
            ["model.shop.fct_orders"],
            path="models/marts/_marts.yml",
            test_metadata={"name": "not_null"},
        ),
    }
    manifest = {
        "metadata": {"project_name": "shop"},
        "nodes": nodes,
        "sources": {
            "source.shop.crm.customers": {
                "unique_id": "source.shop.crm.customers",
                "resource_type": "source",
                "name": "customers",
                "source_name": "crm",
                "package_name": "shop",
                "original_file_path": "models/staging/_sources.yml",
                "fqn": ["shop", "staging", "crm", "customers"],
                "tags": ["pii"],
                "config": {"enabled": True},
            }
        },
        "exposures": {
            "exposure.shop.board": {
                "resource_type": "exposure",
                "name": "board",
                "package_name": "shop",
                "original_file_path": "models/exposures.yml",
                "fqn": ["shop", "board"],
                "depends_on": {"nodes": ["model.shop.ltv"]},
            }
        },
    }
    return graph_of(manifest), graph_of(manifest, tests=True)


def names(ids):
    return sorted(i.split(".")[-1] if not i.startswith("test.") else i.split(".")[2] for i in ids)


def test_graph_nodes_and_edges_without_tests_by_default(small):
    graph, with_tests = small
    assert "test.shop.not_null_fct_orders_id.abc" not in graph.nodes
    assert "test.shop.not_null_fct_orders_id.abc" in with_tests.nodes
    assert graph.parents["model.shop.fct_orders"] == ("model.shop.stg_orders", "model.shop.stg_customers")
    assert graph.parents["exposure.shop.board"] == ("model.shop.ltv",)
    assert "model.shop.stg_customers" in graph.children["source.shop.crm.customers"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("fct_orders", ["fct_orders"]),
        ("+fct_orders", ["customers", "fct_orders", "raw_orders", "stg_customers", "stg_orders"]),
        ("fct_orders+", ["board", "fct_orders", "ltv"]),
        ("1+fct_orders", ["fct_orders", "stg_customers", "stg_orders"]),
        ("fct_orders+1", ["fct_orders", "ltv"]),
        (
            "@stg_customers",
            ["board", "cust_snap", "customers", "fct_orders", "ltv", "raw_orders", "stg_customers", "stg_orders"],
        ),
        ("tag:staging", ["stg_customers", "stg_orders"]),
        ("tag:pii", ["customers", "stg_customers"]),
        ("tag:st*", ["stg_customers", "stg_orders"]),
        ("path:models/marts", ["fct_orders", "ltv"]),
        ("path:models/staging/stg_orders.sql", ["stg_orders"]),
        ("models/staging", ["customers", "stg_customers", "stg_orders"]),
        ("path:models/staging/_staging.yml", ["stg_customers"]),
        ("source:crm", ["customers"]),
        ("source:crm.customers", ["customers"]),
        ("source:shop.crm.*", ["customers"]),
        ("source:crm+", ["cust_snap", "customers", "fct_orders", "ltv", "stg_customers", "board"]),
        ("resource_type:seed", ["raw_orders"]),
        ("resource_type:exposure", ["board"]),
        ("package:util", ["dates"]),
        (
            "package:this",
            [
                n
                for n in [
                    "board",
                    "cust_snap",
                    "customers",
                    "fct_orders",
                    "ltv",
                    "raw_orders",
                    "stg_customers",
                    "stg_orders",
                ]
            ],
        ),
        ("config.materialized:table", ["fct_orders"]),
        ("fqn:shop.staging.*", ["stg_customers", "stg_orders"]),
        ("shop.marts", ["fct_orders", "ltv"]),
        ("stg_*", ["stg_customers", "stg_orders"]),
        ("fct_orders.sql", ["fct_orders"]),
        ("stg_orders ltv", ["ltv", "stg_orders"]),
        ("tag:staging,+fct_orders", ["stg_customers", "stg_orders"]),
        ("tag:staging,tag:pii", ["stg_customers"]),
        ("exposure:board", ["board"]),
        ("customers", []),  # fqn never matches a source (dbt: non_source_nodes)
    ],
)
def test_selectors_as_dbt_evaluates_them(small, selector, expected):
    graph, _ = small
    assert names(select(graph, selector)) == sorted(expected)


def test_exclude_and_everything(small):
    graph, _ = small
    assert select(graph) == set(graph.nodes)
    assert names(select(graph, "+fct_orders", "tag:staging")) == ["customers", "fct_orders", "raw_orders"]
    assert names(select(graph, None, "package:shop")) == ["dates"]
    assert names(select(graph, "fct_orders+", "ltv+")) == ["fct_orders"]


def test_tests_follow_their_parents_when_kept(small):
    _, graph = small
    assert "not_null_fct_orders_id" in names(select(graph, "fct_orders"))
    assert "not_null_fct_orders_id" not in names(select(graph, "stg_orders"))
    assert names(select(graph, "test_name:not_null")) == ["not_null_fct_orders_id"]
    assert "not_null_fct_orders_id" not in names(select(graph, "fct_orders", "test_name:not_null"))


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("colour:red", "unknown selector method 'colour:'"),
        ("state:modified", "needs a run's state"),
        ("@+fct_orders", "cannot be combined"),
        ("source:a.b.c.d", "invalid source selector"),
        ("config:table", "unknown selector method"),
        ("tag:", "invalid selector"),
    ],
)
def test_refused_selectors_are_clear_errors(small, selector, message):
    graph, _ = small
    with pytest.raises(SelectorError) as exc:
        select(graph, selector)
    assert message in exc.value.what


def test_layout_layers_by_longest_path(small):
    graph, _ = small
    at = layout(graph)
    layer = {u.split(".")[-1]: at[u][2] for u in at}
    assert layer["raw_orders"] == 0 and layer["customers"] == 0 and layer["dates"] == 0
    assert layer["stg_orders"] == 1 and layer["fct_orders"] == 2 and layer["ltv"] == 3 and layer["board"] == 4
    xs = {at[u][0] for u in at if at[u][2] == 2}
    assert xs == {2 * lineage.X_GAP}
    ys = sorted(at[u][1] for u in at if at[u][2] == 0)
    assert len(set(ys)) == len(ys)  # no two nodes of a layer on one spot


def crossings(draw: dict) -> int:
    nodes, edges = draw["nodes"], draw["edges"]
    spans = [(nodes[a]["layer"], nodes[a]["y"], nodes[b]["layer"], nodes[b]["y"]) for a, b in edges]
    adjacent = [s for s in spans if s[2] == s[0] + 1]
    count = 0
    by_layer: dict[int, list] = {}
    for s in adjacent:
        by_layer.setdefault(s[0], []).append(s)
    for group in by_layer.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if (a[1] - b[1]) * (a[3] - b[3]) < 0:
                    count += 1
    return count


def synthetic(n: int, seed: int = 7) -> dict:
    """n models in 10 layers, each with 1-3 parents in the layers before it; 100 sources."""
    rng = random.Random(seed)
    sources = {
        f"source.big.raw.t{i}": {
            "resource_type": "source",
            "name": f"t{i}",
            "source_name": "raw",
            "package_name": "big",
            "original_file_path": "models/sources.yml",
            "fqn": ["big", "raw", f"t{i}"],
        }
        for i in range(100)
    }
    nodes: dict = {}
    previous = list(sources)
    per_layer = n // 10
    for k in range(10):
        current = []
        for i in range(per_layer):
            uid = f"model.big.m{k}_{i}"
            parents = rng.sample(previous, min(len(previous), rng.randint(1, 3)))
            nodes[uid] = node(
                uid, parents, path=f"models/l{k}/m{k}_{i}.sql", tags=[f"layer{k}"], fqn=["big", f"l{k}", f"m{k}_{i}"]
            )
            current.append(uid)
        previous = previous[-per_layer:] + current
    return {"metadata": {"project_name": "big"}, "nodes": nodes, "sources": sources}


def test_two_thousand_nodes_laid_out_under_a_second_and_cached():
    data = json.dumps(synthetic(2000)).encode()
    started = time.perf_counter()
    graph = lineage.cached(data)
    draw = drawing(graph)
    elapsed = time.perf_counter() - started
    assert len(draw["nodes"]) == 2100 and len(draw["edges"]) > 2000
    assert elapsed < 1.0, elapsed
    assert lineage.cached(data) is graph and drawing(graph) is draw  # the same objects: no work
    # the sweeps cut crossings compared with the unswept (name-sorted) order
    swept = crossings(draw)
    sweeps, lineage.SWEEPS = lineage.SWEEPS, 0
    try:
        graph.layouts.clear()
        unswept = crossings(drawing(graph))
    finally:
        lineage.SWEEPS = sweeps
        graph.layouts.clear()
    assert swept < unswept * 0.8, (swept, unswept)


def test_selection_on_two_thousand_nodes():
    graph = graph_of(synthetic(2000))
    ups = select(graph, "+m9_0")
    assert "model.big.m9_0" in ups and any(u.startswith("source.") for u in ups)
    assert all(u.startswith("model.big.m9_") for u in select(graph, "tag:layer9"))
    assert select(graph, "path:models/l3") == select(graph, "tag:layer3")
    draw = drawing(graph, "m5_1+")
    assert {n["id"] for n in draw["nodes"]} == select(graph, "m5_1+")
