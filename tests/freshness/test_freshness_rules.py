"""The pure parts of source freshness (no dbt): sources.json parsing, which checks are changes,
the alerts they make (grouping, resolves, keys), and the history repository on SQLite and
PostgreSQL (previous status, idempotent recording, latest per environment, bounded reads)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.store.conftest import pg_url, store  # noqa: F401 - a migrated, empty store per backend

from dockyard.alert import MAX_ITEMS, AlertKind, Severity
from dockyard.app.freshness import is_freshness_command
from dockyard.app.freshness_alerts import age_text, build_alerts, changes
from dockyard.dbt import sources
from dockyard.store.freshness import FreshnessRecord

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
CRITERIA = {"warn_after": {"count": 1, "period": "hour"}, "error_after": {"count": 24, "period": "hour"}}


def row(uid: str, status: str, previous: str | None, *, run_id: int = 7, age: float | None = 7200.0, env="prod"):
    table = uid.rsplit(".", 1)[-1]
    return FreshnessRecord(
        id=0, run_id=run_id, step_index=1, environment=env, job="Freshness", unique_id=uid, source_name="raw",
        table_name=table, status=status, previous_status=previous, max_loaded_at=NOW - timedelta(seconds=age or 0),
        snapshotted_at=NOW, age_seconds=age, warn_after=CRITERIA["warn_after"], error_after=CRITERIA["error_after"],
        error="Runtime Error\n  Catalog Error: no table" if status == "runtime error" else None, checked_at=NOW,
    )  # fmt: skip


def test_sources_json_parsing() -> None:
    data = {
        "results": [
            {
                "unique_id": "source.shop.raw.orders",
                "status": "warn",
                "max_loaded_at": "2026-12-02T08:00:00",  # naive: UTC
                "snapshotted_at": "2026-12-02T10:00:00Z",
                "max_loaded_at_time_ago_in_s": 7200,
                "criteria": {**CRITERIA, "error_after": {"count": None, "period": None}, "filter": None},
            },
            {"unique_id": "source.shop.raw.gone", "status": "runtime error", "error": "x" * 5000},
            {"unique_id": "source.shop.raw.odd", "status": "skipped"},  # not a freshness status
            "junk",
            {"status": "pass"},
        ]
    }
    orders, gone = sources.parse(data)
    assert (orders.source_name, orders.table_name, orders.status) == ("raw", "orders", "warn")
    assert orders.max_loaded_at == datetime(2026, 12, 2, 8, tzinfo=UTC) and orders.snapshotted_at.tzinfo is not None
    assert orders.age_seconds == 7200.0 and orders.warn_after == CRITERIA["warn_after"] and orders.error_after is None
    assert gone.status == "runtime error" and len(gone.error) == sources.MAX_ERROR_CHARS
    assert sources.parse(None) == [] and sources.parse({"results": "no"}) == []
    assert sources.describe_criteria(orders.warn_after, None) == "warn after 1 hour"
    assert sources.describe_criteria(None, {"count": 2, "period": "day"}) == "error after 2 days"
    assert sources.names("model.x.y") == ("", "model.x.y")


def test_the_freshness_command_is_recognised() -> None:
    assert is_freshness_command("dbt source freshness --select source:raw")
    assert (
        not is_freshness_command("dbt run") and not is_freshness_command("rm -rf /") and not is_freshness_command(None)
    )


def test_age_text() -> None:
    assert [age_text(s) for s in (25920, 45 * 60, 30, 3 * 86400 + 4 * 3600, 7200, 86400, None)] == [
        "7 h 12 min", "45 min", "30 s", "3 d 4 h", "2 h", "1 d", None,
    ]  # fmt: skip


def test_changes_first_checks_alert_only_when_stale() -> None:
    rows = [
        row("source.p.raw.a", "pass", None),
        row("source.p.raw.b", "warn", None),
        row("source.p.raw.c", "warn", "warn"),
        row("source.p.raw.d", "error", "warn"),
    ]
    assert [r.unique_id for r in changes(rows)] == ["source.p.raw.b", "source.p.raw.d"]


def test_forty_stale_sources_are_one_message() -> None:
    rows = [row(f"source.p.raw.t{i:02}", "warn", "pass") for i in range(40)]
    (alert,) = build_alerts(rows, stale_left=rows, public_url="https://dockyard.example.com/")
    assert alert.kind is AlertKind.FRESHNESS and alert.event == "warn" and alert.severity is Severity.WARNING
    assert alert.title == "40 sources are stale (warn) in prod" and alert.subject == "freshness:prod"
    assert len(alert.items) == MAX_ITEMS and alert.items_total == 40 and not alert.resolves
    assert alert.key == "freshness:7:1:warn" and alert.url == "https://dockyard.example.com/runs/7"
    assert "t00, raw.t01, raw.t02 and 37 more" in alert.text


def test_one_alert_per_new_status_and_the_resolve() -> None:
    changed = [
        row("source.p.raw.a", "error", "pass", age=90000),
        row("source.p.raw.b", "runtime error", "pass", age=None),
        row("source.p.raw.c", "warn", "error"),
    ]
    error, warn = build_alerts(changed, stale_left=changed)
    assert (error.event, error.severity, [i.status for i in error.items]) == (
        "error", Severity.CRITICAL, ["error", "runtime error"],
    )  # fmt: skip
    assert error.items[1].message == "was pass\nRuntime Error\n  Catalog Error: no table"
    assert error.items[0].message == "age 1 d 1 h, warn after 1 hour, error after 24 hours; was pass"
    assert (warn.event, warn.title) == ("warn", "Source raw.c is stale (warn) in prod")
    assert dict(warn.facts)["Age"] == "2 h" and dict(warn.facts)["Thresholds"].startswith("warn after 1 hour")
    assert error.dedup_key == warn.dedup_key  # one incident per environment

    back = [row("source.p.raw.a", "pass", "error"), row("source.p.raw.c", "pass", "warn")]
    (resolve,) = build_alerts(back, stale_left=[])
    assert resolve.resolves and resolve.event == "pass" and resolve.severity is Severity.OK
    assert resolve.subject == "freshness:prod" and resolve.key == "freshness:7:1:pass"
    assert resolve.title == "2 sources are fresh again in prod"
    # a source back to pass while another stays stale: the incident stays open, no resolve
    assert build_alerts(back[:1], stale_left=[row("source.p.raw.b", "runtime error", "pass")]) == []
    assert build_alerts([], stale_left=[]) == []


def check(uid: str, status: str, at: datetime, age: float = 60.0) -> dict:
    source_name, table_name = sources.names(uid)
    return {
        "unique_id": uid, "source_name": source_name, "table_name": table_name, "status": status,
        "max_loaded_at": at - timedelta(seconds=age), "snapshotted_at": at, "age_seconds": age,
        "warn_after": CRITERIA["warn_after"], "error_after": None, "error": None, "checked_at": at,
    }  # fmt: skip


@pytest.mark.postgres
def test_history_repository(store) -> None:  # noqa: F811 - the fixture
    a, b = "source.p.raw.a", "source.p.raw.b"
    repo = store.freshness
    assert repo.record(1, 1, "prod", "J", [check(a, "pass", NOW), check(b, "warn", NOW)]) == 2
    assert repo.record(1, 1, "prod", "J", [check(a, "pass", NOW)]) == 0  # redelivered: nothing twice
    assert repo.record(2, 1, "prod", "J", [check(a, "warn", NOW + timedelta(hours=1))]) == 1
    assert repo.record(3, 1, "staging", None, [check(a, "error", NOW + timedelta(hours=2))]) == 1
    assert repo.record(4, 2, "prod", "J", [check(a, "warn", NOW + timedelta(hours=3))]) == 1
    history = repo.history(a, "prod")
    assert [(r.run_id, r.status, r.previous_status) for r in history] == [
        (4, "warn", "warn"),
        (2, "warn", "pass"),
        (1, "pass", None),
    ]  # fmt: skip  (the staging check does not count for prod)
    assert history[0].warn_after == CRITERIA["warn_after"] and history[0].checked_at.tzinfo is not None
    assert [r.run_id for r in repo.history("raw.a", limit=2)] == [4, 3]
    assert [r.run_id for r in repo.history("a", "prod", before_id=history[1].id)] == [1]
    latest = repo.latest()
    assert [(r.environment, r.unique_id, r.run_id) for r in latest] == [
        ("prod", a, 4),
        ("prod", b, 1),
        ("staging", a, 3),
    ]
    assert [r.unique_id for r in store.reader.freshness.latest("staging")] == [a]
    # a check recorded late (an older run's event delivered after a newer one) is history, not latest
    assert repo.record(5, 1, "prod", "J", [check(a, "error", NOW - timedelta(hours=1))]) == 1
    assert repo.history(a, "prod", limit=100)[-1].run_id == 5 and repo.latest("prod")[0].run_id == 4
    assert [r.unique_id for r in repo.step(1, 1)] == [a, b]
    assert repo.previous_status("prod", a, NOW + timedelta(hours=3), exclude=(4, 2)) == "warn"
    assert repo.previous_status("prod", b, NOW - timedelta(hours=1), exclude=(0, 0)) is None
