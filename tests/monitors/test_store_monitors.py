"""store.monitors on SQLite and PostgreSQL: measurements, the state's transitions (one
previous status per change, even for two checkers at once), the queue of checks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tests.store.conftest import pg_url, store  # noqa: F401  (fixtures)


def test_measurements_and_history(store):  # noqa: F811
    m = store.monitors
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(5):
        m.record("rows", "prod", status="ok", trigger="manual", value=float(i), measured_at=t0 + timedelta(days=i))
    m.record("rows", "dev", status="error", trigger="schedule", detail={"message": "boom"})
    newest = m.history("rows", "prod", limit=2)
    assert [r.value for r in newest] == [4.0, 3.0]
    assert [r.value for r in m.history("rows", "prod", since=t0 + timedelta(days=3), oldest_first=True)] == [3.0, 4.0]
    assert m.last("rows", "dev").detail == {"message": "boom"}
    assert m.last("rows", "dev", statuses=("ok",)) is None
    assert store.reader.monitors.history("rows", limit=10)[0].environment in ("prod", "dev")


def test_transitions_answer_the_previous_state(store):  # noqa: F811
    m = store.monitors
    assert m.transition("rows", "prod", "ok", 1) is None
    assert m.transition("rows", "prod", "ok", 2).status == "ok"
    since = m.state("rows", "prod").since
    assert m.transition("rows", "prod", "alert", 3).status == "ok"
    state = m.state("rows", "prod")
    assert state.status == "alert" and state.since >= since and state.measurement_id == 3
    m.alerted("rows", "prod")
    assert m.state("rows", "prod").last_alert_at is not None


def test_two_checkers_at_once_see_one_change(store):  # noqa: F811
    m = store.monitors
    m.transition("rows", "prod", "ok", 1)
    seen, barrier = [], threading.Barrier(4)

    def check(i):
        barrier.wait()
        seen.append(m.transition("rows", "prod", "alert", 10 + i).status)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(seen) == ["alert", "alert", "alert", "ok"]  # exactly one saw the change


def test_the_queue_of_checks(store):  # noqa: F811
    m = store.monitors
    assert m.queue("after_job:7", ["b", "a", "a"], "prod", "after_job", run_id=7, job="nightly")
    assert not m.queue("after_job:7", ["a"], "prod", "after_job")  # once per key
    assert m.queue("manual:x", ["c"], "dev", "manual")
    assert m.pending() == 2
    first = m.claim("one")
    assert first.key == "after_job:7" and first.monitors == ["a", "b"] and first.state == "running"
    second = m.claim("two")
    assert second.key == "manual:x"
    assert m.claim("three") is None
    m.release(second.id)
    assert m.claim("three").id == second.id
    assert m.claim("four", stale_s=0).id == first.id  # a checker that held it too long: taken over
    m.finish(first.id, "x" * 5000)
    done = [c for c in m.checks() if c.id == first.id][0]
    assert done.state == "done" and len(done.error) == 2000
    assert m.prune_checks(datetime.now(UTC) + timedelta(seconds=1)) == 1
