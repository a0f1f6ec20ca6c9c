"""``dbt debug`` against one environment's target, for ``dockyard validate --connection``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dockyard.secrets import Scrubber


def dbt_debug(
    *, project_dir: Path, profiles_dir: Path, target: str, env: dict[str, str], secrets: list[str], timeout: float = 120
) -> tuple[bool, str]:
    """Run ``dbt debug`` in a process of its own; returns (ok, a scrubbed one-line summary)."""
    scrub = Scrubber.from_env(env, extra=secrets)
    # --log-level-file none: as for runs, dbt's debug file log (logs/dbt.log in the project)
    # would keep an unscrubbed copy of what dbt debug prints (the profile's fields, errors).
    argv = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        "debug",
        "--target",
        target,
        "--profiles-dir",
        str(profiles_dir),
        "--project-dir",
        str(project_dir),
        "--no-use-colors",
        "--log-level-file",
        "none",
    ]
    try:
        proc = subprocess.run(
            argv, cwd=project_dir, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        return False, f"dbt debug did not finish within {timeout:.0f} s"
    out = scrub.scrub(proc.stdout + proc.stderr)
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if proc.returncode == 0:
        return True, "dbt debug: all checks passed"
    problems = [ln for ln in lines if "ERROR" in ln or "Error" in ln or "error" in ln.lower()]
    return False, "; ".join(problems[-3:]) or (lines[-1] if lines else f"exit code {proc.returncode}")
