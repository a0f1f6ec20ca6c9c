"""Environments and jobs: upserts by name and stable ids."""

from __future__ import annotations

import pytest

from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import Store


def job(name: str, **extra) -> dict:
    return {
        "name": name,
        "environment": "prod",
        "cron": "0 * * * *",
        "timezone": "UTC",
        "definition": {"steps": [f"dbt build -s {name}"]},
        **extra,
    }


def test_sync_environments_upserts_by_name(store: Store) -> None:
    store.jobs.sync_environments(
        [{"name": "prod", "target": "prod", "schema": "analytics", "threads": 4}, {"name": "dev", "target": "dev"}]
    )
    first = {e["name"]: e for e in store.jobs.list_environments()}
    store.jobs.sync_environments([{"name": "prod", "target": "prod2", "schema": None, "threads": 8}])
    second = {e["name"]: e for e in store.jobs.list_environments()}
    assert second["prod"]["id"] == first["prod"]["id"]
    assert (second["prod"]["target"], second["prod"]["schema"], second["prod"]["threads"]) == ("prod2", None, 8)
    assert second["dev"] == first["dev"]
    assert second["prod"]["updated_at"] >= first["prod"]["updated_at"]


def test_job_ids_are_stable_across_syncs(store: Store) -> None:
    ids = store.jobs.sync_jobs([job("hourly"), job("nightly")])
    assert set(ids) == {"hourly", "nightly"} and len(set(ids.values())) == 2

    # Same names again (one changed): same ids.
    again = store.jobs.sync_jobs([job("hourly", cron="5 * * * *"), job("nightly")])
    assert again == ids
    assert store.jobs.get_job("hourly").cron == "5 * * * *"

    # Rename nightly -> daily: new id, old one deactivated but kept.
    renamed = store.jobs.sync_jobs([job("hourly"), job("daily")])
    assert renamed["hourly"] == ids["hourly"]
    assert renamed["daily"] not in ids.values()
    old = store.jobs.get_job("nightly")
    assert old.id == ids["nightly"] and old.active is False
    assert [j.name for j in store.jobs.list_jobs()] == ["daily", "hourly"]
    assert [j.name for j in store.jobs.list_jobs(active_only=False)] == ["daily", "hourly", "nightly"]

    # Bringing the old name back brings back the old id.
    back = store.jobs.sync_jobs([job("hourly"), job("nightly")])
    assert back["nightly"] == ids["nightly"]
    assert store.jobs.get_job(ids["nightly"]).active is True
    assert store.jobs.get_job("daily").active is False


def test_ids_are_never_reused(store: Store) -> None:
    first = store.jobs.sync_jobs([job("a"), job("b")])
    store.jobs.sync_jobs([job("c")])
    assert store.jobs.sync_jobs([job("d")])["d"] > max(first.values())
    assert store.jobs.sync_jobs([]) == {}
    assert store.jobs.list_jobs() == []


def test_job_fields_round_trip(store: Store) -> None:
    definition = {"steps": ["dbt build"], "nested": {"a": [1, 2.5, None, True]}}
    ids = store.jobs.sync_jobs(
        [{"name": "j", "environment": "dev", "cron": None, "timezone": "Europe/Paris", "definition": definition}]
    )
    record = store.jobs.get_job(ids["j"])
    assert (record.name, record.environment, record.cron, record.timezone, record.active) == (
        "j",
        "dev",
        None,
        "Europe/Paris",
        True,
    )
    assert record.definition == definition
    assert store.jobs.get_job(str(ids["j"])) == record  # a numeric string falls back to the id


def test_unchanged_jobs_are_not_rewritten(store: Store) -> None:
    store.jobs.sync_jobs([job("a")])
    with store.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT updated_at FROM jobs").scalar()
    store.jobs.sync_jobs([job("a")])
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT updated_at FROM jobs").scalar() == before


def test_unknown_job_is_not_found_with_hint(store: Store) -> None:
    store.jobs.sync_jobs([job("hourly")])
    with pytest.raises(NotFoundError) as caught:
        store.jobs.get_job("nope")
    assert caught.value.status == 404
    assert "hourly" in (caught.value.hint or "")
    with pytest.raises(NotFoundError):
        store.jobs.get_job(999)


def test_duplicate_job_names_are_rejected(store: Store) -> None:
    with pytest.raises(DockyardError, match="Duplicate job names: a"):
        store.jobs.sync_jobs([job("a"), job("a")])
