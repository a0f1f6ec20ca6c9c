"""Fixtures of the CI front-end tests: the fake git host (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import pytest
from tests.ci.fake_git_host import FakeGitHost
from tests.e2e.conftest import sqlite_project  # noqa: F401  (the shop, driven through the CLI)

TOKEN = "ghp_s3cretTOKENvalue1234"


@pytest.fixture
def git_host():
    with FakeGitHost(token=TOKEN) as host:
        yield host
