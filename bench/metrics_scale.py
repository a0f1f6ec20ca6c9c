"""Metrics over a big store: a Prometheus scrape, the metrics API, the cost report and a
slowdown check, timed.

    .venv/bin/python bench/metrics_scale.py [--backend sqlite|postgresql|both] [--runs 10000]
                                            [--models 50] [--tests 50] [--repeat 3]
                                            [--pg-url postgresql://postgres@127.0.0.1:5432/test]

For each backend: a fresh store (a SQLite file, or a new PostgreSQL database created through
``--pg-url`` and dropped at the end) seeded straight into the tables with ``--runs`` final
runs over 90 days (two jobs, two environments), each with ``--models`` model and ``--tests``
test results (``runs x (models + tests)`` node rows: 1,000,000 by default), each run counted
in the model duration histogram as the ``dockyard.metrics`` consumer does. Then, ``--repeat``
times each: the ``/metrics`` exposition (:func:`dockyard.app.prometheus.exposition`),
``app.metrics.models(days=7)``, ``app.metrics.tests(days=7)``, ``app.costs.report(days=30)``
and the slowdown consumer's check of the newest run (its baselines for every model). Prints
the median and max seconds of each, and the size of the exposition.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dockyard.app import App  # noqa: E402
from dockyard.app.prometheus import exposition  # noqa: E402
from dockyard.app.slowdown import SlowdownConsumer  # noqa: E402
from dockyard.store.tables import node_results, runs  # noqa: E402

CONFIG = """\
version: 1
environments: {prod: {target: prod}, dev: {target: dev}}
jobs:
  - {name: nightly, environment: prod, commands: ["dbt build"]}
  - {name: hourly, environment: dev, commands: ["dbt build"]}
notifications: [{name: ops, type: slack, webhook_url: "http://127.0.0.1:9/x"}]
alerts: {allow_hosts: ["127.0.0.1"]}
"""
BATCH = 20_000


def seed(app: App, count: int, models: int, tests: int) -> None:
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=90)
    step = timedelta(days=90) / count
    base = {i: rng.uniform(0.5, 60.0) for i in range(models)}
    run_rows, node_rows = [], []
    with app.store.db.write() as conn:
        for r in range(1, count + 1):
            finished = start + step * r
            job, env = ("nightly", "prod") if r % 2 else ("hourly", "dev")
            status = "success" if r % 20 else "error"
            run_rows.append(
                dict(
                    id=r,
                    job_name=job,
                    environment=env,
                    status=status,
                    status_code=10 if status == "success" else 20,
                    trigger="scheduled",
                    created_at=finished - timedelta(minutes=10),
                    updated_at=finished,
                    queued_at=finished - timedelta(minutes=10),
                    started_at=finished - timedelta(minutes=8),
                    finished_at=finished,
                    lease_epoch=1,
                    coalesced=0,
                    attempt=1,
                    priority=0,
                    has_warnings=False,
                )
            )
            for i in range(models):
                node_rows.append(
                    dict(
                        run_id=r,
                        step_index=1,
                        unique_id=f"model.bench.m{i:04d}",
                        name=f"m{i:04d}",
                        resource_type="model",
                        status="success",
                        execution_time_s=base[i] * rng.uniform(0.8, 1.2),
                        rows_affected=rng.randint(0, 10**6),
                        adapter_response={"_message": "OK", "rows_affected": 1},
                    )
                )
            for i in range(tests):
                node_rows.append(
                    dict(
                        run_id=r,
                        step_index=1,
                        unique_id=f"test.bench.t{i:04d}",
                        name=f"t{i:04d}",
                        resource_type="test",
                        status="pass" if rng.random() > 0.01 else "fail",
                        execution_time_s=rng.uniform(0.01, 0.5),
                        rows_affected=None,
                        adapter_response=None,
                    )
                )
            if len(node_rows) >= BATCH:
                conn.execute(runs.insert(), run_rows)
                conn.execute(node_results.insert(), node_rows)
                run_rows, node_rows = [], []
        if run_rows:
            conn.execute(runs.insert(), run_rows)
        if node_rows:
            conn.execute(node_results.insert(), node_rows)
        if app.store.dialect == "postgresql":
            conn.exec_driver_sql("SELECT setval('runs_id_seq', (SELECT max(id) FROM runs))")
            conn.exec_driver_sql("ANALYZE")


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times), result


def bench(backend: str, args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="dockyard-metrics-bench-"))
    (folder / "dockyard.yml").write_text(CONFIG)
    url, drop = None, None
    if backend == "postgresql":
        import psycopg

        name = "bench_metrics_" + uuid.uuid4().hex[:8]
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.pg_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name

        def drop() -> None:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    app = App.open(folder / "dockyard.yml", url)
    try:
        app.sync()
        t = time.perf_counter()
        seed(app, args.runs, args.models, args.tests)
        rows = args.runs * (args.models + args.tests)
        for run_id in range(1, args.runs + 1):  # what the dockyard.metrics consumer does as runs end
            app.store.metric_state.count_run(run_id)
        print(f"{backend}: seeded {args.runs:,} runs, {rows:,} node rows in {time.perf_counter() - t:.0f} s")
        consumer = SlowdownConsumer(app)
        cases = {
            "GET /metrics (exposition)": lambda: exposition(app),
            "app.metrics.models(days=7)": lambda: app.metrics.models(days=7),
            "app.metrics.tests(days=7)": lambda: app.metrics.tests(days=7),
            "app.metrics.jobs(days=7)": lambda: app.metrics.jobs(days=7),
            "app.costs.report(days=30)": lambda: app.costs.report(days=30),
            "slowdown check of a run": lambda: consumer.check_run(args.runs),
        }
        for label, fn in cases.items():
            median, worst, result = timed(fn, args.repeat)
            extra = f"  ({len(result):,} bytes)" if isinstance(result, bytes) else ""
            print(f"  {label:32s} median {median:7.3f} s   max {worst:7.3f} s{extra}")
    finally:
        app.close()
        if drop:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args)


if __name__ == "__main__":
    main()
