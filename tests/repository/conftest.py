"""Real git for the code-from-git tests: a bare repository on disk as the remote, commits
made with ``git`` in a work clone, and a tiny dbt project (DuckDB) to commit."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}

DBT_PROJECT = """\
name: tiny
version: "1.0"
config-version: 2
profile: tiny
model-paths: [models]
"""

# the repository's own profiles.yml: dockyard must never use it (the server's profiles are used)
EVIL_PROFILES = """\
tiny:
  target: dev
  outputs:
    dev: {type: duckdb, path: "{{ env_var('TINY_DB') }}/from_the_commit.duckdb", schema: main, threads: 1}
"""

REPO_CONFIG = """\
environments:
  dev: {target: dev, threads: 1}
jobs:
  - name: Build
    environment: dev
    commands: ["dbt run"]
"""


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class Remote:
    """A bare repository (``bare``) and a work clone (``work``) that commits and pushes to it."""

    def __init__(self, root: Path):
        self.bare = root / "remote.git"
        self.work = root / "work"
        git("init", "--bare", "--quiet", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))

    def commit(self, files: dict[str, str | None], message: str = "change", branch: str = "main") -> str:
        """Write (or, for None, delete) ``files``, commit and push to ``branch``; the sha."""
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", str(self.bare), f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push_ref(self, ref: str) -> None:
        git("push", "--quiet", str(self.bare), f"HEAD:{ref}", cwd=self.work)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def tiny_project(value: int, extra_config: str = "") -> dict[str, str]:
    return {
        "dbt_project.yml": DBT_PROJECT,
        "profiles.yml": EVIL_PROFILES,
        "models/answer.sql": f"{{{{ config(materialized='table') }}}}\nselect {value} as v\n",
        "dockyard.yml": REPO_CONFIG + extra_config,
    }


def server_folder(root: Path, url: str, extra: str = "") -> Path:
    """The server's own dockyard.yml and profiles.yml (outside the repository)."""
    folder = root / "server"
    folder.mkdir()
    (folder / "dockyard.yml").write_text(
        textwrap.dedent(
            f"""\
            runner: {{inherit_env: [TINY_DB], mode: subprocess}}
            repository: {{url: {url}, branch: main}}
            environments:
              dev: {{target: dev}}
            """
        )
        + extra
    )
    (folder / "profiles.yml").write_text(
        textwrap.dedent(
            """\
            tiny:
              target: dev
              outputs:
                dev: {type: duckdb, path: "{{ env_var('TINY_DB') }}/dev.duckdb", schema: main, threads: 1}
            """
        )
    )
    return folder
