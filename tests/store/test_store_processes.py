"""Process registry and named leases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.errors import DockyardError
from dockyard.store import Store

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_lease_is_exclusive_renewable_and_taken_over_after_expiry(store: Store) -> None:
    assert store.leases.acquire_lease("scheduler", "s1", 30, now=T0) == 1
    assert store.leases.acquire_lease("scheduler", "s2", 30, now=T0 + timedelta(seconds=10)) is None
    assert store.leases.acquire_lease("scheduler", "s1", 30, now=T0 + timedelta(seconds=20)) == 1  # renewed
    assert store.leases.acquire_lease("scheduler", "s2", 30, now=T0 + timedelta(seconds=49)) is None
    assert store.leases.acquire_lease("scheduler", "s2", 30, now=T0 + timedelta(seconds=50)) == 2  # expired: taken
    assert store.leases.acquire_lease("scheduler", "s1", 30, now=T0 + timedelta(seconds=51)) is None  # s1 is out
    assert store.leases.acquire_lease("other", "s1", 30, now=T0) == 1  # leases are independent


def test_release_lets_another_holder_in_without_reusing_the_epoch(store: Store) -> None:
    assert store.leases.acquire_lease("scheduler", "s1", 30, now=T0) == 1
    assert store.leases.release_lease("scheduler", "s2") is False  # not s2's
    assert store.leases.acquire_lease("scheduler", "s2", 30, now=T0) is None
    assert store.leases.release_lease("scheduler", "s1") is True
    assert store.leases.acquire_lease("scheduler", "s2", 30, now=T0) == 2
    assert store.leases.release_lease("missing", "s1") is False


def test_concurrent_acquirers_get_one_lease(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda n: store.leases.acquire_lease("scheduler", f"s{n}", 30, now=T0), range(8)))
    assert sorted(got, key=str) == [1] + [None] * 7


def test_process_registry(store: Store) -> None:
    store.leases.register_process("h:1:aaaa", "scheduler", "h", 1, now=T0)
    store.leases.register_process(
        "h:2:bbbb", "worker", "h", 2, concurrency=4, info={"version": "1"}, now=T0 + timedelta(seconds=1)
    )
    store.leases.register_process("h:3:cccc", "server", "h", 3, now=T0 + timedelta(seconds=2))
    assert store.leases.heartbeat_process("h:2:bbbb", info={"running": [5]}, now=T0 + timedelta(seconds=60))
    assert store.leases.heartbeat_process("h:3:cccc", now=T0 + timedelta(seconds=60))
    assert not store.leases.heartbeat_process("nope")
    store.leases.stop_process("h:3:cccc", now=T0 + timedelta(seconds=61))
    store.leases.stop_process("nope")

    every = store.leases.list_processes()
    assert [p["id"] for p in every] == ["h:1:aaaa", "h:2:bbbb", "h:3:cccc"]
    worker = every[1]
    assert (worker["kind"], worker["host"], worker["pid"], worker["concurrency"], worker["info"]) == (
        "worker",
        "h",
        2,
        4,
        {"running": [5]},
    )
    assert (worker["started_at"], worker["heartbeat_at"], worker["stopped_at"]) == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=60),
        None,
    )
    alive = store.leases.list_processes(alive_within_s=30, now=T0 + timedelta(seconds=70))
    assert [p["id"] for p in alive] == ["h:2:bbbb"]  # 1 is silent, 3 stopped
    # Registering again (a restart with the same id) starts afresh.
    store.leases.register_process("h:3:cccc", "server", "h", 3, now=T0 + timedelta(seconds=80))
    alive = store.leases.list_processes(alive_within_s=30, now=T0 + timedelta(seconds=80))
    assert [p["id"] for p in alive] == ["h:2:bbbb", "h:3:cccc"]
    with pytest.raises(DockyardError, match="Unknown process kind"):
        store.leases.register_process("x", "robot", "h", 9)
