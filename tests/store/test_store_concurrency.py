"""Several threads (each with its own connections) writing and reading at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from dockyard.domain import NodeResult, RunStatus
from dockyard.store import Store

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_only_one_worker_claims_a_run(store: Store) -> None:
    run_id = store.runs.create_run(None, "adhoc", "prod", ["dbt run"])

    def claim(worker: int) -> bool:
        return store.runs.transition_run(
            run_id, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id=f"w{worker}"
        )

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(claim, range(8)))
    assert wins.count(True) == 1
    assert store.runs.get_run(run_id).worker_id == f"w{wins.index(True)}"


def test_concurrent_writers_and_readers(store: Store) -> None:
    def runner(n: int) -> int:
        run_id = store.runs.create_run(None, f"job{n}", "prod", ["dbt build"])
        store.runs.transition_run(run_id, RunStatus.RUNNING, expected={RunStatus.QUEUED}, started_at=T0)
        for tick in range(15):
            store.runs.upsert_nodes(
                run_id,
                0,
                [
                    NodeResult(f"model.p.m{i}", status="started" if tick < 14 else "success", started_at=T0)
                    for i in range(20)
                ],
            )
        store.runs.transition_run(run_id, RunStatus.SUCCESS, expected={RunStatus.RUNNING}, finished_at=T0)
        return run_id

    def reader(_: int) -> int:
        return sum(len(store.runs.list_runs(limit=50)) for _ in range(15))

    with ThreadPoolExecutor(8) as pool:
        writers = [pool.submit(runner, n) for n in range(6)]
        readers = [pool.submit(reader, n) for n in range(3)]
        run_ids = [f.result() for f in writers]
        [f.result() for f in readers]
    assert store.runs.count_runs(status="success") == 6
    for run_id in run_ids:
        nodes = store.runs.get_run(run_id).nodes
        assert len(nodes) == 20 and {n.status for n in nodes} == {"success"}
