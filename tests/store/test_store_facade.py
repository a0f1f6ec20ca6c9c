"""The store is a facade over repositories; its read-only view reaches no write."""

from __future__ import annotations

from dockyard.domain import RunStatus
from dockyard.store import Store, StoreReader
from dockyard.store.jobs import JobReader
from dockyard.store.outbox import OutboxReader
from dockyard.store.runs import RunReader

WRITES = {
    "runs": {"create_run", "transition_run", "set_run_fields", "set_run_pgid", "start_step", "finish_step",
             "skip_steps", "upsert_nodes", "add_artifacts", "insert_run"},
    "jobs": {"sync_environments", "sync_jobs", "create_api_job", "update_api_job", "delete_api_job"},
    "outbox": {"claim_cursor", "advance_cursor", "cursor_failed", "release_cursor", "prune_outbox"},
    "monitors": {"record", "transition", "alerted", "queue", "claim", "finish", "prune_checks"},
    "freshness": {"record"},
}  # fmt: skip


def test_the_store_keeps_only_its_repositories_and_lifecycle(store: Store) -> None:
    public = {name for name in dir(store) if not name.startswith("_")}
    repositories = {"runs", "queue", "leases", "jobs", "tokens", "stats", "outbox", "reader"}
    repositories |= {"commits", "webhooks", "pr_schemas"}  # code from git, webhook deliveries, PR schemas
    repositories |= {"monitors"}  # data monitors (issue 10)
    repositories |= {"freshness"}  # source freshness history (issue 10)
    repositories |= {"notifications"}  # alert deliveries and state (issue 10)
    repositories |= {"metrics", "metric_state"}  # run metrics; slowdowns, history queue, digests (issue 10)
    repositories |= {"users"}  # the web UI's users and sessions (issue 11)
    assert public == repositories | {"db", "engine", "migrate", "close", "url", "dialect"}
    assert store.queue.runs is store.runs  # the queue is given the runs repository


def test_the_reader_reads_what_the_store_wrote_and_has_no_writes(store: Store) -> None:
    store.jobs.sync_environments([{"name": "prod"}])
    job_id = store.jobs.sync_jobs([{"name": "daily", "environment": "prod"}])["daily"]
    run_id = store.runs.create_run(job_id, "daily", "prod", ["dbt run"], status=RunStatus.QUEUED)
    reader = store.reader
    assert isinstance(reader, StoreReader) and reader.url == store.url
    assert reader.runs.get_run(run_id).status is RunStatus.QUEUED
    assert [j.name for j in reader.jobs.list_jobs()] == ["daily"]
    assert reader.outbox.last_event_id(run_id) > 0
    assert reader.stats.model_durations(job_id=job_id) is not None
    for noun, writes in WRITES.items():
        repository = getattr(reader, noun)
        assert not [w for w in writes if hasattr(repository, w)], noun
        assert writes <= set(dir(getattr(store, noun))), noun  # the names above are real writes
    assert {type(reader.runs), type(reader.jobs), type(reader.outbox)} == {RunReader, JobReader, OutboxReader}
    assert not hasattr(reader, "queue") and not hasattr(reader, "leases") and not hasattr(reader, "tokens")
