"""The daily digest: due once per local day at the configured time, DST-safe, sent exactly
once across schedulers, with the last 24 hours' runs, failures, slowest models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.metrics.conftest import record_run

from dockyard.app.digest import due_day, fire_instant
from dockyard.domain import RunStatus
from dockyard.server.duties import SendDigest, Tick, TickReport

NY = "America/New_York"
DIGEST = """\
metrics:
  digest: {at: "08:00", timezone: "America/New_York", notify: [ops]}
"""


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_due_at_the_local_time_for_a_grace_window():
    # 08:00 in New York is 13:00 UTC in winter (EST) and 12:00 UTC in summer (EDT)
    assert due_day(_utc(2026, 12, 1, 12, 59), "08:00", NY) is None
    assert due_day(_utc(2026, 12, 1, 13, 0), "08:00", NY) == "2026-12-01"
    assert due_day(_utc(2026, 12, 1, 18, 59), "08:00", NY) == "2026-12-01"
    assert due_day(_utc(2026, 12, 1, 19, 0), "08:00", NY) is None  # 6 h late: skipped
    assert due_day(_utc(2026, 7, 1, 12, 0), "08:00", NY) == "2026-07-01"
    # 23:30 local: due just before midnight, still that day's digest just after
    assert due_day(_utc(2026, 12, 2, 4, 40), "23:30", NY) == "2026-12-01"


def test_dst_days_have_one_digest_each():
    # spring forward (2026-03-08): 02:30 does not exist; it fires at 03:30 EDT = 07:30 UTC
    assert fire_instant(datetime(2026, 3, 8).date(), "02:30", NY) == _utc(2026, 3, 8, 7, 30)
    # fall back (2026-11-01): 01:30 happens twice; the first (EDT, 05:30 UTC) fires
    assert fire_instant(datetime(2026, 11, 1).date(), "01:30", NY) == _utc(2026, 11, 1, 5, 30)
    minutes = [_utc(2026, 10, 31, 12) + timedelta(minutes=m) for m in range(0, 3 * 24 * 60, 5)]
    days = [due_day(t, "01:30", NY) for t in minutes]
    fires = [d for i, d in enumerate(days) if d is not None and (i == 0 or days[i - 1] != d)]
    assert fires == ["2026-11-01", "2026-11-02", "2026-11-03"]  # once per local day, fall-back day included


def test_the_digest_is_sent_once_across_schedulers(make_app):
    app = make_app(DIGEST)
    now = _utc(2025, 12, 1, 13, 0, 30)  # not today: the digest reads its own window
    record_run(app.store, "nightly", "prod", {"model.p.slow": 50.0, "model.p.fast": 1.0}, at=now - timedelta(hours=2))
    record_run(app.store, "hourly", "dev", {"model.p.x": 2.0}, at=now - timedelta(hours=3), status=RunStatus.ERROR)
    record_run(app.store, "nightly", "prod", {"model.p.old": 9.0}, at=now - timedelta(hours=30))  # not in 24 h
    other = make_app(DIGEST, name="other")  # a second scheduler's App over its own store...
    other.store.close()
    other.__dict__["store"] = app.store  # ...the same store
    duties = [SendDigest(app), SendDigest(other)]
    for minute in range(0, 10):
        for duty in duties:
            duty.run(Tick(now + timedelta(minutes=minute), TickReport(), {}))
    [sent] = [d for d in app.alerts.deliveries(limit=50) if d["kind"] == "digest"]
    assert sent["subject"] == "digest:2025-12-01" and sent["channel"] == "ops"
    alert = app.store.notifications.deliveries(limit=10)[0].alert
    assert "2 runs in the last 24 hours: 1 succeeded, 1 failed" in alert["text"]
    items = [(i["status"], i["name"]) for i in alert["items"]]
    assert items[0] == ("failed", "hourly (dev)") and ("slow", "slow") in items and ("slow", "old") not in items
    assert app.store.metric_state.digest("2025-12-01")["queued"] == 1
    # the next day: one more
    for duty in duties:
        duty.run(Tick(now + timedelta(days=1), TickReport(), {}))
    assert len([d for d in app.alerts.deliveries(limit=50) if d["kind"] == "digest"]) == 2


def test_no_digest_without_its_block(app):
    duty = SendDigest(app)
    duty.run(Tick(_utc(2025, 12, 1, 13, 0), TickReport(), {}))
    assert app.store.metric_state.digest("2025-12-01") is None
