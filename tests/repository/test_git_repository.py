"""dockyard.repository against a real bare repository on disk: fetch, exact checkouts, refs,
errors with hints, pruning (no dbt here)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dockyard.repository import Repository, RepositoryError, UnknownCommitError
from repository.conftest import Remote, git


def test_checkout_is_exactly_that_commit_read_only_and_reused(remote: Remote, tmp_path: Path):
    first = remote.commit({"a.txt": "one\n", "sub/b.txt": "b\n"}, "first")
    second = remote.commit({"a.txt": "two\n", "sub/b.txt": None}, "second")
    repo = Repository(str(remote.bare), tmp_path / "git", "main")
    assert repo.fetch() == second  # the branch head
    old = repo.checkout(first)
    assert old == tmp_path / "git" / "checkouts" / first
    assert (old / "a.txt").read_text() == "one\n" and (old / "sub" / "b.txt").is_file()
    new = repo.checkout(second[:10])  # a short sha resolves to the full one
    assert new.name == second and (new / "a.txt").read_text() == "two\n" and not (new / "sub").exists()
    assert (old / "a.txt").stat().st_mode & 0o222 == 0  # read-only afterwards
    assert repo.checkout(first) == old  # reused
    assert repo.show(first, "a.txt") == b"one\n" and repo.show(second, "sub/b.txt") is None
    # no remote (so no URL) is recorded in the cached clone
    assert str(remote.bare) not in (tmp_path / "git" / "cache" / "config").read_text()


def test_concurrent_checkouts_of_one_sha_share_one_folder(remote: Remote, tmp_path: Path):
    sha = remote.commit({f"f{i}.txt": "x" * 1000 for i in range(200)})
    repo = Repository(str(remote.bare), tmp_path / "git")
    repo.fetch()
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(repo.checkout(sha))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [tmp_path / "git" / "checkouts" / sha] * 4
    assert sorted(p.name for p in (tmp_path / "git" / "checkouts").iterdir()) == [sha]  # no temp left
    assert len(list((got[0]).glob("*.txt"))) == 200


def test_pull_request_refs_and_unknown_commits(remote: Remote, tmp_path: Path):
    remote.commit({"a.txt": "main\n"})
    git("checkout", "--quiet", "-b", "feature", cwd=remote.work)
    pr_sha = remote.commit({"a.txt": "pr\n"}, branch="feature")
    remote.push_ref("refs/pull/7/head")
    git("push", "--quiet", str(remote.bare), ":refs/heads/feature", cwd=remote.work)  # only the PR ref remains
    repo = Repository(str(remote.bare), tmp_path / "git")
    repo.fetch()
    assert repo.resolve(pr_sha) is None  # not in any fetched branch
    assert repo.fetch("refs/pull/7/head") == pr_sha
    assert (repo.checkout(pr_sha) / "a.txt").read_text() == "pr\n"
    # a full sha the remote only has under a pull-request ref: fetched by its sha
    assert Repository(str(remote.bare), tmp_path / "git2").fetch(pr_sha) == pr_sha
    with pytest.raises(UnknownCommitError) as err:
        repo.fetch("0" * 40)
    assert "is not in" in err.value.what and err.value.hint


def test_errors_name_the_problem_and_how_to_fix_it(remote: Remote, tmp_path: Path):
    remote.commit({"a.txt": "x\n"})
    with pytest.raises(RepositoryError) as err:
        Repository(str(remote.bare), tmp_path / "g1", "production").fetch()
    assert "no branch 'production'" in err.value.what and "main" in err.value.hint
    with pytest.raises(RepositoryError) as err:
        Repository(str(tmp_path / "nowhere.git"), tmp_path / "g2").fetch()
    assert "check repository.url" in err.value.hint


def test_prune_keeps_the_newest_and_those_asked_for(remote: Remote, tmp_path: Path):
    shas = [remote.commit({"a.txt": f"{i}\n"}) for i in range(5)]
    repo = Repository(str(remote.bare), tmp_path / "git")
    repo.fetch()
    for i, sha in enumerate(shas):
        path = repo.checkout(sha)
        os.utime(path, (1000 + i, 1000 + i))  # sha 0 is the least recently used
    dropped = repo.prune(keep={shas[0]}, max_kept=2)
    assert sorted(dropped) == sorted(shas[1:3])
    assert sorted(p.name for p in repo.checkouts.iterdir()) == sorted([shas[0], shas[3], shas[4]])


def test_before_the_first_deploy_the_project_says_to_deploy(remote: Remote, tmp_path: Path):
    from dockyard.app import App
    from dockyard.errors import ProjectError
    from repository.conftest import server_folder, tiny_project

    remote.commit(tiny_project(1))
    app = App.open(server_folder(tmp_path, str(remote.bare)) / "dockyard.yml")
    assert app.repository.enabled and app.repository.deployed() is None
    with pytest.raises(ProjectError) as err:
        app.project  # noqa: B018
    assert "no commit is deployed yet" in err.value.what and "dockyard deploy" in err.value.hint
    with pytest.raises(RepositoryError) as err:
        app.repository.project_dir()
    assert "dockyard deploy" in err.value.hint
