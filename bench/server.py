"""Server figures: trigger latency, scheduler lateness, queue throughput, store growth.

    .venv/bin/python bench/server.py [--only latency,lateness,queue,growth] [--runs 10]
        [--lateness-seconds 30] [--queue-runs 10000] [--growth-runs 2] [--pg URL]

* **latency**: a warm ``dockyard worker`` (one slot, dbt already imported) on a copy of
  ``tests/fixtures/mini`` (DuckDB); ``--runs`` runs of ``dbt run --select stg_numbers`` queued
  one after the other with ``App.enqueue``; for each, the first node's ``started_at`` (dbt's
  own timestamp, from the store) minus the run's ``queued_at``. SQLite store.
* **lateness**: ``dockyard scheduler`` with a job ``* * * * *`` under a clock warped ×60 for
  ``--lateness-seconds`` real seconds; for each fire, the fire row's ``created_at`` minus its
  ``scheduled_for``, divided by 60 (back to real seconds). PostgreSQL store.
* **queue**: ``--queue-runs`` runs queued (``Store.queue.enqueue``), then claimed and finished
  (``claim`` + ``transition_run(success)``) by one process as fast as it can; claims/s, on
  SQLite and PostgreSQL.
* **growth**: the shop example's production job ("Daily Production Run": seed, source
  freshness, snapshot, run, test, docs generate) run ``--growth-runs`` times with
  ``dockyard run``; store size before and after (SQLite: pages in use × page size after a WAL
  checkpoint; PostgreSQL: ``pg_total_relation_size`` of every table), bytes per run.

Prints a table and writes ``bench/results/server-<time>.json``. PostgreSQL parts use
``--pg`` (default: a throw-away database on ``postgresql://postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dockyard.app import App  # noqa: E402
from dockyard.domain import RunStatus  # noqa: E402
from dockyard.store import Store  # noqa: E402
from dockyard.store.tables import fires, metadata  # noqa: E402

DOCKYARD = [sys.executable, "-m", "dockyard"]
PG_ADMIN = os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def pg_database() -> str:
    name = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def project(work: Path, source: Path, doc: dict | None) -> Path:
    dest = work / source.name
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*"))
    if doc is not None:
        (dest / "dockyard.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def env_for(work: Path, store_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        {
            "MINI_DB_PATH": str(work / "mini.duckdb"),
            "SHOP_DUCKDB_DIR": str(work),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DOCKYARD_STORE_URL": store_url,
        },
        **extra,
    )
    return env


def start(args, config: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [*DOCKYARD, *args, "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def bench_latency(work: Path, runs: int) -> dict:
    doc = {
        "runner": {"inherit_env": ["MINI_DB_PATH"]},
        "server": {"heartbeat_seconds": 1, "poll_seconds": 0.25},
        "environments": {"dev": {"target": "dev"}},
        "jobs": [{"name": "one", "environment": "dev", "commands": ["dbt run --select stg_numbers"]}],
    }
    proj = project(work, ROOT / "tests" / "fixtures" / "mini", doc)
    url = f"sqlite:///{proj / '.dockyard' / 'dockyard.db'}"
    os.environ.update(env_for(work, url))
    app = App.open(proj / "dockyard.yml", url)
    app.sync()
    worker = start(["worker"], proj / "dockyard.yml", env_for(work, url), work / "worker.log")
    out = []
    try:
        for i in range(runs + 1):  # the first run warms partial parsing; not counted
            run_id = app.triggers.enqueue("one", trigger="manual").run_id
            deadline = time.monotonic() + 120
            while not (run := app.store.runs.get_run(run_id)).status.is_final:
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {run_id} did not finish: {(work / 'worker.log').read_text()[-2000:]}")
                time.sleep(0.1)
            starts = [n.started_at for n in run.nodes if n.started_at]
            if i and run.status == RunStatus.SUCCESS and starts:
                out.append((min(starts) - run.queued_at).total_seconds())
    finally:
        stop(worker)
        app.close()
    return {"runs": len(out), "p50_s": pct(out, 0.5), "p95_s": pct(out, 0.95), "max_s": max(out)}


def bench_lateness(work: Path, seconds: float, pg_url: str) -> dict:
    doc = {
        "server": {"heartbeat_seconds": 1, "lost_after_seconds": 3600},
        "environments": {"dev": {"target": "dev"}},
        "jobs": [
            {
                "name": "every",
                "environment": "dev",
                "schedule": {"cron": "* * * * *"},
                "commands": ["dbt deps"],
                "allow_overlap": True,
                "catchup": "all",
            }
        ],
    }
    proj = project(work / "lateness", ROOT / "tests" / "fixtures" / "mini", doc)
    speed = 60
    env = env_for(
        work, pg_url, DOCKYARD_CLOCK_WARP=f"2026-01-05T00:00:30Z*{speed}", DOCKYARD_CLOCK_ORIGIN=repr(time.time())
    )
    sched = start(["scheduler"], proj / "dockyard.yml", env, work / "scheduler.log")
    time.sleep(seconds)
    stop(sched)
    with Store(pg_url) as store, store.engine.connect() as conn:
        rows = conn.execute(
            select(fires.c.scheduled_for, fires.c.created_at).where(fires.c.fire_key.like("cron:%"))
        ).all()
    late = [(r.created_at - r.scheduled_for).total_seconds() / speed for r in rows]
    return {"fires": len(late), "p50_s": pct(late, 0.5), "p95_s": pct(late, 0.95), "max_s": max(late)}


def bench_queue(url: str, n: int) -> dict:
    store = Store(url)
    store.migrate()
    store.jobs.sync_environments([{"name": "dev"}])
    job_id = store.jobs.sync_jobs([{"name": "q", "environment": "dev"}])["q"]
    t0 = time.perf_counter()
    for _ in range(n):
        store.queue.enqueue(job_id, "q", "dev", ["dbt deps"], trigger="manual", coalesce=False)
    enq = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = 0
    while (claim := store.queue.claim("bench", "host")) is not None:
        store.runs.transition_run(claim.run_id, RunStatus.SUCCESS, epoch=claim.epoch)
        done += 1
    took = time.perf_counter() - t0
    store.close()
    return {"runs": done, "enqueue_per_s": n / enq, "claim_finish_per_s": done / took}


def store_bytes(url: str) -> int:
    with Store(url) as store, store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
            return (pages - free) * conn.exec_driver_sql("PRAGMA page_size").scalar()
        return sum(
            conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t.name}).scalar()
            for t in metadata.sorted_tables
        )


def bench_growth(work: Path, runs: int, url: str, label: str) -> dict:
    proj = project(work / f"growth-{label}", ROOT / "examples" / "shop", None)
    env = env_for(work / f"growth-{label}", url)
    (work / f"growth-{label}").mkdir(exist_ok=True)
    cmd = [*DOCKYARD, "run", "Daily Production Run", "--quiet", "--local", "--config", str(proj / "dockyard.yml")]
    subprocess.run(cmd, cwd=proj, env=env, check=True, capture_output=True)  # warm-up: schema, first parse
    before = store_bytes(url)
    t0 = time.perf_counter()
    for _ in range(runs):
        subprocess.run(cmd, cwd=proj, env=env, check=True, capture_output=True)
    took = (time.perf_counter() - t0) / runs
    after = store_bytes(url)
    with Store(url) as store:
        nodes = len(store.runs.get_run(store.runs.list_runs(limit=1)[0].id).nodes)
    return {"runs": runs, "bytes_per_run": (after - before) / runs, "nodes_per_run": nodes, "run_s": took}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="latency,lateness,queue,growth")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lateness-seconds", type=float, default=30)
    parser.add_argument("--queue-runs", type=int, default=10000)
    parser.add_argument("--growth-runs", type=int, default=2)
    parser.add_argument("--pg", default=None)
    args = parser.parse_args()
    parts = args.only.split(",")
    results: dict = {"load_before": os.getloadavg()[0]}
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-server-"))
    made: list[str] = []

    def pg() -> str:
        if args.pg:
            return args.pg
        made.append(pg_database())
        return made[-1]

    try:
        if "latency" in parts:
            results["latency"] = bench_latency(work / "latency", args.runs)
            print("trigger -> first node start:", results["latency"], flush=True)
        if "lateness" in parts:
            results["lateness"] = bench_lateness(work, args.lateness_seconds, pg())
            print("scheduler lateness:", results["lateness"], flush=True)
        if "queue" in parts:
            results["queue_sqlite"] = bench_queue(f"sqlite:///{work / 'queue.db'}", args.queue_runs)
            print("queue (SQLite):", results["queue_sqlite"], flush=True)
            results["queue_postgresql"] = bench_queue(pg(), args.queue_runs)
            print("queue (PostgreSQL):", results["queue_postgresql"], flush=True)
        if "growth" in parts:
            (work / "growth-sqlite").mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{work / 'growth.db'}"
            results["growth_sqlite"] = bench_growth(work, args.growth_runs, url, "sqlite")
            print("store growth (SQLite):", results["growth_sqlite"], flush=True)
            results["growth_postgresql"] = bench_growth(work, args.growth_runs, pg(), "postgresql")
            print("store growth (PostgreSQL):", results["growth_postgresql"], flush=True)
    finally:
        for url in made:
            drop_database(url)
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()[0]
    out = ROOT / "bench" / "results" / f"server-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
