"""The CLI tests share the end-to-end fixtures."""

from tests.e2e.conftest import project, sqlite_project  # noqa: F401
