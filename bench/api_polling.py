"""Run-status polling through the dbt Cloud compatible API, with a big store.

    .venv/bin/python bench/api_polling.py [--backend sqlite|postgresql|both] [--runs 100000]
                                         [--rate 200] [--seconds 20] [--threads 16]
                                         [--pg-url postgresql://postgres@127.0.0.1:5432/test]

For each backend: a copy of examples/shop gets a fresh store (a SQLite file, or a new
PostgreSQL database created through ``--pg-url`` and dropped at the end) seeded directly
with ``--runs`` finished runs (3 steps and 2 artifacts each, spread over the shop's jobs and
environments); a ``read`` token is created; then a real ``dockyard serve --workers 0`` (plain
HTTP on a free loopback port: the API, the scheduler, no worker) answers

    GET /api/v2/accounts/1/runs/{random run id}/     Authorization: Token <read token>

at ``--rate`` requests a second, open loop (request *i* is due at ``start + i / rate``,
whatever the previous answers took), for ``--seconds``, from ``--threads`` threads with one
keep-alive httpx client each. Latency is measured from each request's send to its complete
answer. An error is any answer other than 200 with the run's id and a status in 1..30, or
any exception. Prints p50/p90/p99/max latency, the rate achieved and the errors per backend,
and appends a JSON line per backend to ``bench/results/api-polling-<time>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dockyard.app import App  # noqa: E402
from dockyard.store.tables import artifacts, run_steps, runs  # noqa: E402

BATCH = 5000


def seed(app: App, count: int) -> None:
    """``count`` finished runs, inserted in batches straight into the tables."""
    jobs = [(r.id, r.name, r.environment) for r in app.jobs()]
    statuses = [("success", 10)] * 8 + [("error", 20), ("cancelled", 30)]
    start = datetime.now(UTC) - timedelta(days=200)
    store = app.store
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        rows = []
        for i in range(done, done + n):
            job_id, name, env = jobs[i % len(jobs)]
            status, code = statuses[i % len(statuses)]
            created = start + timedelta(minutes=2 * i)
            rows.append(
                {
                    "job_id": job_id,
                    "job_name": name,
                    "environment": env,
                    "status": status,
                    "status_code": code,
                    "has_warnings": False,
                    "trigger": "schedule",
                    "cause": "bench",
                    "attempt": 1,
                    "priority": 0,
                    "created_at": created,
                    "updated_at": created,
                    "queued_at": created,
                    "started_at": created + timedelta(seconds=3),
                    "finished_at": created + timedelta(seconds=60),
                    "lease_epoch": 1,
                    "coalesced": 0,
                    "reason": "step_failed" if code == 20 else None,
                }
            )
        with store.db.write() as conn:
            first = conn.execute(runs.insert().returning(runs.c.id), rows).scalars().all()
            ids = list(first)
            conn.execute(
                run_steps.insert(),
                [
                    {
                        "run_id": rid,
                        "index": k,
                        "command": cmd,
                        "status": "success",
                        "exit_code": 0,
                        "started_at": rows[j]["started_at"],
                        "finished_at": rows[j]["finished_at"],
                    }
                    for j, rid in enumerate(ids)
                    for k, cmd in enumerate(("dbt seed", "dbt run", "dbt test"), 1)
                ],
            )
            conn.execute(
                artifacts.insert(),
                [
                    {"run_id": rid, "step_index": 3, "name": a, "path": f"step-3/{a}", "size": 1000, "sha256": "0" * 64}
                    for rid in ids
                    for a in ("manifest.json", "run_results.json")
                ],
            )
        done += n
        print(f"  seeded {done:,} runs", end="\r", flush=True)
    print()
    if store.dialect == "postgresql":
        # what autovacuum does soon after a bulk load; without it the planner's statistics
        # are stale and autovacuum runs during the measurement
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(url: str, token: str, ids: tuple[int, int], rate: float, seconds: float, threads: int) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    start = time.perf_counter() + 0.5

    def worker() -> None:
        rng = random.Random()
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=10) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                due = start + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                run_id = rng.randint(*ids)
                sent = time.perf_counter()
                try:
                    response = client.get(f"/api/v2/accounts/1/runs/{run_id}/")
                    elapsed = time.perf_counter() - sent
                    data = response.json().get("data") or {}
                    ok = (
                        response.status_code == 200
                        and data.get("id") == run_id
                        and data.get("status") in (1, 2, 3, 10, 20, 30)
                    )
                    problem = None if ok else f"{response.status_code} {response.text[:120]}"
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    elapsed, problem = time.perf_counter() - sent, f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        errors.append(problem)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

    return {
        "requests": len(lat),
        "achieved_rate": round(len(lat) / wall, 1),
        "p50_ms": round(pct(50), 2),
        "p90_ms": round(pct(90), 2),
        "p99_ms": round(pct(99), 2),
        "max_ms": round(lat[-1] * 1000, 2),
        "mean_ms": round(statistics.mean(lat) * 1000, 2),
        "errors": len(errors),
        "error_samples": errors[:5],
    }


def bench(backend: str, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"dockyard-poll-{backend}-"))
    shop = work / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        shop,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (work / "db").mkdir()
    env = {**os.environ, "SHOP_DUCKDB_DIR": str(work / "db"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.pop("DOCKYARD_STORE_URL", None)
    db_name, url = None, None
    if backend == "postgresql":
        import psycopg
        from sqlalchemy.engine import make_url

        db_name = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        url = make_url(args.pg_url).set(database=db_name).render_as_string(hide_password=False)
        env["DOCKYARD_STORE_URL"] = url
    proc = None
    try:
        app = App.open(shop / "dockyard.yml", url)
        app.sync()
        t0 = time.perf_counter()
        seed(app, args.runs)
        seeded_s = time.perf_counter() - t0
        _, token = app.store.tokens.create_token("bench", "read")
        ids = (1, app.store.runs.count_runs())
        app.close()
        port = free_port()
        log = open(work / "serve.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                "--workers",
                "0",
                "--port",
                str(port),
                "--config",
                str(shop / "dockyard.yml"),
            ],
            env=env,
            cwd=shop,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("dockyard serve did not start: " + (work / "serve.log").read_text()[-2000:])
        poll(base, token, ids, args.rate, 2, args.threads)  # warm-up: connections, caches
        result = poll(base, token, ids, args.rate, args.seconds, args.threads)
        result.update(
            {
                "backend": backend,
                "runs_in_store": ids[1],
                "seed_seconds": round(seeded_s, 1),
                "rate_target": args.rate,
                "seconds": args.seconds,
                "threads": args.threads,
                "cpus": os.cpu_count(),
                "time": datetime.now(UTC).isoformat(),
            }
        )
        return result
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if db_name:
            import psycopg

            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--pg-url", default=os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    out = ROOT / "bench" / "results" / f"api-polling-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        print(f"{backend}: seeding {args.runs:,} runs, then {args.rate:g} req/s for {args.seconds:g} s")
        result = bench(backend, args)
        with open(out, "a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(
            f"{backend:10} requests {result['requests']:6}  rate {result['achieved_rate']:6}/s  "
            f"p50 {result['p50_ms']:6} ms  p90 {result['p90_ms']:6} ms  p99 {result['p99_ms']:6} ms  "
            f"max {result['max_ms']:7} ms  errors {result['errors']}"
        )
        for sample in result["error_samples"]:
            print("   error:", sample)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
