"""The per-model Airflow DAG of ``dockyard export airflow`` against one dbt invocation and
against Astronomer Cosmos (one dbt invocation per model), on a generated 100-model project
(issue 12, Performance: within 1.5x of the single invocation, at least 5x faster than Cosmos).

    .venv/bin/python bench/airflow_models.py [--models 100] [--rounds 3] [--threads 4]
                                             [--sides single,ours,cosmos] [--cosmos-rounds R]
                                             [--workdir DIR]

Setup (untimed): ``gen_project.py --models N`` (DuckDB, target ``dev``) into ``--workdir``
(default ``/tmp/dockyard-airflow-bench``, reused), ``dbt seed`` and ``dbt snapshot`` once
(the raw data, and the snapshot one staging model reads), a ``dockyard.yml`` with one job
``models`` = ``dbt run`` at ``--threads``, an admin token (``dockyard tokens create``) and a
real ``dockyard serve`` (127.0.0.1, a free port, one worker slot), one untimed run of the job
(the manifest the export reads, and a warm partial parse), ``dockyard export airflow models
--server``, and one Airflow virtual environment (apache-airflow, astronomer-cosmos,
dbt-core>=1.10,<1.12, dbt-duckdb; cached under ``~/.cache/dockyard-bench-venvs``) with an
``AIRFLOW_HOME`` (SQLite) per DAG, so each ``dag.test()`` parses only its own DAG file.

Then ``--rounds`` rounds; in each, every side runs the same N models on the same DuckDB file:

* **single**: ``dbt parse`` (untimed, so it is warm), then one ``dbt run --threads T`` process
  (the dbt of this venv, the one dockyard runs): wall time of the process.
* **ours**: the exported DAG (a trigger task, then one ``DockyardModelSensor`` per model with
  the dbt dependencies; defaults: reschedule mode) run with ``dag.test()``; dbt runs once, in
  the server's worker. Wall time from the DAG run's start to the last task's end.
* **cosmos**: a ``DbtDag`` (``ExecutionMode.LOCAL``, one dbt ``run --select <model>`` per
  model task, through ``dbtRunner`` in the task's process, Cosmos's default when dbt is
  importable; manifest load mode; ``TestBehavior.NONE`` so that it runs the same models and
  nothing else) run with ``dag.test()``: the same span.

``dag.test()`` runs the tasks one at a time in one process (as Airflow's own debugging path
does), for both DAGs. Prints a table (median, min-max, per-round figures) and the ratios
ours/single (target <= 1.5) and cosmos/ours (target >= 5), and appends JSON lines to
``bench/results/airflow-models-<time>.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GEN = Path("/work/shared/bench/gen_project.py")
VENVS = Path.home() / ".cache" / "dockyard-bench-venvs"
PACKAGES = ["apache-airflow==3.3.2", "astronomer-cosmos", "dbt-core>=1.10,<1.12", "dbt-duckdb", "httpx"]
BIN = Path(sys.executable).parent
JOB = "models"

COSMOS_DAG = """
from pathlib import Path
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode, TestBehavior

PROJECT = Path({project!r})
dag = DbtDag(
    dag_id="cosmos_models",
    project_config=ProjectConfig(dbt_project_path=PROJECT, manifest_path=PROJECT / "target" / "manifest.json"),
    profile_config=ProfileConfig(
        profile_name="bench", target_name="dev", profiles_yml_filepath=PROJECT / "profiles.yml"
    ),
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL),
    render_config=RenderConfig(
        load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.NONE, select=["path:models"]
    ),
    operator_args={{"install_deps": False}},
    schedule=None,
    catchup=False,
)
"""

RUN_DAG = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag(sys.argv[2])
called = time.time()
dr = dag.test()
returned = time.time()
tis = dr.get_task_instances()
ends = [ti.end_date.timestamp() for ti in tis if ti.end_date]
print("RESULT " + json.dumps({
    "state": str(dr.state), "tasks": len(tis), "called": called, "returned": returned,
    "dag_start": dr.start_date.timestamp(), "last_end": max(ends) if ends else None,
    "first_start": min(ti.start_date.timestamp() for ti in tis if ti.start_date),
    "not_success": sorted(f"{ti.task_id}={ti.state}" for ti in tis if str(ti.state) != "success"),
    "tries": sum(ti.try_number for ti in tis),
}))
"""


def sh(cmd: list[str], log: Path, env: dict, cwd: Path | None = None, timeout: float = 1800) -> float:
    """Run ``cmd`` (output to ``log``); its wall time; exits with the log's tail on failure."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=timeout)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return elapsed


def airflow_python() -> Path:
    """The cached venv with Airflow, Cosmos and dbt (made once)."""
    folder = VENVS / ("airflow-cosmos-" + hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()[:10])
    python = folder / "bin" / "python"
    if (folder / ".ok").exists() and python.exists():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PACKAGES]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"cannot install {' '.join(PACKAGES)}: {proc.stderr[-3000:]}")
    (folder / ".ok").write_text(" ".join(PACKAGES))
    return python


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_project(work: Path, models: int, threads: int, env: dict) -> Path:
    project = work / f"p{models}"
    if not (project / "dbt_project.yml").exists():
        subprocess.run([str(BIN / "python"), str(GEN), "--models", str(models), "--out", str(project)], check=True)
    shutil.rmtree(project / ".dockyard", ignore_errors=True)
    (project / "dockyard.yml").write_text(
        f"environments:\n  dev:\n    target: dev\n    threads: {threads}\n"
        f'jobs:\n  - name: "{JOB}"\n    environment: dev\n    commands: ["dbt run"]\n'
    )
    dbt = [str(BIN / "dbt"), "--no-use-colors"]
    for step in ("seed", "snapshot"):
        sh([*dbt, step, "--target", "dev"], work / "logs" / f"setup-{step}.log", env, cwd=project)
    return project


class Server:
    def __init__(self, project: Path, work: Path, env: dict):
        config = project / "dockyard.yml"
        made = subprocess.run(
            [
                str(BIN / "dockyard"),
                "tokens",
                "create",
                f"bench-{os.getpid()}-{time.time():.0f}",
                "--scope",
                "admin",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        self.token = made.stdout.strip().splitlines()[-1]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(work / "logs" / "serve.log", "w")  # noqa: SIM115 - the server's life
        cmd = [str(BIN / "dockyard"), "serve", "--port", str(port), "--workers", "1", "--config", str(config)]
        self.proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("dockyard serve exited: " + (work / "logs" / "serve.log").read_text()[-3000:])
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit("dockyard serve did not answer in 90 s")

    def warm(self) -> int:
        from dockyard.client import Client

        with Client(self.url, self.token) as client:
            run = client.wait(client.trigger(JOB, cause="bench warm-up").id, poll=0.5, timeout=600)
        if not run.succeeded:
            raise SystemExit(f"warm-up run {run.id} ended {run.status}: {run.reason}")
        return run.id

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"dockyard serve exited ({self.proc.returncode}): see {self.log.name}")
        httpx.get(f"{self.url}/api/v1/health", timeout=10).raise_for_status()

    def last_run(self, last_end: float) -> dict:
        """The DAG's dockyard run: its dbt span, and the last task's end after it."""
        from dockyard.client import Client

        with Client(self.url, self.token) as client:
            run = client.run(client.runs(limit=1)[0].id).raw

        def ts(key: str) -> float:
            return datetime.fromisoformat(str(run[key]).replace("Z", "+00:00")).timestamp()

        return {
            "dockyard_run": run["id"],
            "run_queued_to_finished_s": ts("finished_at") - ts("created_at"),
            "tail_after_run_s": last_end - ts("finished_at"),
        }

    def stop(self) -> None:
        from warm_server import stop_server  # bench/ is on sys.path when a bench script runs

        stop_server(self.proc, self.log)


def airflow_home(work: Path, name: str, dag_text: str, python: Path, env: dict, src: Path = ROOT / "src") -> dict:
    home = work / "airflow" / name
    dags = home / "dags"
    shutil.rmtree(home, ignore_errors=True)
    dags.mkdir(parents=True)
    (dags / f"{name}.py").write_text(dag_text)
    env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "PATH": f"{python.parent}:{env['PATH']}",
        "PYTHONPATH": str(src),
    }
    sh([str(python), "-m", "airflow", "db", "migrate"], work / "logs" / f"{name}-migrate.log", env, timeout=600)
    return env


def run_dag(python: Path, env: dict, dag_id: str, log: Path) -> dict:
    sh([str(python), "-c", RUN_DAG, env["AIRFLOW__CORE__DAGS_FOLDER"], dag_id], log, env, timeout=3600)
    line = [x for x in log.read_text().splitlines() if x.startswith("RESULT ")][-1]
    got = json.loads(line[len("RESULT ") :])
    if "success" not in got["state"] or got["not_success"]:
        raise SystemExit(f"{dag_id} did not succeed: {got}; see {log}")
    got["wall"] = got["last_end"] - got["dag_start"]
    return got


def code_state() -> dict:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "src_dirty": bool(git("status", "--porcelain", "--", "src"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cosmos-rounds", type=int, default=None, help="rounds with Cosmos (default: --rounds)")
    ap.add_argument("--sides", default="single,ours,cosmos")
    ap.add_argument(
        "--src", type=Path, default=ROOT / "src", help="the dockyard source the DAG imports (to compare two versions)"
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/dockyard-airflow-bench"))
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    sides = args.sides.split(",")
    work = args.workdir
    (work / "logs").mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    results = args.results / f"airflow-models-{stamp}.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "VIRTUAL_ENV"))}
    env.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"})
    project = setup_project(work, args.models, args.threads, env)
    env["DBT_PROFILES_DIR"] = str(project)
    python = airflow_python()
    server = Server(project, work, env)
    times: dict[str, list[float]] = {s: [] for s in sides}
    meta = {
        "src": str(args.src),
        "date": stamp,
        "models": args.models,
        "threads": args.threads,
        **code_state(),
        "cpus": os.cpu_count(),
    }
    try:
        server.warm()
        dag = work / "dockyard_models.py"
        sh(
            [str(BIN / "dockyard"), "export", "airflow", JOB, "--server", server.url, "--out", str(dag)],
            work / "logs" / "export.log",
            {**env, "DOCKYARD_TOKEN": server.token},
        )
        dag_id = next(x.split("'")[1] for x in dag.read_text().splitlines() if "dag_id=" in x)
        homes = {}
        if "ours" in sides:
            ours_env = {**env, "DOCKYARD_TOKEN": server.token}
            homes["ours"] = airflow_home(work, "ours", dag.read_text(), python, ours_env, args.src)
        if "cosmos" in sides:
            sh([str(BIN / "dbt"), "parse"], work / "logs" / "cosmos-parse.log", env, cwd=project)
            homes["cosmos"] = airflow_home(work, "cosmos", COSMOS_DAG.format(project=str(project)), python, env)
        dbt = [str(BIN / "dbt"), "--no-use-colors"]
        with open(results, "a") as out:
            for rnd in range(1, args.rounds + 1):
                for side in sides:
                    if side == "cosmos" and args.cosmos_rounds is not None and rnd > args.cosmos_rounds:
                        continue
                    log = work / "logs" / f"{side}-{rnd}.log"
                    if side == "single":
                        sh([*dbt, "parse", "--target", "dev"], work / "logs" / f"parse-{rnd}.log", env, cwd=project)
                        run = [*dbt, "run", "--target", "dev", "--threads", str(args.threads)]
                        row = {"wall": sh(run, log, env, cwd=project)}
                    else:
                        server.check()
                        row = run_dag(python, homes[side], dag_id if side == "ours" else "cosmos_models", log)
                        row["to_first_task_s"] = row["first_start"] - row["dag_start"]
                        if side == "ours":
                            row.update(server.last_run(row["last_end"]))
                    row.update(side=side, round=rnd, loadavg_1m=os.getloadavg()[0])
                    times[side].append(row["wall"])
                    out.write(json.dumps({**meta, **row}) + "\n")
                    out.flush()
                    extra = "".join(
                        f"  {k} {row[k]:.2f}"
                        for k in ("to_first_task_s", "run_queued_to_finished_s", "tail_after_run_s")
                        if k in row
                    )
                    print(
                        f"round {rnd} {side:7s} {row['wall']:7.2f} s  load {row['loadavg_1m']:.2f}{extra}", flush=True
                    )
            summary = report(times)
            out.write(json.dumps({**meta, "summary": summary}) + "\n")
    finally:
        server.stop()
    print(f"results: {results}")


def report(times: dict[str, list[float]]) -> dict:
    med = {s: statistics.median(v) for s, v in times.items() if v}
    print(f"\n{'side':8s} {'median s':>9s} {'min-max':>15s}  per round")
    for side, values in times.items():
        if values:
            each = ", ".join(f"{v:.2f}" for v in values)
            print(f"{side:8s} {med[side]:9.2f} {min(values):7.2f}-{max(values):<7.2f}  {each}")
    ratios = {}
    if "ours" in med and "single" in med:
        ratios["ours/single"] = med["ours"] / med["single"]
        print(f"ours/single  {ratios['ours/single']:.2f}x  (target <= 1.5x)")
    if "cosmos" in med and "ours" in med:
        ratios["cosmos/ours"] = med["cosmos"] / med["ours"]
        print(f"cosmos/ours  {ratios['cosmos/ours']:.2f}x  (target >= 5x)")
    return {"median_s": med, "runs_s": times, "ratios": ratios}


if __name__ == "__main__":
    main()
