"""The GitHub and GitLab clients against the fake git host (a real HTTP server)."""

from __future__ import annotations

import pytest
from tests.ci.conftest import TOKEN

from dockyard.ci.github import GitHub
from dockyard.ci.gitlab import GitLab
from dockyard.ci.rest import RETRIES, ProviderError

SHA = "0123456789abcdef0123456789abcdef01234567"
MARK = "<!-- dockyard-ci:ci -->"


def test_comment_is_created_once_then_updated_in_place(git_host):
    git_host.page_size = 2  # the marker's comment is on the third page
    gh = GitHub(git_host.github_url, "acme/shop", TOKEN)
    for i in range(5):
        git_host.comments.setdefault(("acme/shop", 7), []).append({"id": 10 + i, "body": f"a human {i}"})
    first = gh.upsert_comment(7, f"{MARK}\nfirst", MARK)
    second = gh.upsert_comment(7, f"{MARK}\nsecond", MARK)
    ours = [c for c in git_host.comments[("acme/shop", 7)] if MARK in c["body"]]
    assert first == second and len(ours) == 1 and ours[0]["body"].endswith("second")
    posts = [r for r in git_host.writes() if r.method == "POST"]
    patches = [r for r in git_host.writes() if r.method == "PATCH"]
    assert len(posts) == 1 and len(patches) == 1 and patches[0].path == f"/repos/acme/shop/issues/comments/{first}"
    assert git_host.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert git_host.requests[0].headers["X-GitHub-Api-Version"] == "2022-11-28"
    # the list was read page by page (page_size 2: 3 pages of 5 comments, then 6)
    assert sum(1 for r in git_host.requests if r.method == "GET") >= 6
    gh.upsert_comment(7, f"{MARK}\nsecond", MARK)  # unchanged: nothing written
    assert len(git_host.writes()) == 2


def test_status_and_check_run(git_host):
    gh = GitHub(git_host.github_url, "acme/shop", TOKEN)
    gh.set_status(SHA, "pending", "x" * 500, target_url="http://dockyard.local/runs/3")
    gh.set_status(SHA, "success", "passed")
    states = [s["state"] for s in git_host.statuses[SHA]]
    assert states == ["pending", "success"] and {s["context"] for s in git_host.statuses[SHA]} == {"dockyard/ci"}
    assert len(git_host.statuses[SHA][0]["description"]) == 140
    first = gh.check_run(SHA, status="in_progress", title="running")
    again = gh.check_run(SHA, status="completed", conclusion="failure", title="failed", summary="## 2 tests failed")
    assert first == again and git_host.check_runs[first]["conclusion"] == "failure"
    assert git_host.check_runs[first]["head_sha"] == SHA
    with pytest.raises(ValueError):
        gh.set_status(SHA, "failed", "GitLab's word")


def test_5xx_and_429_are_retried_honouring_retry_after(git_host):
    gh = GitHub(git_host.github_url, "acme/shop", TOKEN)
    waits: list[float] = []
    gh.sleep = waits.append
    git_host.fail_next(1, 502)
    git_host.fail_next(1, 429, retry_after="2")
    gh.set_status(SHA, "success", "ok")
    assert git_host.statuses[SHA][0]["state"] == "success"
    assert len(waits) == 2 and waits[1] == 2.0
    git_host.fail_next(RETRIES + 1, 503)  # more failures than retries: a clear error
    with pytest.raises(ProviderError) as info:
        gh.set_status(SHA, "success", "ok")
    assert "503" in info.value.what and len(waits) == 2 + RETRIES


def test_token_never_in_errors(git_host):
    gh = GitHub(git_host.github_url, "acme/shop", "ghp_wrongTOKEN9876543")
    with pytest.raises(ProviderError) as info:
        gh.upsert_comment(1, "x", MARK)
    assert "401" in info.value.what and "token" in info.value.hint
    assert "ghp_wrongTOKEN9876543" not in info.value.render() and TOKEN not in info.value.render()
    # a host that echoes the token back in its message: masked
    gh = GitHub(git_host.github_url, "acme/shop", TOKEN)
    git_host.fail_next(RETRIES + 1, 500)
    gh.sleep = lambda s: None
    with pytest.raises(ProviderError) as info:
        gh.set_status(SHA, "success", "ok")
    assert TOKEN not in str(info.value)
    unreachable = GitHub("http://127.0.0.1:9", "acme/shop", TOKEN)
    unreachable.sleep = lambda s: None
    with pytest.raises(ProviderError) as info:
        unreachable.set_status(SHA, "success", "ok")
    assert TOKEN not in str(info.value) and "reachable" in info.value.hint


def test_gitlab_note_upsert_and_status(git_host):
    git_host.page_size = 1
    gl = GitLab(git_host.gitlab_url, "data/analytics/shop", TOKEN)
    git_host.notes[("data/analytics/shop", 4)] = [{"id": 1, "body": "lgtm", "system": False}]
    first = gl.upsert_note(4, f"{MARK}\none", MARK)
    second = gl.upsert_note(4, f"{MARK}\ntwo", MARK)
    notes = git_host.notes[("data/analytics/shop", 4)]
    assert first == second and len(notes) == 2 and notes[1]["body"].endswith("two")
    # the project path is URL-encoded in one segment
    assert all(r.path.startswith("/api/v4/projects/data%2Fanalytics%2Fshop/") for r in git_host.requests)
    assert git_host.requests[0].headers["PRIVATE-TOKEN"] == TOKEN
    assert [r.method for r in git_host.writes()] == ["POST", "PUT"]
    gl.set_status(SHA, "running", "building")
    git_host.fail_next(1, 500)
    gl.sleep = lambda s: None
    gl.set_status(SHA, "failed", "2 tests failed", target_url="http://d/runs/1")
    assert [s["state"] for s in git_host.gitlab_statuses[SHA]] == ["running", "failed"]
    assert git_host.gitlab_statuses[SHA][1]["name"] == "dockyard/ci"
    bad = GitLab(git_host.gitlab_url, "data/analytics/shop", "glpat-wrong-12345")
    with pytest.raises(ProviderError) as info:
        bad.upsert_note(4, "x", MARK)
    assert "401" in info.value.what and "glpat-wrong-12345" not in str(info.value)
