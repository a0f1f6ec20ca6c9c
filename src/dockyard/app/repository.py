"""``app.repository``: code from git (docs/ci.md, "Code from git").

With a ``repository:`` block the dbt project is not the folder dockyard runs in but a commit of
a git remote (:class:`dockyard.repository.Repository`). :meth:`RepositoryService.deploy` fetches
a commit, reads its ``dockyard.yml`` (at ``repository.config_path``), validates it and, when it
loads, makes it the config in force (its jobs synced, the commit recorded in the store's
``commits``); a commit that does not load is recorded ``refused`` with the located error and
the last good commit stays in force. Every process follows the deployed commit
(:meth:`RepositoryService.follow`, called by the config :class:`~dockyard.config.reload.Reloader`).

The config in force is the commit's file with :data:`LOCAL_KEYS` taken from the server's own
dockyard.yml (a commit cannot repoint the store, the state folder, the server, the sinks or the
remote); relative paths stay relative to the server's file and profiles.yml never comes from a
commit (see :class:`CommitConfig`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from dockyard.config.loader import LoadedConfig, load_config
from dockyard.errors import ConfigError, ConfigErrors, DockyardError, Location
from dockyard.project import DbtProject
from dockyard.repository import Repository, RepositoryError
from dockyard.secrets import UnreadableSecret, read_reference
from dockyard.views import iso

log = logging.getLogger("dockyard.app.repository")
#: Keys of dockyard.yml that come from the server's own file, never from a commit.
LOCAL_KEYS = ("version", "profiles_dir", "state_dir", "store", "runner", "server", "events", "repository")
FOLLOW_EVERY_S = 1.0


@dataclasses.dataclass
class CommitConfig(LoadedConfig):
    """The config in force of a commit: ``config`` merged (see :data:`LOCAL_KEYS`), ``raw`` the
    commit's file (errors are located as ``dockyard.yml@<sha>``), ``text`` the server's file
    (so the reload of the server's file compares against it); paths are relative to the
    server's file (:attr:`base_dir`), the dbt project is in the checkout (:attr:`project_root`)."""

    sha: str = ""
    local: LoadedConfig | None = None
    checkout: Path | None = None
    config_path: str = "dockyard.yml"

    @property
    def base_dir(self) -> Path:
        return self.local.base_dir if self.local else self.path.parent

    @property
    def project_root(self) -> Path:
        """The folder project_dir is relative to: dockyard.yml's folder in the checkout."""
        return (self.checkout / self.config_path).parent

    @property
    def profiles_home(self) -> Path:
        """Where profiles.yml is looked for last (before ~/.dbt): the server's project folder."""
        local = self.local
        return (local.base_dir / (local.config.project_dir or ".")).resolve()

    def location(self, *keys: str | int) -> Location:
        where = super().location(*keys)
        return Location(f"{self.config_path}@{self.sha[:12]}", where.line, where.key)


class RepositoryService:
    """``app.repository``: the remote, the deployed commit, checkouts, deploys."""

    def __init__(self, app):
        self.app = app
        self.local: LoadedConfig = getattr(app.loaded, "local", None) or app.loaded
        self._repo: Repository | None = None
        self._followed = 0.0

    @property
    def enabled(self) -> bool:
        return self.local.config.repository is not None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            cfg = self.local.config.repository
            if cfg is None:
                raise RepositoryError("no repository: block in dockyard.yml", hint="see docs/ci.md, Code from git")
            url = cfg.url
            if "://" not in url and not url.startswith("git@"):  # a local path, relative to dockyard.yml
                url = str((self.local.base_dir / os.path.expanduser(url)).resolve())
            token = _secret(cfg.token, self.local.location("repository", "token")) if cfg.token else None
            self._repo = Repository(url, self.app.state_dir / "git", cfg.branch, cfg.username, token)
        return self._repo

    @property
    def branch(self) -> str | None:
        return self.local.config.repository.branch if self.enabled else None

    def fetch(self, ref: str | None = None) -> str:
        """Fetch the branch (``ref`` None), a ref or a sha from the remote; the full sha."""
        return self.repo.fetch(ref)

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether ``older`` is an ancestor commit of ``newer`` in the cached clone."""
        return self.enabled and self.repo.is_ancestor(older, newer)

    def deployed(self) -> str | None:
        """The sha whose jobs are in force (None without ``repository:`` or before a deploy)."""
        if not self.enabled:
            return None
        rec = self.app.store.commits.deployed()
        return rec.sha if rec else None

    def checkout(self, sha: str) -> Path:
        return self.repo.checkout(sha)

    def project_dir(self, sha: str | None = None) -> Path:
        """The dbt project folder at commit ``sha`` (the deployed commit when None); without
        ``repository:``, the project folder of dockyard.yml."""
        if not self.enabled:
            return self.app.project.project_dir
        sha = sha or self.deployed()
        if sha is None:
            raise RepositoryError(
                "no commit of the repository is deployed yet",
                hint="run 'dockyard deploy' (or push to the deploy branch with the webhook set up)",
            )
        root = (self.checkout(sha) / self.local.config.repository.config_path).parent
        return (root / (self.app.config.project_dir or ".")).resolve()

    def pin(self, run, epoch: int | None = None):
        """The commit ``run`` runs, recorded on it: the trigger's ``git_sha`` (resolved to the
        full sha, fetched if missing), else the deployed commit (with the deploy branch). The
        run (a copy with ``git_sha``/``git_branch`` set) is returned; unchanged without
        ``repository:``."""
        if not self.enabled:
            return run
        self.follow(force=True)  # a run starts on the config deployed now (its job may be new)
        if run.git_sha:
            full, branch = self.repo.resolve(run.git_sha) or self.fetch(run.git_sha), run.git_branch
        else:
            full, branch = self.deployed(), run.git_branch or self.branch
            if full is None:
                self.project_dir(None)  # raises: nothing deployed
        if (full, branch) != (run.git_sha, run.git_branch):
            fence = {} if epoch is None else {"epoch": epoch}
            self.app.store.runs.set_run_fields(run.id, git_sha=full, git_branch=branch, **fence)
            run = dataclasses.replace(run, git_sha=full, git_branch=branch)
        return run

    def load_at(self, sha: str) -> CommitConfig:
        """The config of commit ``sha`` merged with the server's keys; ConfigError (located in
        the commit's file) when it does not load, ProjectError when its dbt project is missing."""
        cfg = self.local.config.repository
        checkout = self.checkout(sha)
        path = checkout / cfg.config_path
        data = self.repo.show(sha, cfg.config_path)
        if data is None:
            raise ConfigError(
                f"commit {sha[:12]} has no {cfg.config_path}",
                location=Location(f"{cfg.config_path}@{sha[:12]}"),
                hint="commit dockyard.yml at the repository's root, or set repository.config_path",
            )
        try:
            commit = load_config(path, text=data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(
                f"{cfg.config_path} of commit {sha[:12]} is not UTF-8 text", location=Location(cfg.config_path)
            ) from None
        except ConfigErrors as exc:
            raise ConfigErrors([_relabel(e, path, cfg.config_path, sha) for e in exc.errors]) from None
        except ConfigError as exc:
            raise _relabel(exc, path, cfg.config_path, sha) from None
        merged = commit.config.model_copy(update={k: getattr(self.local.config, k) for k in LOCAL_KEYS})
        loaded = CommitConfig(
            merged, self.local.path, commit.raw, self.local.text, sha=sha, local=self.local, checkout=checkout
        )
        loaded.config_path = cfg.config_path
        DbtProject(loaded)  # the dbt project is there (ProjectError otherwise)
        return loaded

    def deploy(self, sha: str | None = None, *, branch: str | None = None) -> dict:
        """Fetch ``sha`` (the branch head when None), validate its dockyard.yml and put it in
        force: ``{"sha", "status": "ok", "jobs"}``; when it does not load: ``{"sha", "status":
        "refused", "error"}`` and the last good commit stays. Without ``repository:``: the
        re-sync of dockyard.yml (``{"status": "ok", "jobs"}``)."""
        if not self.enabled:
            return {"status": "ok", "jobs": self.app.sync()}
        full = self.fetch(sha)
        branch = self.branch if sha is None else branch
        try:
            loaded = self.load_at(full)
        except (ConfigError, DockyardError) as exc:
            if isinstance(exc, RepositoryError):
                raise
            error = self.repo.scrub(exc.render())
            self.app.store.commits.record(full, branch, "refused", error)
            log.info("commit %s refused: %s", full[:12], error)
            return {"sha": full, "status": "refused", "error": error}
        self.app.reload(loaded)
        jobs = self.app.sync()
        self.app.store.commits.record(full, branch, "ok")
        self._prune()
        log.info("deployed commit %s (%d jobs)", full[:12], len(jobs))
        return {"sha": full, "status": "ok", "jobs": jobs}

    def poll(self) -> dict | None:
        """Fetch the branch and deploy its head when it is new (neither deployed nor already
        refused): the deploy's answer, or None when there was nothing new."""
        if not self.enabled:
            return None
        head = self.fetch()
        known = self.app.store.commits.get(head)
        if known is not None and (known.status == "refused" or head == self.deployed()):
            return None
        return self.deploy(head, branch=self.branch)

    def follow(self, *, force: bool = False) -> bool:
        """Switch to the deployed commit when another process deployed one (at most once a
        second unless ``force``); True when the config in force changed."""
        if not self.enabled:
            return False
        now = time.monotonic()
        if not force and now - self._followed < FOLLOW_EVERY_S:
            return False
        self._followed = now
        try:
            sha = self.deployed()
            if sha is None or sha == getattr(self.app.loaded, "sha", None):
                return False
            loaded = self.load_at(sha)
        except DockyardError as exc:
            log.error("cannot follow the deployed commit: %s", exc.render())
            return False
        self.app.reload(loaded)
        log.info("following deployed commit %s", sha[:12])
        return True

    def ensure_current(self) -> None:
        """Before jobs are synced: a commit is deployed but the server's own file is in force
        (it could not be loaded at start): load the commit, or raise, never sync the server's
        file over the commit's jobs."""
        if self.enabled and not getattr(self.app.loaded, "sha", None) and (sha := self.deployed()):
            self.app.reload(self.load_at(sha))

    def adopt(self, loaded: LoadedConfig) -> LoadedConfig:
        """What ``app.reload`` puts in force for ``loaded``: a commit's config as it is; the
        server's own file (reloaded) merged again with the deployed commit."""
        if isinstance(loaded, CommitConfig):
            return loaded
        self.local, self._repo = loaded, None
        if not self.enabled:
            return loaded
        try:
            sha = self.deployed()
            return self.load_at(sha) if sha else loaded
        except DockyardError as exc:
            log.error("the deployed commit does not load with the new dockyard.yml: %s", exc.render())
            return loaded

    def status(self) -> dict:
        """The remote, the deployed commit and the last refused one (with its located error)."""
        if not self.enabled:
            return {"enabled": False}
        deployed, refused = self.app.store.commits.deployed(), self.app.store.commits.refused()
        return {
            "enabled": True,
            "url": self.repo.display_url,
            "branch": self.branch,
            "deployed": {"sha": deployed.sha, "deployed_at": iso(deployed.deployed_at)} if deployed else None,
            "refused": (
                {"sha": refused.sha, "error": refused.error, "fetched_at": iso(refused.fetched_at)} if refused else None
            ),
        }

    def _prune(self) -> None:  # keep the deployed checkout and those of queued or active runs
        try:
            active = self.app.store.reader.runs.list_runs(status=["queued", "starting", "running"], limit=500)
            keep = {r.git_sha for r in active if r.git_sha} | {getattr(self.app.loaded, "sha", "")}
            self.repo.prune(keep)
        except (DockyardError, OSError) as exc:
            log.warning("cannot prune old checkouts: %s", exc)


def _relabel(exc: ConfigError, path: Path, config_path: str, sha: str) -> ConfigError:
    """The error located in the commit's file (``dockyard.yml@<sha>:<line>``), not the checkout."""
    loc, label = exc.location or Location(), f"{config_path}@{sha[:12]}"
    return ConfigError(exc.what.replace(str(path), label), hint=exc.hint, location=Location(label, loc.line, loc.key))


def _secret(ref: str, where: Location) -> str:
    """The value behind a secret reference (``env:NAME``, ``file:PATH``)."""
    try:
        return read_reference(ref, allow_empty=True)
    except UnreadableSecret as exc:
        raise ConfigError(f"the secret {exc.problem}", location=where, hint=exc.hint) from None
