"""The state folder is its owner's alone from the first command, whatever the umask.

The real ``dockyard`` command (a process of its own) under a permissive umask (022): its
first command creates the state folder and the store, a run of real dbt on DuckDB fills the
target folder, a derived profile, logs and artifacts, ``tokens create`` writes the token
table. Before the fix the store created the folder 0755 and everything in it was 0644.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from tests.e2e.conftest import Project
from typer.testing import CliRunner

from dockyard.app import App
from dockyard.cli.main import cli as main_cli

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def wide(root: Path) -> list[str]:
    """Folders that are not 0700 and files that are not 0600 (or stricter) under ``root``."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(folder) / name if name != "." else Path(folder)
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077 or (path.is_file() and mode & 0o100):
                found.append(f"{oct(mode)} {path.relative_to(root.parent)}")
    return sorted(set(found))


MINI_CONFIG = """\
runner:
  inherit_env: [MINI_DB_PATH]
environments:
  dev:
    target: dev
    schema: perms   # a derived profile under state/profiles/
jobs:
  - name: Tiny
    environment: dev
    commands: ["dbt run --select stg_numbers"]
"""


@pytest.fixture
def mini_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    dest = tmp_path / "mini"
    shutil.copytree(MINI, dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    (dest / "dockyard.yml").write_text(MINI_CONFIG)
    monkeypatch.setenv("MINI_DB_PATH", str(tmp_path / "mini.duckdb"))
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return Project(dest, None)


@pytest.mark.slow
def test_every_folder_and_file_of_the_state_folder_is_private(mini_project: Project, loose_umask):
    project = mini_project
    state = project.path / ".dockyard"
    proc = project.cli("validate", check=0)  # the first command: creates the folder and the store
    assert "permissions" not in proc.stdout, proc.stdout
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert wide(state) == []
    project.run_json("Tiny")
    project.cli("tokens", "create", "perms", "--scope", "read", check=0)
    assert (state / "targets" / "dev" / "partial_parse.msgpack").is_file()
    assert (state / "profiles" / "dev" / "profiles.yml").is_file()
    assert (state / "runs" / "1" / "logs" / "step-1.log").is_file()
    assert list(state.glob("dockyard.db*")) and list((state / "runs" / "1" / "artifacts").rglob("*.json"))
    assert wide(state) == []
    # nothing of dockyard's appears in the project, and dockyard init keeps the user's umask
    assert sorted(p.name for p in project.path.iterdir()) == sorted(
        [".dockyard", *(p.name for p in MINI.iterdir()), "dockyard.yml"]
    )
    project.config.unlink()
    project.cli("init", "--project-dir", str(project.path), check=0)
    assert stat.S_IMODE(project.config.stat().st_mode) == 0o644


def cli(*args: str):
    """The CLI in this process (the commands under test create nothing before they warn)."""
    return CliRunner().invoke(main_cli, list(args))


def test_validate_warns_when_the_state_folder_is_readable_by_others(sqlite_project: Project, loose_umask):
    project = sqlite_project
    state = project.path / ".dockyard"
    state.mkdir(mode=0o755)  # made by an older dockyard, or by hand
    os.chmod(state, 0o755)
    secret = project.path.parent / "token.txt"  # a file: secret others can read
    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o644)
    text = project.config.read_text()
    secrets = f"    secrets: {{SHOP_TOKEN: 'file:{secret}'}}\n"
    project.config.write_text(text.replace("  staging:\n", secrets + "  staging:\n"))
    proc = cli("validate", "--config", str(project.config))  # warnings, not errors
    assert proc.exit_code == 0, proc.output
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("! permissions:")]
    assert len(lines) == 2, proc.stdout
    assert f"{state} (drwxr-xr-x)" in lines[0] and f"chmod -R go-rwx {state}" in lines[0]
    assert "dockyard.db" not in lines[0]  # created by validate: private
    assert f"{secret} (-rw-r--r--)" in lines[1] and f"chmod go-rwx {secret}" in lines[1]
    status = cli("status", "--config", str(project.config))
    assert status.exit_code == 0 and f"chmod -R go-rwx {state}" in status.stderr
    key = project.path.parent / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    serve = cli("serve", "--host", "0.0.0.0", "--ssl-keyfile", str(key), "--config", str(project.config))
    assert serve.exit_code == 1 and f"chmod go-rwx {key}" in serve.stderr, serve.stderr  # refused: no token
    secret.chmod(0o600)
    os.chmod(state, 0o700)
    (state / "dockyard.db").chmod(0o644)
    app = App.open(project.config)
    assert [f"{state / 'dockyard.db'} (-rw-r--r--)" in w for w in app.permission_warnings()] == [True]
    os.chmod(state / "dockyard.db", 0o600)
    assert app.permission_warnings() == []
    app.close()
