"""Retry tests share the end-to-end fixtures (a copy of examples/shop, the real CLI)."""

from tests.e2e.conftest import project, sqlite_project  # noqa: F401
