"""The commits the server deployed or refused (store.commits), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from dockyard.store import Store

SHA = "a" * 40


def test_concurrent_deploys_of_one_new_commit_all_succeed(store: Store) -> None:
    """Two processes deploying one new sha at once (a push webhook and a poll): each write
    succeeds and one row results. An UPDATE-then-INSERT let the second INSERT hit the unique
    sha on PostgreSQL (a store error answered to the webhook)."""
    barrier, errors = threading.Barrier(8), []

    def deploy() -> None:
        barrier.wait()
        try:
            store.commits.record(SHA, "main", "ok")
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert [c.sha for c in store.commits.recent()] == [SHA]
    assert store.commits.deployed().sha == SHA


def test_a_refused_commit_then_a_roll_back(store: Store) -> None:
    store.commits.record("b" * 40, "main", "ok")
    store.commits.record(
        "c" * 40, "main", "refused", "unknown key 'cron' (dockyard.yml@cccccccccccc:3, key jobs[0].cron)"
    )
    assert store.commits.deployed().sha == "b" * 40
    assert "unknown key" in store.commits.refused().error
    store.commits.record("c" * 40, "main", "refused", "again")  # refused again: one row, new error
    assert store.commits.refused().error == "again" and len(store.commits.recent()) == 2
