"""Engines, URLs and error translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import StoreError
from dockyard.store import Store, default_url, make_engine
from dockyard.store.engine import mask_url, parse_url


def test_default_url_points_inside_the_project(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve()}/.dockyard/dockyard.db"


def test_sqlite_engine_creates_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
        assert pragmas == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1, "synchronous": 1}
    finally:
        engine.dispose()


@pytest.mark.parametrize("raw", ["postgresql://u:pw@h/db", "postgres://u:pw@h/db"])
def test_postgresql_urls_use_psycopg3(raw: str) -> None:
    assert parse_url(raw).drivername == "postgresql+psycopg"
    engine = make_engine(raw)
    assert engine.dialect.driver == "psycopg"
    assert engine.pool._pre_ping  # type: ignore[attr-defined]
    engine.dispose()


def test_explicit_driver_is_kept() -> None:
    assert parse_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_store_errors(raw: str) -> None:
    with pytest.raises(StoreError, match="store URL"):
        Store(raw)


def test_password_is_masked_everywhere() -> None:
    store = Store("postgresql://alice:s3cret@db.example:5433/dockyard")
    assert store.url == "postgresql+psycopg://alice:***@db.example:5433/dockyard"
    assert "s3cret" not in repr(store) and "s3cret" not in str(store)
    assert store.dialect == "postgresql"
    assert mask_url("postgresql://alice:s3cret@[bad").count("s3cret") == 0
    store.close()


def test_unreachable_postgres_is_a_store_error_with_masked_password() -> None:
    store = Store("postgresql://alice:s3cret@127.0.0.1:1/dockyard")
    with pytest.raises(StoreError) as caught:
        store.jobs.list_jobs()
    message = str(caught.value)
    assert "s3cret" not in message
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/dockyard" in message
    assert "127.0.0.1:1" in (caught.value.hint or "")
    assert caught.value.status == 503
    with pytest.raises(StoreError, match="Cannot reach"):
        store.migrate()
    store.close()


def test_unmigrated_store_says_how_to_fix(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store, pytest.raises(StoreError) as caught:
        store.runs.list_runs()
    assert "not initialised" in str(caught.value)
    assert "migrate" in (caught.value.hint or "")
