"""store.notifications on SQLite and PostgreSQL: queueing is idempotent per (alert key,
channel) and moves the channel's state in the same transaction; a delivery is claimed by one
sender only (compare-and-set on its lease, also from threads at once), an expired lease is
taken over, and only the holder ends an attempt; deferred rows."""

from __future__ import annotations

import threading
from datetime import timedelta

from tests.store.conftest import pg_url, store  # noqa: F401 - a migrated, empty store per backend

from dockyard import clock
from dockyard.store.notifications import Decision, Target

BASE = {"alert_key": "alert:run:1:final", "kind": "run", "subject": "job:a@prod", "run_id": 1, "job": "a",
        "environment": "prod"}  # fmt: skip


def targets(*names: str) -> list[Target]:
    return [Target(n, "slack", {"title": "a failed"}, "failed") for n in names]


def opening(target, state) -> Decision:
    return Decision("pending", open=True, sent=True)


def test_queue_is_idempotent_and_moves_the_state(store):  # noqa: F811
    repo = store.notifications
    assert repo.queue(BASE, targets("one", "two"), opening) == [("one", "pending"), ("two", "pending")]
    assert repo.queue(BASE, targets("one", "two"), opening) == []  # the same alert again: nothing
    states = repo.state("job:a@prod")
    assert [(s.channel, s.open, s.last_event) for s in states] == [("one", True, "failed"), ("two", True, "failed")]
    seen = []
    repo.queue({**BASE, "alert_key": "k2"}, targets("one"), lambda t, s: seen.append(s) or Decision("suppressed"))
    assert seen[0].open and seen[0].last_sent_at is not None
    assert [d.status for d in repo.deliveries(run_id=1)] == ["suppressed", "pending", "pending"]
    assert repo.pending_count(run_id=1) == 2


def test_one_sender_claims_a_delivery(store):  # noqa: F811
    repo = store.notifications
    repo.queue(BASE, targets(*[f"c{i}" for i in range(6)]), opening)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def claim(holder: str) -> None:
        barrier.wait()
        got[holder] = [d.id for d in repo.claim(holder, 30, limit=10)]

    threads = [threading.Thread(target=claim, args=(f"h{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    claimed = [i for ids in got.values() for i in ids]
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 6  # each exactly once
    first = next(h for h, ids in got.items() if ids)
    row = got[first][0]
    other = "someone-else"
    assert not repo.sent(row, other, "200")  # only the holder ends the attempt
    assert repo.sent(row, first, "200")
    assert repo.claim("late", 30) == []  # all leased (or sent)
    later = clock.now() + timedelta(seconds=31)
    taken = repo.claim("late", 30, limit=10, now=later)  # the leases ran out: taken over
    assert len(taken) == 5 and all(d.attempts == 2 for d in taken)


def test_failed_attempts_back_off_then_fail(store):  # noqa: F811
    repo = store.notifications
    repo.queue(BASE, targets("one"), opening)
    [d] = repo.claim("h", 30)
    retry_at = clock.now() + timedelta(seconds=60)
    assert repo.failed(d.id, "h", "slack webhook (hooks.slack.com) answered 500", retry_at)
    assert repo.claim("h", 30) == []  # not due yet
    [d] = repo.claim("h", 30, now=retry_at + timedelta(seconds=1))
    assert d.attempts == 2 and d.last_error.endswith("500")
    assert repo.failed(d.id, "h", "answered 404", None)
    [row] = repo.deliveries()
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, "answered 404")


def test_deferred_rows(store):  # noqa: F811
    repo = store.notifications
    forms = {"final": {"title": "final"}, "retrying": {"title": "retrying"}}
    assert repo.defer(BASE, forms, "failed")
    assert not repo.defer(BASE, forms, "failed")  # once per alert
    [row] = repo.deferred(run_id=1)
    assert row.alert == forms and repo.deliveries() == []  # not in the log
    assert repo.pending_count(run_id=1) == 1
    assert repo.undefer(row.id) and not repo.undefer(row.id)
    assert repo.retry_run(1) is None
