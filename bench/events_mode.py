"""Time dockyard's two ways of running dbt against the plain dbt CLI.

    .venv/bin/python bench/events_mode.py [--project PATH] [--synthetic N] [--rounds 3]

For each of ``dbt run`` and ``dbt build``: the raw ``dbt`` CLI (output captured through a
pipe), dockyard's executor in ``fork`` mode and in ``subprocess`` mode (events parsed into
node results, log written, artifacts copied). Each variant keeps its own target folder
(so partial parsing works, as it does per environment in dockyard) and gets one untimed
warm-up; then ``--rounds`` rounds alternate the variants. Prints the medians.

``--synthetic N`` runs on a generated DuckDB project of N models (a chain of views and
tables, each with a not_null test) instead of the small test fixture.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dockyard.runner.executor import Executor  # noqa: E402
from dockyard.runner.invocation import preload_dbt  # noqa: E402
from dockyard.runner.plan import Recorder, RunPlan, StepPlan  # noqa: E402

DBT = str(Path(sys.executable).with_name("dbt"))


class NullRecorder(Recorder):
    def __init__(self):
        self.nodes_seen = 0

    def step_started(self, index, at):
        pass

    def nodes(self, index, nodes):
        self.nodes_seen += len(nodes)

    def log(self, index, line):
        pass

    def step_finished(self, index, status, exit_code, at, log_path):
        self.status = status

    def artifacts(self, index, refs):
        pass


def synthetic_project(dest: Path, n: int) -> Path:
    (dest / "models").mkdir(parents=True)
    (dest / "dbt_project.yml").write_text(
        "name: synth\nversion: '1.0'\nconfig-version: 2\nprofile: synth\nmodels:\n  synth:\n    +materialized: view\n"
    )
    (dest / "profiles.yml").write_text(
        "synth:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: synth.duckdb\n      threads: 2\n"
    )
    schema = ["version: 2", "models:"]
    for i in range(n):
        if i % 10 == 0:
            sql = "{{ config(materialized='table') }}\nselect range as id from range(100)"
        else:
            sql = f"select id from {{{{ ref('m{(i // 10) * 10:04d}') }}}} where id % {i % 10 + 1} = 0"
        (dest / "models" / f"m{i:04d}.sql").write_text(sql + "\n")
        schema += [f"  - name: m{i:04d}", "    columns:", "      - name: id", "        data_tests: [not_null]"]
    (dest / "models" / "schema.yml").write_text("\n".join(schema) + "\n")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=ROOT / "tests" / "fixtures" / "mini")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    try:
        if args.synthetic:
            project = synthetic_project(work / "project", args.synthetic)
        else:
            project = work / "project"
            ignore = shutil.ignore_patterns("target", "logs", "*.duckdb*")
            shutil.copytree(args.project, project, ignore=ignore)
        env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        t0 = time.perf_counter()
        preload_dbt()
        preload_s = time.perf_counter() - t0

        def dbt_args(command: str, variant: str) -> list[str]:
            return [
                *shlex.split(command),
                "--profiles-dir",
                str(project),
                "--project-dir",
                str(project),
                "--target-path",
                str(work / "targets" / variant),
                "--log-path",
                str(work / "logs"),
            ]

        def run_cli(command: str) -> float:
            t = time.perf_counter()
            proc = subprocess.run(
                [DBT, *dbt_args(command, "cli")], cwd=project, env=env, capture_output=True, check=False
            )
            elapsed = time.perf_counter() - t
            if proc.returncode not in (0, 1):
                raise SystemExit(proc.stdout.decode()[-2000:] + proc.stderr.decode()[-2000:])
            return elapsed

        counter = iter(range(1, 10_000))

        def run_dockyard(command: str, mode: str) -> float:
            run_id = next(counter)
            plan = RunPlan(
                run_id=run_id,
                project_dir=project,
                env=env,
                steps=[StepPlan(1, f"dbt {command}", dbt_args(command, mode))],
                target_path=work / "targets" / mode,
                run_dir=work / "runs" / str(run_id),
                mode=mode,
            )
            rec = NullRecorder()
            t = time.perf_counter()
            Executor(plan, rec).run()
            return time.perf_counter() - t

        variants = {
            "dbt CLI": run_cli,
            "fork": lambda c: run_dockyard(c, "fork"),
            "subprocess": lambda c: run_dockyard(c, "subprocess"),
        }
        commands = ["run", "build"]
        for command in commands:  # warm-up: partial-parse state per target folder
            for fn in variants.values():
                fn(command)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for command in commands:
                for name, fn in variants.items():
                    times.setdefault((command, name), []).append(fn(command))

        label = f"synthetic {args.synthetic} models" if args.synthetic else str(args.project.name)
        print(
            f"project: {label}; {args.rounds} rounds; one-time dbt import in the parent (fork mode): {preload_s:.2f} s"
        )
        print(f"{'command':<8} {'variant':<12} {'median s':>9} {'vs CLI':>8}   all")
        for command in commands:
            base = statistics.median(times[(command, "dbt CLI")])
            for name in variants:
                ts = times[(command, name)]
                med = statistics.median(ts)
                print(
                    f"dbt {command:<4} {name:<12} {med:9.2f} {med / base:7.2f}x   " + " ".join(f"{t:.2f}" for t in ts)
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
