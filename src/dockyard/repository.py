"""Code from git: the cached clone, checkouts of exact commits (docs/ci.md, "Code from git").

:class:`Repository` drives the ``git`` CLI (argv lists, no shell, ``GIT_TERMINAL_PROMPT=0``, a
time limit). One bare clone, ``<cache_dir>/cache``, fetched by URL (no remote configured in it:
no URL or credential in its ``config``); checkouts of exact commits,
``<cache_dir>/checkouts/<sha>``: ``git archive`` into a temporary folder renamed into place
(concurrent runs of one commit share it), files read-only afterwards.

Credentials for ``https://`` remotes (a token, optionally a user name) reach git through its
environment only (``GIT_CONFIG_COUNT``: an ``http.extraHeader`` with basic authentication),
never through argv (visible in ``ps``), the URL, or a file; every message taken from git's
output is scrubbed of them (:meth:`Repository.scrub`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

from dockyard.errors import RepositoryError, UnknownCommitError

__all__ = ["Repository", "RepositoryError", "UnknownCommitError"]

SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
REF = re.compile(r"^refs/[A-Za-z0-9._/+-]{1,240}$")
USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
TIMEOUT_S = 300.0  # a fetch of a large repository over a slow link
KEEP_CHECKOUTS = 8  # checkouts kept beyond the deployed one and those in use


class Repository:
    """A git remote as seen by the server: a cached bare clone and checkouts of exact commits."""

    def __init__(
        self,
        url: str,
        cache_dir: Path | str,
        branch: str = "main",
        username: str | None = None,
        token: str | None = None,
        *,
        timeout: float = TIMEOUT_S,
    ):
        self.url = url
        self.root = Path(cache_dir)
        self.cache = self.root / "cache"
        self.checkouts = self.root / "checkouts"
        self.branch = branch
        self.timeout = timeout
        self._secrets = [s for s in (token,) if s]
        self._env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "LC_ALL": "C"}
        self._env.pop("GIT_DIR", None)
        self._env.pop("GIT_WORK_TREE", None)
        if token and url.startswith(("https://", "http://")):
            basic = base64.b64encode(f"{username or 'x-access-token'}:{token}".encode()).decode()
            self._secrets.append(basic)
            self._env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
            )

    # -- fetching ----------------------------------------------------------------------------
    def fetch(self, ref: str | None = None) -> str:
        """Fetch the branch (``ref`` None), a ref (``refs/pull/7/head``...) or a sha; the full sha."""
        self._ensure_cache()
        with self._lock("fetch"):
            if ref is None:
                self._fetch_heads()
                return self._branch_head()
            if REF.match(ref):
                local = "refs/dockyard/" + ref[len("refs/") :]
                self._git("fetch", "--no-tags", "--quiet", self.url, f"+{ref}:{local}", what=f"fetch {ref}")
                return self._resolve(local) or self._unknown(ref)
            if SHA.match(ref):
                return self._fetch_sha(ref.lower())
            if ref.startswith("refs/") or ".." in ref:
                raise RepositoryError(f"{ref!r} is not a git ref dockyard fetches", hint="give a sha or refs/...")
            # a branch name
            self._fetch_heads()
            return self._resolve(f"refs/heads/{ref}") or self._no_branch(ref)

    def _fetch_heads(self) -> None:
        heads = ("--prune", self.url, "+refs/heads/*:refs/heads/*")
        self._git("fetch", "--no-tags", "--quiet", *heads, what="fetch the branches")

    def _fetch_sha(self, sha: str) -> str:
        if found := self._resolve(sha):
            return found
        self._fetch_heads()
        if found := self._resolve(sha):
            return found
        if len(sha) == 40:  # servers that allow fetching any reachable commit (GitHub, protocol v2)
            with contextlib.suppress(RepositoryError):
                self._git("fetch", "--no-tags", "--quiet", self.url, sha, what=f"fetch {sha}")
            found = self._resolve(sha)
        return found or self._unknown(sha)

    def resolve(self, ref: str) -> str | None:
        """The full sha of ``ref`` (a sha, possibly short, or a ref) in the cached clone, or None."""
        if not self.cache.is_dir():
            return None
        return self._resolve(ref)

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether commit ``older`` is an ancestor of ``newer`` (both in the cached clone;
        False when either is not there)."""
        if not self.cache.is_dir() or not (SHA.match(older) and SHA.match(newer)):
            return False
        proc = self._git("merge-base", "--is-ancestor", older, newer, check=False, what="merge-base")
        return proc.returncode == 0

    def _resolve(self, ref: str) -> str | None:
        proc = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False, what="resolve")
        out = proc.stdout.decode().strip()
        return out if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out) else None

    def _branch_head(self) -> str:
        return self._resolve(f"refs/heads/{self.branch}") or self._no_branch(self.branch)

    def branches(self) -> list[str]:
        proc = self._git("for-each-ref", "--format=%(refname:short)", "refs/heads/", check=False, what="list")
        return proc.stdout.decode().split()

    def _no_branch(self, branch: str) -> str:
        known = self.branches()
        raise RepositoryError(
            f"the remote {self.display_url} has no branch '{branch}'",
            hint=(f"branches there: {', '.join(known[:20])}; " if known else "the remote has no branches; ")
            + "set repository.branch in dockyard.yml",
        )

    def _unknown(self, ref: str) -> str:
        raise UnknownCommitError(
            f"commit {ref} is not in {self.display_url}",
            hint="push it first, or check the sha (a short sha must be in a fetched branch)",
        )

    # -- reading -----------------------------------------------------------------------------
    def show(self, sha: str, path: str) -> bytes | None:
        """The content of ``path`` at commit ``sha``; None when the commit has no such file."""
        proc = self._git("cat-file", "blob", f"{sha}:{path.lstrip('/')}", check=False, what="read")
        return proc.stdout if proc.returncode == 0 else None

    def checkout(self, sha: str) -> Path:
        """A clean read-only tree of exactly commit ``sha`` (created once, then reused)."""
        full = self.resolve(sha) or self.fetch(sha)
        dest = self.checkouts / full
        if dest.is_dir():
            with contextlib.suppress(OSError):
                os.utime(dest)  # most recently used: pruned last
            return dest
        self.checkouts.mkdir(parents=True, exist_ok=True)
        tmp = self.checkouts / f".tmp-{full}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir(mode=0o700)
        try:
            self._extract(full, tmp)
            _read_only(tmp)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():
                    raise
                _remove(tmp)  # another process made it first: same content
        except BaseException:
            _remove(tmp)
            raise
        return dest

    def _extract(self, sha: str, into: Path) -> None:
        argv = ["git", "--git-dir", str(self.cache), "archive", "--format=tar", sha]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env) as proc:
            assert proc.stdout is not None
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    tar.extractall(into, filter="tar")
            except tarfile.TarError as exc:  # e.g. a symlink pointing out of the tree
                proc.kill()
                raise RepositoryError(
                    f"cannot extract commit {sha}: {exc}",
                    hint="dockyard extracts no absolute symlinks nor links out of the repository",
                ) from None
            finally:
                proc.stdout.close()
                err = proc.stderr.read() if proc.stderr else b""
                code = proc.wait(timeout=self.timeout)
        if code != 0:
            raise RepositoryError(
                f"cannot extract commit {sha}: {self.scrub(err.decode(errors='replace').strip())}",
                hint=f"check {self.cache} (delete it to clone again)",
            )

    def prune(self, keep: set[str] = frozenset(), max_kept: int = KEEP_CHECKOUTS) -> list[str]:
        """Delete checkouts beyond the ``max_kept`` most recently used, except ``keep``."""
        if not self.checkouts.is_dir():
            return []
        found = [p for p in self.checkouts.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found.sort(key=_mtime, reverse=True)
        dropped = []
        for path in found[max_kept:]:
            if path.name not in keep:
                _remove(path)
                dropped.append(path.name)
        return dropped

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def display_url(self) -> str:
        return self.scrub(self.url)

    def scrub(self, text: str) -> str:
        """``text`` without the credentials (the token, its basic form, a URL's user info)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return USERINFO.sub("***@", text)

    def _ensure_cache(self) -> None:
        if (self.cache / "HEAD").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock("fetch"):
            if (self.cache / "HEAD").is_file():
                return
            tmp = self.root / f".cache-{os.getpid()}"
            _remove(tmp)
            self._git("init", "--bare", "--quiet", str(tmp), git_dir=False, what="create the cached clone")
            os.rename(tmp, self.cache)

    @contextlib.contextmanager
    def _lock(self, name: str):
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _git(
        self, *args: str, check: bool = True, git_dir: bool = True, what: str = "git"
    ) -> subprocess.CompletedProcess:
        argv = ["git", *(("--git-dir", str(self.cache)) if git_dir else ()), *args]
        try:
            proc = subprocess.run(
                argv, capture_output=True, env=self._env, timeout=self.timeout, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise RepositoryError(
                "git is not installed", hint="install git on the server (apt-get install git)"
            ) from None
        except subprocess.TimeoutExpired:
            raise RepositoryError(
                f"git {what} took more than {self.timeout:g} s ({self.display_url})",
                hint="check that the remote is reachable from the server",
            ) from None
        if check and proc.returncode != 0:
            message = self.scrub(proc.stderr.decode(errors="replace").strip()) or f"exit code {proc.returncode}"
            raise RepositoryError(
                f"git {what} failed for {self.display_url}: {message[-2000:]}",
                hint=_hint(message),
            )
        return proc


def _hint(message: str) -> str:
    low = message.lower()
    if "authentication" in low or "403" in low or "401" in low or "could not read username" in low:
        return "check repository.token (a secret reference) and repository.username"
    if "does not appear to be a git repository" in low or "not found" in low or "could not resolve" in low:
        return "check repository.url: the remote must be reachable from the server"
    return "check repository.url and that the remote is reachable"


def _read_only(root: Path) -> None:
    """Files lose their write bits; folders stay writable by the owner (``dbt deps`` writes
    ``dbt_packages/`` into the project folder)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~0o222)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process's prune
        return 0.0


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)  # read-only files go: their folders are writable
