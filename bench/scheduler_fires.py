"""Scheduler lateness with many due jobs: N jobs on ``* * * * *``, a real ``dockyard scheduler``.

    .venv/bin/python bench/scheduler_fires.py [--jobs 1000] [--minutes 3] [--stores sqlite,postgresql]
        [--overlap] [--pg-admin URL]

For each store (a SQLite file, and a throw-away PostgreSQL database dropped afterwards) the
script writes a ``dockyard.yml`` with ``--jobs`` jobs on ``* * * * *`` (one ``dbt deps``
step each, default settings: no overlap, ``catchup: latest``; ``--overlap`` sets
``allow_overlap: true``), syncs them with ``dockyard deploy``, then starts one ``dockyard
scheduler`` (no workers: runs stay queued, so without ``--overlap`` every fire after a
job's first coalesces into its queued run) on the real clock, shifted so that the first
minute boundary comes 15 s after the start (``DOCKYARD_CLOCK_WARP=...*1``: speed 1, real
seconds). It lets ``--minutes`` minutes of fires go by, then waits up to 90 s more for the
last minute to be fired completely, stops the scheduler and reads the ``fires`` table.

Per scheduled minute it prints how many jobs fired (of ``--jobs``) and the lateness of the
fires, ``fires.created_at - fires.scheduled_for`` (``created_at`` is taken when the
transaction that records the fire starts): p50, p95 and max (the max is the time to fire
all of them). Writes ``bench/results/scheduler-fires-<time>.json``.
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
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dockyard.store import Store  # noqa: E402
from dockyard.store.tables import fires  # noqa: E402

DOCKYARD = [sys.executable, "-m", "dockyard"]


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def make_project(work: Path, jobs: int, overlap: bool) -> Path:
    dest = work / "mini"
    shutil.copytree(
        ROOT / "tests" / "fixtures" / "mini",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*"),
    )
    job = {"environment": "dev", "schedule": {"cron": "* * * * *"}, "commands": ["dbt deps"]}
    if overlap:
        job["allow_overlap"] = True
    doc = {
        "server": {"heartbeat_seconds": 5, "lost_after_seconds": 3600},
        "environments": {"dev": {"target": "dev"}},
        "jobs": [{"name": f"every-{i:04d}", **job} for i in range(jobs)],
    }
    (dest / "dockyard.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest / "dockyard.yml"


def run_store(work: Path, url: str, jobs: int, minutes: int, overlap: bool) -> dict:
    config = make_project(work, jobs, overlap)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update({"DOCKYARD_STORE_URL": url, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    subprocess.run(
        [*DOCKYARD, "deploy", "--config", str(config)], cwd=config.parent, env=env, check=True, capture_output=True
    )
    # speed 1 from a start 15 s before a minute boundary: real seconds, first fire 15 s in
    origin = time.time()
    start = datetime(2026, 1, 5, 0, 0, 45, tzinfo=UTC)
    env.update(
        {"DOCKYARD_CLOCK_WARP": start.isoformat().replace("+00:00", "Z") + "*1", "DOCKYARD_CLOCK_ORIGIN": repr(origin)}
    )
    log = work / "scheduler.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*DOCKYARD, "scheduler", "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    minute_times = [start + timedelta(seconds=15 + 60 * m) for m in range(minutes)]
    store = Store(url)

    def fired_rows():
        with store.engine.connect() as conn:
            return conn.execute(
                select(fires.c.scheduled_for, fires.c.created_at).where(fires.c.fire_key.like("cron:%"))
            ).all()

    try:
        time.sleep(max(0.0, origin + 15 + 60 * (minutes - 1) + 1 - time.time()))
        deadline = time.time() + 90
        while time.time() < deadline:
            last = sum(1 for r in fired_rows() if r.scheduled_for == minute_times[-1])
            if last >= jobs or proc.poll() is not None:
                break
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    rows = fired_rows()
    store.close()
    by_minute: dict[datetime, list[float]] = defaultdict(list)
    for r in rows:
        by_minute[r.scheduled_for].append((r.created_at - r.scheduled_for).total_seconds())
    out = []
    for i, at in enumerate(sorted(by_minute)):
        late = by_minute[at]
        out.append(
            {
                "minute": i + 1,
                "scheduled_for": at.isoformat(),
                "fired": len(late),
                "p50_s": round(pct(late, 0.5), 3),
                "p95_s": round(pct(late, 0.95), 3),
                "max_s": round(max(late), 3),
            }
        )
    return {
        "jobs": jobs,
        "overlap": overlap,
        "minutes_run": minutes,
        "scheduled_minutes": len(out),
        "expected_minutes": [t.isoformat() for t in minute_times],
        "per_minute": out,
        "scheduler_exit": proc.returncode,
        "log_tail": log.read_text(errors="replace")[-1500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--overlap", action="store_true")
    parser.add_argument(
        "--pg-admin", default=os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    results: dict = {"commit": commit, "load_before": os.getloadavg()}
    for store in args.stores.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"dockyard-bench-fires-{store}-"))
        pg_name = None
        try:
            if store == "sqlite":
                url = f"sqlite:///{work / 'dockyard.db'}"
            else:
                pg_name = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(args.pg_admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{pg_name}"')
                url = args.pg_admin.rsplit("/", 1)[0] + "/" + pg_name
            res = run_store(work, url, args.jobs, args.minutes, args.overlap)
        finally:
            if pg_name:
                with psycopg.connect(args.pg_admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            shutil.rmtree(work, ignore_errors=True)
        results[store] = res
        print(
            f"{store}: {args.jobs} jobs on '* * * * *'{' (allow_overlap)' if args.overlap else ''}, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for m in res["per_minute"]:
            print(
                f"  minute {m['minute']}: {m['fired']}/{args.jobs} fired, lateness p50 {m['p50_s']:.3f} s, "
                f"p95 {m['p95_s']:.3f} s, max {m['max_s']:.3f} s",
                flush=True,
            )
        if len(res["per_minute"]) < args.minutes:
            print(f"  only {len(res['per_minute'])} of {args.minutes} minutes fired at all", flush=True)
    results["load_after"] = os.getloadavg()
    out = ROOT / "bench" / "results" / f"scheduler-fires-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
