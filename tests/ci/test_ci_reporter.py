"""reporter.post: where it posts (options, ci.github / ci.gitlab), the check-run mode, pending
then final, GitLab's states; against the fake git host. No dbt: the report is given."""

from __future__ import annotations

import textwrap

import pytest
from tests.ci.conftest import TOKEN

from dockyard.app import App
from dockyard.ci import reporter
from dockyard.ci.rest import ProviderError

SHA = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"


def app_with(tmp_path, ci: str) -> App:
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1'\nconfig-version: 2\nprofile: p\n")
    (tmp_path / "dockyard.yml").write_text(
        "environments:\n  ci: {target: ci}\n  prod: {target: prod}\nci:\n" + textwrap.indent(textwrap.dedent(ci), "  ")
    )
    return App.open(tmp_path / "dockyard.yml")


def report(status="success", provider="github"):
    return {
        "pr": 5,
        "provider": provider,
        "environment": "ci",
        "schema": "dbt_ci_pr_5",
        "sha": SHA,
        "status": status,
        "run_id": 9,
        "selected": [{"unique_id": "model.p.a", "resource_type": "model", "reason": "new"}],
        "results": [{"unique_id": "model.p.a", "resource_type": "model", "status": "error", "message": "boom"}],
    }


def test_check_run_mode_pending_then_final(tmp_path, git_host, monkeypatch):
    monkeypatch.setenv("GH_CI_TOKEN", TOKEN)
    app = app_with(
        tmp_path,
        f"""\
        run_url: https://dockyard.example/runs/{{run_id}}
        github: {{repo: acme/shop, token: "env:GH_CI_TOKEN", api_url: "{git_host.github_url}", report: check}}
        """,
    )
    reporter.post(app, report("running"), pending=True)
    assert not git_host.comments.get(("acme/shop", 5))  # pending: no comment yet
    (check,) = git_host.check_runs.values()
    assert check["status"] == "in_progress" and check["head_sha"] == SHA
    posted = reporter.post(app, report("error"))
    assert posted[0]["check_run_id"] == check["id"] and len(git_host.check_runs) == 1
    assert check["status"] == "completed" and check["conclusion"] == "failure"
    assert check["details_url"] == "https://dockyard.example/runs/9"
    assert "boom" in check["output"]["summary"] and "boom" in git_host.comments[("acme/shop", 5)][0]["body"]
    assert not git_host.statuses  # a check run instead of a status


def test_gitlab_from_the_config_and_explicit_options(tmp_path, git_host, monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    app = app_with(tmp_path, f"gitlab: {{project: grp/sub/shop, api_url: '{git_host.gitlab_url}'}}\n")
    assert reporter.provider_of(app) == "gitlab"
    reporter.post(app, report("running", "gitlab"), pending=True)
    reporter.post(app, report("success", "gitlab"))
    assert [s["state"] for s in git_host.gitlab_statuses[SHA]] == ["running", "success"]
    assert len(git_host.notes[("grp/sub/shop", 5)]) == 1
    # a GitHub report with no GitHub repo configured: nothing to post to
    assert reporter.post(app, report("success", "github")) == []
    # explicit options win; without a token a clear error, no request made
    before = len(git_host.requests)
    with pytest.raises(ProviderError, match="no GitHub token"):
        reporter.post(app, report(), github_repo="acme/shop")
    assert len(git_host.requests) == before
