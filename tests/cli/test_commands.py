"""The CLI's non-running commands: init, validate, jobs, runs, show, errors."""

from __future__ import annotations

import json
from datetime import datetime

from tests.e2e.conftest import Project


def test_init_scaffolds_a_valid_config(sqlite_project: Project):
    project = sqlite_project
    project.config.unlink()
    proc = project.cli("init", "--project-dir", str(project.path))
    # init runs without a config; --config points at the file it is about to write
    assert proc.returncode == 0, proc.stderr
    text = project.config.read_text()
    for target in ("dev", "staging", "prod", "ci"):
        assert f"  {target}:\n    target: {target}" in text
    assert "# " in text  # commented
    jobs = json.loads(project.cli("jobs", "--json", check=0).stdout)
    assert [j["name"] for j in jobs] == ["Daily Prod Run", "CI"] and jobs[0]["environment"] == "prod"
    again = project.cli("init", "--project-dir", str(project.path))
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr


def test_validate_reports_environments_and_fire_times(sqlite_project: Project):
    proc = sqlite_project.cli("validate", check=0)
    for env in ("dev", "staging", "prod", "ci"):
        assert f"✓ environment {env}: target {env}" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "Daily Production Run" in ln)
    fires = line.split("next: ")[1].split(", ")
    assert len(fires) == 3
    times = [datetime.fromisoformat(f.replace("Z", "+00:00")) for f in fires]
    assert all(t.hour in (6, 7) and t.minute == 0 for t in times)  # 02:00 in New York is 06:00/07:00 UTC
    assert "CI" in proc.stdout and "no schedule" in proc.stdout


def test_validate_connection_runs_dbt_debug(sqlite_project: Project):
    proc = sqlite_project.cli("validate", "--connection", check=0)
    for env in ("dev", "staging", "prod", "ci"):
        assert f"✓ connection {env}: dbt debug: all checks passed" in proc.stdout


def test_validate_fails_on_unknown_target(sqlite_project: Project):
    text = sqlite_project.config.read_text().replace("target: staging", "target: stagin")
    sqlite_project.config.write_text(text)
    proc = sqlite_project.cli("validate")
    assert proc.returncode == 1
    assert "✗ environment staging: target 'stagin' of environment 'staging' is not in profile 'shop'" in proc.stdout
    assert "did you mean 'staging'?" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_job_ids_are_stable(sqlite_project: Project):
    first = {j["name"]: j["id"] for j in json.loads(sqlite_project.cli("jobs", "--json", check=0).stdout)}
    text = sqlite_project.config.read_text().replace('name: "CI"', 'name: "Pull requests"')
    sqlite_project.config.write_text(text)
    second = {j["name"]: j["id"] for j in json.loads(sqlite_project.cli("jobs", "--json", check=0).stdout)}
    assert second["Daily Production Run"] == first["Daily Production Run"]
    assert second["Pull requests"] not in first.values()
    sqlite_project.config.write_text(text.replace('name: "Pull requests"', 'name: "CI"'))
    third = {j["name"]: j["id"] for j in json.loads(sqlite_project.cli("jobs", "--json", check=0).stdout)}
    assert third == first
    table = sqlite_project.cli("jobs", check=0).stdout
    assert "0 2 * * * (America/New_York)" in table


def test_user_mistakes_are_clean_errors(sqlite_project: Project):
    cases = [
        (("show", "999"), "run 999 not found"),
        (("logs", "999"), "run 999 not found"),
        (("run", "Daily Prod"), "did you mean the job 'Daily Production Run'?"),
        (("runs", "--status", "done"), "unknown status 'done'"),
        (("run", "CI", "--env", "qa"), "no environment 'qa'"),
    ]
    for args, words in cases:
        proc = sqlite_project.cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("Error: ") and words.lower() in proc.stderr.lower(), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_missing_config_is_a_clean_error(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "dockyard", "jobs"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "no dockyard.yml found" in proc.stderr and "dockyard init" in proc.stderr


def test_version():
    import subprocess
    import sys

    from dockyard import __version__

    out = subprocess.run([sys.executable, "-m", "dockyard", "--version"], capture_output=True, text=True).stdout
    assert out.strip() == f"dockyard {__version__}"
