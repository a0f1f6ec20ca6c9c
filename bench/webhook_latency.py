"""Webhook-to-first-node latency on a warm server (issue 9 target: under 3 s).

    .venv/bin/python bench/webhook_latency.py [--runs 5] [--workdir DIR]

Starts ``dockyard serve`` (one worker slot) on a copy of the shop example with
``server.github_webhook_secret`` set, sends one signed ``pull_request`` webhook to warm it
(the worker's dbt parent, the partial parse) and waits for that CI run to end; then, ``--runs``
times, sends a signed ``synchronize`` delivery and measures, from just before the POST:

* **answer**: the webhook's HTTP answer (the run is queued);
* **first node**: the first node's ``started_at`` (dbt's own timestamp, from the API).

Each run is waited for before the next delivery. Prints the figures (p50 and max) and writes
``bench/results/webhook-latency-<time>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret-" + uuid.uuid4().hex[:8]
FINAL = {"success", "error", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pull_request(number: int, action: str, sha: str) -> bytes:
    return json.dumps(
        {
            "action": action,
            "number": number,
            "pull_request": {"number": number, "head": {"sha": sha, "ref": "bench"}, "base": {"ref": "main"}},
        }
    ).encode()


def send(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }
    return client.post(f"{url}/api/webhooks/github", content=body, headers=headers)


def first_node_start(client: httpx.Client, url: str, run_id: int, timeout: float = 300) -> tuple[datetime, dict]:
    """Poll the run until it ends; the earliest node start, and the run."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        run = client.get(f"{url}/api/v1/runs/{run_id}").json()["data"]
        starts = [n["started_at"] for n in run.get("nodes") or [] if n.get("started_at")]
        if starts and first is None:
            first = min(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in starts)
        if run["status"] in FINAL or run.get("status_humanized", "").lower() in FINAL:
            if first is None:
                raise SystemExit(f"run {run_id} ended {run['status']} without a node: {json.dumps(run)[:2000]}")
            return first, run
        time.sleep(0.05)
    raise SystemExit(f"run {run_id} did not end in {timeout} s")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dockyard-webhook-bench-"))
    shop = work / "shop"
    shutil.rmtree(shop, ignore_errors=True)
    shutil.copytree(
        ROOT / "examples" / "shop",
        shop,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (work / "db").mkdir(exist_ok=True)
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + "\nserver:\n  github_webhook_secret: env:BENCH_GITHUB_SECRET\n")
    port = free_port()
    env = {
        **os.environ,
        "BENCH_GITHUB_SECRET": SECRET,
        "SHOP_DUCKDB_DIR": str(work / "db"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("DOCKYARD_STORE_URL", None)
    log = open(work / "serve.log", "w")  # noqa: SIM115 - the server's whole life
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "serve", "--port", str(port), "--workers", "1", "--config", str(config)],
        cwd=shop,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    answers, firsts = [], []
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{url}/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("dockyard serve did not start:\n" + (work / "serve.log").read_text()[-3000:])
                time.sleep(0.2)
            warm = send(client, url, pull_request(1, "opened", hashlib.sha1(b"warm").hexdigest()))
            warm.raise_for_status()
            first_node_start(client, url, warm.json()["data"]["runs"][0])
            for i in range(args.runs):
                sent_at = datetime.now(UTC)
                started = time.monotonic()
                response = send(client, url, pull_request(1, "synchronize", hashlib.sha1(str(i).encode()).hexdigest()))
                answered = time.monotonic() - started
                response.raise_for_status()
                run_id = response.json()["data"]["runs"][0]
                first, run = first_node_start(client, url, run_id)
                answers.append(answered)
                firsts.append((first - sent_at).total_seconds())
                print(f"run {run_id}: answer {answered * 1000:.0f} ms, first node {firsts[-1]:.2f} s ({run['status']})")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    result = {
        "runs": args.runs,
        "answer_ms": {"p50": round(pct(answers, 0.5) * 1000, 1), "max": round(max(answers) * 1000, 1)},
        "first_node_s": {"p50": round(pct(firsts, 0.5), 3), "max": round(max(firsts), 3)},
        "target_s": 3.0,
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"webhook-latency-{datetime.now(UTC):%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
