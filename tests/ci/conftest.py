"""Fixtures of the CI front-end tests: the fake git host (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import pytest
from tests.ci.fake_git_host import FakeGitHost

TOKEN = "ghp_s3cretTOKENvalue1234"


@pytest.fixture
def git_host():
    with FakeGitHost(token=TOKEN) as host:
        yield host
