"""The warm-server side of ``bench/overhead.py --server``: the job triggered through a running
``dockyard serve`` (one worker slot, warm: dbt imported, a manifest kept per environment),
measured from the trigger request to the run's final status.

* ``wall_s``: from just before the trigger request (``POST /api/v1/jobs/<id>/trigger``) to the
  run's ``finished_at`` (same machine, same clock); the end is seen by polling the runs list
  every ``POLL_S`` (``seen_final_s``), a light route, so that the measurement does not take
  CPU from dbt;
* ``first_node_s``: the first node's ``started_at`` (dbt's own time, from the API) minus the
  time of the trigger request;
* memory, sampled over the server's whole process tree (:class:`overhead.TreeSampler`):
  ``peak_rss_single`` is the largest one process (the step's dbt child, whose RSS counts
  the pages it shares with the warm parent), ``peak_pss`` the tree's PSS, ``idle_pss`` the
  tree's PSS just before the trigger (so ``peak_pss - idle_pss`` is what the run added);
* ``cpu_s``: CPU time of the tree during the run (``psutil`` times of every process, before
  and after, children that ended included through their parents' ``children_*`` times).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from dockyard.client import Client

POLL_S = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _tree_cpu(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


class WarmServer:
    def __init__(self, bin_dir: Path, proj: Path, config: Path, env: dict, log: Path, job: str):
        self.job = job
        self.job_id: int | str = job
        made = subprocess.run(
            [str(bin_dir / "dockyard"), "tokens", "create", f"bench-{os.getpid()}-{time.time():.0f}"]
            + ["--scope", "admin", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=proj,
        )
        self.token = made.stdout.strip().splitlines()[-1]
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = open(log, "w")  # noqa: SIM115 - the server's life
        argv = [str(bin_dir / "dockyard"), "serve", "--port", self.url.rsplit(":", 1)[1], "--workers", "1"]
        self.proc = subprocess.Popen(
            [*argv, "--config", str(config)], cwd=proj, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.client = Client(self.url, self.token)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"dockyard serve exited: see {log}")
            try:
                health = httpx.get(f"{self.url}/api/v1/health", timeout=5).json()
                if int(health.get("workers") or 0) >= 1:
                    return
            except (httpx.HTTPError, ValueError, TypeError):
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit("dockyard serve did not answer with a live worker in 120 s")

    def run(self, interval: float, sampler_cls) -> dict:
        with sampler_cls(self.proc.pid, interval) as idle:
            time.sleep(max(interval * 3, 0.2))
        cpu0 = _tree_cpu(self.proc.pid)
        with sampler_cls(self.proc.pid, interval) as s:
            t0 = time.time()
            p0 = time.perf_counter()
            queued = self.client.trigger(self.job_id, cause="bench/overhead.py --server")
            run_id = queued.id
            # the light list route (no node results: GET /runs/{id} with 1,500 of them every
            # 50 ms would take a core from dbt); the end is the run's own finished_at
            while not any(r.id == run_id and r.final for r in self.client.runs(job_id=queued.job_id, limit=5)):
                time.sleep(POLL_S)
            run = self.client.run(run_id)
            wall = _ts(run.raw.get("finished_at")) - t0
            seen = time.perf_counter() - p0
        cpu = _tree_cpu(self.proc.pid) - cpu0
        starts = [_ts(n.get("started_at")) for n in self.client.nodes(run_id) if n.get("started_at")]
        logs = self.client.request("GET", f"/api/v1/runs/{run_id}/logs").text
        return {
            "exit_code": 0 if run.succeeded else 1,
            "status": run.status,
            "run_id": run_id,
            "wall_s": wall,
            "seen_final_s": seen,
            "cpu_s": cpu,
            "first_node_s": (min(starts) - t0) if starts else None,
            "peak_pss": s.peak_pss,
            "idle_pss": idle.peak_pss,
            "peak_rss_single": s.peak_rss_single,
            "peak_own": s.peak_own,
            "peak_root_pss": s.peak_root_pss,
            "peak_procs": s.peak_procs,
            "samples": s.samples,
            "warm_parses": logs.count("[dockyard] warm: parsing"),
            "warm_hits": logs.count("[dockyard] warm: no parse"),
            "loadavg_1m_end": os.getloadavg()[0],
        }

    def stop(self) -> None:
        self.client.close()
        stop_server(self.proc, self.log)


def stop_server(proc: subprocess.Popen, log) -> None:
    """SIGTERM a ``dockyard serve``, SIGKILL after 90 s, then close its log (bench/airflow_models.py too)."""
    proc.terminate()
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
