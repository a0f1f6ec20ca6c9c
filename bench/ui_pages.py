"""The web UI at scale: the runs list over 100,000 runs, a run page with 2,000 nodes, and the
lineage graph's time to interactive at 2,000 nodes in Chromium.

    .venv/bin/python bench/ui_pages.py [--runs 100000] [--models 2000] [--requests 200]
                                       [--workdir /tmp/dockyard-bench-ui] [--no-browser]

1. A generated project of ``--models`` models (``/work/shared/bench/gen_project.py``, then
   ``dbt parse``: a real manifest.json; kept in ``--workdir`` between runs).
2. A copy of examples/shop with a fresh SQLite store, filled straight through SQLAlchemy Core
   with ``--runs`` finished runs (3 steps each; jobs, statuses, triggers, branches and pull
   requests mixed), then ONE run of "Daily Production Run" in ``prod`` whose ``dbt build``
   step has a node row for every model of the manifest (timings of a 4-thread build in DAG
   order) and that manifest as its artifact: the newest successful prod run, so the lineage
   page of ``prod`` draws it.
3. Server time, in process (``httpx.ASGITransport`` over ``create_site``; no network): the
   runs list (``/runs``) under several filters and pages, ``--requests`` requests each
   (after 5 warm-up requests), and the big run's page; p50/p95/max per URL.
4. The lineage graph in Chromium (``/usr/bin/chromium``) against a real
   ``dockyard serve --workers 0``: from navigation start to the page's ready mark
   (``window.dockyardReady``, set by lineage.js once the graph is drawn and usable), 10 loads
   in fresh contexts; p50/max.

Targets (issue 11): runs list p95 < 150 ms, run page < 500 ms, lineage TTI < 2 s. Prints a
table and appends a JSON line to ``bench/results/ui-pages-<time>.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ui_fill import big_run, seed_runs  # noqa: E402

from dockyard.app import App  # noqa: E402

GEN = Path("/work/shared/bench/gen_project.py")
CHROMIUM = "/usr/bin/chromium"


def manifest_of(models: int, workdir: Path) -> Path:
    """The manifest.json of a generated project of ``models`` models (made once)."""
    project = workdir / f"p{models}"
    manifest = project / "target" / "manifest.json"
    if manifest.exists():
        return manifest
    if not project.exists():
        subprocess.run([sys.executable, str(GEN), "--models", str(models), "--out", str(project)], check=True)
    dbt = Path(sys.executable).with_name("dbt")
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run(
        [str(dbt), "parse", "--profiles-dir", str(project), "--project-dir", str(project)],
        check=True,
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return manifest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000, 1)

    return {"n": len(s), "p50_ms": pct(50), "p95_ms": pct(95), "max_ms": round(s[-1] * 1000, 1)}


async def server_times(app: App, urls: list[str], requests: int) -> dict[str, dict]:
    from dockyard.ui.site import create_site

    site = create_site(app)
    transport = httpx.ASGITransport(app=site, client=("127.0.0.1", 50000))
    out = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
        headers = {"Accept": "text/html"}
        for url in urls:
            for _ in range(5):
                warm = await client.get(url, headers=headers)
                assert warm.status_code == 200, f"{url}: {warm.status_code} {warm.text[:300]}"
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.get(url, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, url
            out[url] = percentiles(samples) | {"bytes": len(response.content)}
            print(f"  {url:60} p50 {out[url]['p50_ms']:7} ms  p95 {out[url]['p95_ms']:7} ms", flush=True)
    return out


def lineage_tti(shop: Path, env: dict, loads: int, nodes: int) -> dict:
    """Navigation start to ``window.dockyardReady`` on /lineage?env=prod, ``loads`` times."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = open(shop.parent / "serve.log", "w")  # noqa: SIM115 - the server's life
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"],
        cwd=shop,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("dockyard serve did not start: " + (shop.parent / "serve.log").read_text()[-2000:])
        httpx.get(f"{base}/lineage/graph.json?env=prod", timeout=120)  # the layout's cache, once
        samples, drawn = [], None
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            for _ in range(loads):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/lineage?env=prod", wait_until="commit")
                page.wait_for_function("() => window.dockyardReady === true", timeout=60_000)
                ms = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return (window.dockyardReadyAt || performance.now()) - n.startTime; })()"
                )
                # lineage.js marks the canvas with the number of nodes it drew
                drawn = page.evaluate("Number(document.getElementById('lineage-canvas').dataset.ready)")
                samples.append(ms / 1000)
                context.close()
            browser.close()
        return percentiles(samples) | {"nodes_drawn": drawn, "nodes_in_manifest": nodes}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/dockyard-bench-ui")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"manifest of {args.models} models (generated project in {workdir})", flush=True)
    manifest = manifest_of(args.models, workdir)
    work = Path(tempfile.mkdtemp(prefix="dockyard-ui-pages-"))
    shop = work / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        shop,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (work / "db").mkdir()
    env = {**os.environ, "SHOP_DUCKDB_DIR": str(work / "db"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.pop("DOCKYARD_STORE_URL", None)
    os.environ.pop("DOCKYARD_STORE_URL", None)
    try:
        app = App.open(shop / "dockyard.yml")
        ids = app.sync()
        started = time.perf_counter()
        seed_runs(app, args.runs)
        run_id, nodes = big_run(app, manifest)
        seeded = time.perf_counter() - started
        load_before = [round(x, 2) for x in os.getloadavg()]
        print(f"seeded {args.runs:,} runs and run {run_id} with {nodes:,} nodes in {seeded:.1f} s", flush=True)
        job = ids["Daily Production Run"]
        since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d")
        list_urls = [
            "/runs",
            "/runs?status=error",
            f"/runs?job={job}",
            "/runs?trigger=schedule&environment=prod",
            "/runs?branch=main",
            "/runs?pr=42",
            f"/runs?since={since}",
            "/runs?status=cancelled&page=40",
            "/runs?page=200",
        ]
        print(f"server time, {args.requests} requests per URL, in process:", flush=True)
        lists = asyncio.run(server_times(app, list_urls, args.requests))
        page = asyncio.run(server_times(app, [f"/runs/{run_id}"], max(50, args.requests // 4)))
        app.close()
        result = {
            "time": datetime.now(UTC).isoformat(),
            "cpus": os.cpu_count(),
            "commit": commit(),
            "load_average_before": load_before,
            "runs_in_store": args.runs + 1,
            "big_run_nodes": nodes,
            "seed_seconds": round(seeded, 1),
            "runs_list": lists,
            "runs_list_worst_p95_ms": max(v["p95_ms"] for v in lists.values()),
            "run_page": page[f"/runs/{run_id}"],
        }
        if not args.no_browser:
            print(f"lineage time to interactive, {args.loads} loads in Chromium:", flush=True)
            result["lineage_tti"] = lineage_tti(shop, env, args.loads, nodes)
            tti = result["lineage_tti"]
            print(f"  /lineage?env=prod  p50 {tti['p50_ms']} ms  max {tti['max_ms']} ms")
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        out = ROOT / "bench" / "results" / f"ui-pages-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result) + "\n")
        print(
            f"runs list worst p95 {result['runs_list_worst_p95_ms']} ms (target < 150); run page p95 "
            f"{result['run_page']['p95_ms']} ms (target < 500)"
            + (
                f"; lineage TTI max {result['lineage_tti']['max_ms']} ms (target < 2000)"
                if "lineage_tti" in result
                else ""
            )
        )
        print(f"results: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
