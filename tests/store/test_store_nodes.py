"""Node results (merge semantics) and artifacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockyard.domain import ArtifactRef, NodeResult
from dockyard.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "model.shop.orders"


@pytest.fixture
def run_id(store: Store) -> int:
    return store.runs.create_run(None, "adhoc", "prod", ["dbt build"])


def test_later_events_fill_fields_without_erasing(store: Store, run_id: int) -> None:
    store.runs.upsert_nodes(
        run_id,
        0,
        [NodeResult(MODEL, name="orders", resource_type="model", status="started", started_at=T0, thread="Thread-1")],
    )
    store.runs.upsert_nodes(
        run_id,
        0,
        [
            NodeResult(
                MODEL,
                status="success",
                finished_at=T0 + timedelta(seconds=3),
                execution_time_s=2.5,
                rows_affected=10**10,
                adapter_response={"_message": "SELECT 5", "rows_affected": 5},
                message="SELECT 5",
            )
        ],
    )
    # A late/out-of-order "started" event does not undo the final status.
    store.runs.upsert_nodes(run_id, 0, [NodeResult(MODEL, status="started")])
    [node] = store.runs.get_run(run_id).nodes
    assert node == NodeResult(
        MODEL,
        name="orders",
        resource_type="model",
        status="success",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        execution_time_s=2.5,
        rows_affected=10**10,
        adapter_response={"_message": "SELECT 5", "rows_affected": 5},
        message="SELECT 5",
        compiled_path=None,
        thread="Thread-1",
        step_index=0,
    )


def test_one_batch_with_several_events_per_node(store: Store, run_id: int) -> None:
    events = [
        NodeResult(f"model.p.m{i}", name=f"m{i}", status="started", started_at=T0 + timedelta(i)) for i in range(3)
    ]
    events += [NodeResult("model.p.m1", status="error", message="boom"), NodeResult("model.p.m1")]
    store.runs.upsert_nodes(run_id, 0, events)
    nodes = {n.unique_id: n for n in store.runs.get_run(run_id).nodes}
    assert nodes["model.p.m1"].status == "error" and nodes["model.p.m1"].message == "boom"
    assert nodes["model.p.m1"].started_at == T0 + timedelta(1)
    assert nodes["model.p.m0"].status == "started"


def test_nodes_are_per_step_and_ordered(store: Store) -> None:
    run_id = store.runs.create_run(None, "adhoc", "prod", ["dbt run", "dbt test"])
    store.runs.upsert_nodes(run_id, 1, [NodeResult("test.p.t", started_at=T0)])
    store.runs.upsert_nodes(
        run_id,
        0,
        [
            NodeResult("model.p.late", started_at=T0 + timedelta(seconds=5)),
            NodeResult("model.p.pending"),
            NodeResult("model.p.early", started_at=T0),
        ],
    )
    store.runs.upsert_nodes(run_id, 1, [NodeResult(MODEL, status="success")])
    store.runs.upsert_nodes(run_id, 0, [])
    nodes = store.runs.get_run(run_id).nodes
    assert [n.unique_id for n in nodes] == ["model.p.early", "model.p.late", "model.p.pending", "test.p.t", MODEL]
    assert [n.step_index for n in nodes] == [0, 0, 0, 1, 1]


def test_large_batches(store: Store, run_id: int) -> None:
    store.runs.upsert_nodes(run_id, 0, [NodeResult(f"model.p.m{i}", status="started") for i in range(1200)])
    store.runs.upsert_nodes(run_id, 0, [NodeResult(f"model.p.m{i}", status="success") for i in range(1200)])
    nodes = store.runs.get_run(run_id).nodes
    assert len(nodes) == 1200 and {n.status for n in nodes} == {"success"}


def test_artifacts_upsert(store: Store, run_id: int) -> None:
    store.runs.add_artifacts(
        run_id,
        [
            ArtifactRef(0, "manifest.json", "step-0/manifest.json", 10, "aa"),
            ArtifactRef(0, "run_results.json", "step-0/run_results.json", 5, "bb"),
        ],
    )
    store.runs.add_artifacts(run_id, [ArtifactRef(0, "manifest.json", "step-0/manifest.json", 2**40, "cc")])
    store.runs.add_artifacts(run_id, [])
    assert store.runs.get_run(run_id).artifacts == [
        ArtifactRef(0, "manifest.json", "step-0/manifest.json", 2**40, "cc"),
        ArtifactRef(0, "run_results.json", "step-0/run_results.json", 5, "bb"),
    ]


def test_deleting_a_run_cascades(store: Store, run_id: int) -> None:
    store.runs.upsert_nodes(run_id, 0, [NodeResult(MODEL)])
    store.runs.add_artifacts(run_id, [ArtifactRef(0, "manifest.json", "m.json")])
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM runs WHERE id = {run_id}")
        counts = [
            conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
            for t in ("run_steps", "node_results", "artifacts")
        ]
    assert counts == [0, 0, 0]
