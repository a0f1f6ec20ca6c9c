"""The SQLite store's folder and files are private when dockyard is used as a library too
(no ``dockyard`` command, so the caller's umask applies), and ``dbt deps`` keeps the user's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard import permissions
from dockyard.store import Store


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_store_is_private_with_its_wal_and_shm(tmp_path: Path, loose_umask):
    db = tmp_path / "a" / "b" / "dockyard.db"
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        store.tokens.create_token("t", "read")
        files = sorted(db.parent.glob("dockyard.db*"))
        assert [f.name for f in files] == ["dockyard.db", "dockyard.db-shm", "dockyard.db-wal"]
        assert {f.name: mode(f) for f in files} == dict.fromkeys((f.name for f in files), 0o600)
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700


def test_an_existing_folder_and_file_keep_their_modes_and_are_reported(tmp_path: Path, loose_umask):
    state = tmp_path / "state"
    state.mkdir()
    (state / "old.log").write_text("x")
    permissions.private_dir(state / "runs" / "1")
    permissions.write_private(state / "runs" / "1" / "step-1.log", "y")
    assert mode(state) == 0o755 and mode(state / "old.log") == 0o644  # never re-moded behind your back
    assert mode(state / "runs") == 0o700 and mode(state / "runs" / "1" / "step-1.log") == 0o600
    assert permissions.wide_paths(state) == [state, state / "old.log"]
    (state / "old.log").chmod(0o600)
    state.chmod(0o700)
    assert permissions.warnings_for(state) == []


def test_dbt_runs_private_except_deps(loose_umask):
    assert permissions.dbt_umask(["run", "--select", "x"]) == 0o077
    assert permissions.dbt_umask(["deps"]) == 0o022  # dbt_packages/ in the project: the user's umask
