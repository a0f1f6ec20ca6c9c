"""Filling a store for bench/ui_pages.py: many finished runs, and one big run of a manifest.

Straight through SQLAlchemy Core (``app.store.db.write()``), in batches: 100,000 runs take
seconds, where going through the queue and the recorder would take hours.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockyard.app import App
from dockyard.store.tables import artifacts, node_results, run_steps, runs

BATCH = 5000
STATUSES = [("success", 10)] * 16 + [("error", 20)] * 3 + [("cancelled", 30)]
TRIGGERS = ["schedule"] * 6 + ["manual", "api", "github_pr"]
BRANCHES = ["main"] * 5 + ["feature/orders", "fix/customers", None]


def seed_runs(app: App, count: int, *, days: int = 200) -> None:
    """``count`` finished runs over the last ``days`` days, 3 steps each."""
    jobs = [(r.id, r.name, r.environment) for r in app.jobs()]
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(days=days)
    step = timedelta(seconds=days * 86400 / max(count, 1))
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        rows = []
        for i in range(done, done + n):
            job_id, name, env = jobs[i % len(jobs)]
            status, code = rng.choice(STATUSES)
            trigger = rng.choice(TRIGGERS)
            pr = rng.randint(1, 300) if trigger == "github_pr" else None
            created = start + step * i
            took = timedelta(seconds=rng.randint(20, 900))
            rows.append(
                {
                    "job_id": job_id,
                    "job_name": name,
                    "environment": env,
                    "status": status,
                    "status_code": code,
                    "has_warnings": rng.random() < 0.1,
                    "trigger": trigger,
                    "cause": f"bench {trigger}",
                    "attempt": 1,
                    "priority": 0,
                    "overrides": {"github_pull_request_id": pr} if pr else None,
                    "pr_number": pr,
                    "git_sha": hashlib.sha1(str(i).encode()).hexdigest(),
                    "git_branch": rng.choice(BRANCHES),
                    "created_at": created,
                    "updated_at": created + took,
                    "queued_at": created,
                    "started_at": created + timedelta(seconds=2),
                    "finished_at": created + took,
                    "lease_epoch": 1,
                    "coalesced": 0,
                    "reason": "step_failed" if code == 20 else ("cancelled" if code == 30 else None),
                }
            )
        with app.store.db.write() as conn:
            ids = conn.execute(runs.insert().returning(runs.c.id), rows).scalars().all()
            conn.execute(
                run_steps.insert(),
                [
                    {
                        "run_id": rid,
                        "index": k,
                        "command": cmd,
                        "status": "success" if k < 3 or rows[j]["status"] == "success" else rows[j]["status"],
                        "exit_code": 0 if k < 3 or rows[j]["status"] == "success" else 1,
                        "started_at": rows[j]["started_at"],
                        "finished_at": rows[j]["finished_at"],
                    }
                    for j, rid in enumerate(ids)
                    for k, cmd in enumerate(("dbt seed", "dbt run", "dbt test"), 1)
                ],
            )
        done += n
        print(f"  seeded {done:,} runs", end="\r", flush=True)
    print()


def schedule(manifest: dict, threads: int, rng: random.Random) -> list[tuple[str, float, float, int]]:
    """(unique_id, start s, end s, thread) of every model: a ``threads``-thread build in DAG
    order (a node starts when its parents are done and a thread is free)."""
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    parents = {k: [p for p in v["depends_on"]["nodes"] if p in models] for k, v in models.items()}
    depth: dict[str, int] = {}

    def level(uid: str) -> int:
        if uid not in depth:
            depth[uid] = 1 + max((level(p) for p in parents[uid]), default=0)
        return depth[uid]

    order = sorted(models, key=lambda u: (level(u), u))
    free = [0.0] * threads
    end: dict[str, float] = {}
    out = []
    for uid in order:
        t = min(range(threads), key=lambda i: free[i])
        start = max([free[t], *(end[p] for p in parents[uid])])
        took = rng.uniform(0.2, 6.0) * (3 if "marts" in models[uid]["path"] else 1)
        end[uid] = start + took
        free[t] = end[uid]
        out.append((uid, start, end[uid], t + 1))
    return out


def big_run(app: App, manifest_path: Path, *, threads: int = 4) -> tuple[int, int]:
    """One successful run of "Daily Production Run" in prod: a ``dbt build`` step with a node
    row per model of the manifest, and the manifest as its artifact. Its id and node count."""
    job_id = app.job_ids()["Daily Production Run"]
    manifest = json.loads(manifest_path.read_text())
    rng = random.Random(7)
    timeline = schedule(manifest, threads, rng)
    span = max(e for _, _, e, _ in timeline)
    began = datetime.now(UTC) - timedelta(seconds=span + 60)
    with app.store.db.write() as conn:
        run_id = conn.execute(
            runs.insert().returning(runs.c.id),
            {
                "job_id": job_id,
                "job_name": "Daily Production Run",
                "environment": "prod",
                "status": "success",
                "status_code": 10,
                "trigger": "schedule",
                "cause": "bench: 2,000-node build",
                "git_branch": "main",
                "created_at": began - timedelta(seconds=5),
                "updated_at": began + timedelta(seconds=span),
                "queued_at": began - timedelta(seconds=5),
                "started_at": began,
                "finished_at": began + timedelta(seconds=span + 1),
                "lease_epoch": 1,
            },
        ).scalar_one()
        conn.execute(
            run_steps.insert(),
            {
                "run_id": run_id,
                "index": 1,
                "command": "dbt build",
                "status": "success",
                "exit_code": 0,
                "started_at": began,
                "finished_at": began + timedelta(seconds=span + 1),
            },
        )
        rows = []
        for uid, start, end, thread in timeline:
            node = manifest["nodes"][uid]
            rows.append(
                {
                    "run_id": run_id,
                    "step_index": 1,
                    "unique_id": uid,
                    "name": node["name"],
                    "resource_type": "model",
                    "status": "success",
                    "started_at": began + timedelta(seconds=start),
                    "finished_at": began + timedelta(seconds=end),
                    "execution_time_s": round(end - start, 3),
                    "rows_affected": rng.randint(0, 5_000_000),
                    "adapter_response": {"_message": "OK", "rows_affected": 1},
                    "message": "OK",
                    "thread": f"Thread-{thread} (worker)",
                }
            )
        conn.execute(node_results.insert(), rows)
        folder = app.state_dir / "runs" / str(run_id)
        target = folder / "artifacts" / "step-1"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(manifest_path, target / "manifest.json")
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        (folder / "logs" / "step-1.log").write_text("bench: a generated build's log\n")
        digest = hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
        conn.execute(
            artifacts.insert(),
            {
                "run_id": run_id,
                "step_index": 1,
                "name": "manifest.json",
                "path": "step-1/manifest.json",
                "size": (target / "manifest.json").stat().st_size,
                "sha256": digest,
            },
        )
        conn.execute(runs.update().where(runs.c.id == run_id).values(artifacts_dir=str(folder)))
    return run_id, len(rows)
