"""The key of a parsed manifest: what a step's parse depends on, so that a manifest parsed
once can serve every later step with the same key (warm runs, :mod:`dockyard.runner.warm`).

It covers what dbt's own partial parsing compares, and a little more:

* **files**: the content (sha1) of every file dbt parses: those under the project's
  ``model-paths``, ``seed-paths``, ``snapshot-paths``, ``analysis-paths``, ``test-paths``,
  ``macro-paths``, ``docs-paths`` and ``packages-install-path`` (dbt's defaults when
  ``dbt_project.yml`` does not set them; the whole project folder when it sets them with
  Jinja), and ``dbt_project.yml``, ``packages.yml``, ``dependencies.yml``,
  ``package-lock.yml``, ``selectors.yml``, ``catalogs.yml``; never ``.git`` nor dockyard's
  state folder. So a DuckDB file or a ``target`` folder in the project changes nothing. A
  file's hash is kept while its size, inode, mtime and ctime stay the same (an edit always
  moves ctime); an added or deleted file changes the key too;
* **profiles.yml**: the content of the one in the step's ``--profiles-dir``;
* **the parse flags** of the step (``--project-dir``, ``--profile``, ``--target``,
  ``--vars``, the parser switches: :func:`dockyard.runner.fork.parse_argv`), without the
  per-run ``--target-path`` and ``--log-path``;
* **the environment**: every variable of the step's environment, except those dockyard
  sets per run (:data:`PER_RUN`: ``DOCKYARD_RUN_ID``, ``DBT_CLOUD_*`` and their
  ``DBT_ENV_CUSTOM_ENV_`` copies). Those count too when the project reads them while
  parsing (``reads``: the names in the manifest's ``env_vars``, or named in an
  ``env_var()`` of ``dbt_project.yml`` or ``profiles.yml``); such a project parses every run;
* **the dbt version** and the Python executable (the adapters are installed with them).

:meth:`ParseKey.changes` names what differs between two keys, for the step log.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

SKIP_ANYWHERE = frozenset({".git", "__pycache__"})
SKIP_AT_TOP = frozenset({"target", "logs", ".dockyard", ".venv", "venv", "node_modules"})
PATH_KEYS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "analysis-paths": ["analyses"],
    "test-paths": ["tests"],
    "macro-paths": ["macros"],
    "docs-paths": [],
    "packages-install-path": ["dbt_packages"],
}
ROOT_FILES = (
    "dbt_project.yml",
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
    "selectors.yml",
    "catalogs.yml",
)
PER_RUN_PREFIXES = ("DBT_CLOUD_", "DBT_ENV_CUSTOM_ENV_DBT_CLOUD_")
PER_RUN_NAMES = frozenset({"DOCKYARD_RUN_ID"})
NOT_PARSE_OPTIONS = frozenset({"--target-path", "--log-path", "--log-level", "--log-level-file"})
_ENV_VAR_CALL = re.compile(r"env_var\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]")


def per_run(name: str) -> bool:
    """A variable dockyard sets to a new value for every run."""
    return name in PER_RUN_NAMES or name.startswith(PER_RUN_PREFIXES)


@dataclass(frozen=True)
class ParseKey:
    files: Mapping[str, str]  # path relative to the project -> sha1 of the content
    profiles: str  # sha1 of profiles.yml ("" when there is none)
    flags: tuple[str, ...]
    env: Mapping[str, str]  # name -> sha1 of the value (values never kept in clear)
    dbt: str
    digest: str = field(default="", compare=False)

    def changes(self, other: ParseKey | None, limit: int = 5) -> list[str]:
        """What differs from ``other`` (the key of the manifest in memory), for the log."""
        if other is None:
            return ["no manifest in memory yet"]
        out: list[str] = []
        if self.dbt != other.dbt:
            out.append("dbt version")
        if self.flags != other.flags:
            out.append("parse flags (" + " ".join(f for f in self.flags if f not in other.flags)[:200] + ")")
        if self.profiles != other.profiles:
            out.append("profiles.yml")
        for name in sorted(set(self.env) | set(other.env)):
            if self.env.get(name) != other.env.get(name):
                out.append(f"env var {name}")
        for path in sorted(set(self.files) | set(other.files)):
            if path not in other.files:
                out.append(f"{path} added")
            elif path not in self.files:
                out.append(f"{path} deleted")
            elif self.files[path] != other.files[path]:
                out.append(f"{path} changed")
        if len(out) > limit:
            out = [*out[:limit], f"{len(out) - limit} more"]
        return out


class KeyMaker:
    """Computes :class:`ParseKey` s, keeping the hash of each file while it is unchanged."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[tuple[int, int, int, int], str]] = {}

    def key(
        self,
        args: Sequence[str],
        project_dir: str,
        env: Mapping[str, str],
        *,
        skip: Collection[str] = (),
        reads: Collection[str] = (),
    ) -> ParseKey:
        """The key of a step ``dbt <args>`` in ``project_dir`` with environment ``env``;
        ``skip``: more folders no parse reads (dockyard's state folder); ``reads``: the
        variables the project read while it was last parsed."""
        from dockyard.runner.fork import option, parse_argv

        project = os.path.realpath(project_dir)
        skipped = {os.path.realpath(s) for s in skip}
        files: dict[str, str] = {}
        seen: set[str] = set()
        for root in parsed_paths(project):
            if root == project:
                self._walk(project, project, skipped, files, seen)
            elif os.path.isdir(root):
                self._walk(project, root, skipped, files, seen)
        for name in ROOT_FILES:
            path = os.path.join(project, name)
            digest = self._hash(path)
            if digest is not None:
                files[name] = digest
                seen.add(path)
        for path in list(self._hashes):  # forget files that are gone
            if path not in seen:
                del self._hashes[path]
        profiles_dir = option(args, "--profiles-dir") or env.get("DBT_PROFILES_DIR") or project
        profiles = self._hash(os.path.join(os.path.join(project, profiles_dir), "profiles.yml")) or ""
        flags = tuple(_flags(parse_argv(args)))
        reads = set(reads) | self._named_reads(project, os.path.join(project, profiles_dir))
        env_key = {
            name: hashlib.sha1(value.encode("utf-8", "surrogateescape")).hexdigest()
            for name, value in env.items()
            if not per_run(name) or name in reads
        }
        dbt = f"{_dbt_version()} {sys.executable}"
        digest = hashlib.sha256(
            repr((sorted(files.items()), profiles, flags, sorted(env_key.items()), dbt, project)).encode()
        ).hexdigest()
        return ParseKey(files, profiles, flags, env_key, dbt, digest)

    def _walk(self, top: str, folder: str, skipped: set[str], files: dict[str, str], seen: set[str]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name in SKIP_ANYWHERE or (folder == top and entry.name in SKIP_AT_TOP):
                continue
            path = entry.path
            try:
                if entry.is_dir(follow_symlinks=True):
                    if os.path.realpath(path) not in skipped:
                        self._walk(top, path, skipped, files, seen)
                    continue
            except OSError:
                continue
            digest = self._hash(path)
            if digest is not None:
                files[os.path.relpath(path, top)] = digest
                seen.add(path)

    def _hash(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        known = self._hashes.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        h = hashlib.sha1()
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            return None
        self._hashes[path] = (stamp, h.hexdigest())
        return h.hexdigest()

    def _named_reads(self, project: str, profiles_dir: str) -> set[str]:
        """Per-run variables named in an ``env_var()`` of dbt_project.yml or profiles.yml."""
        out = set()
        for path in (os.path.join(project, "dbt_project.yml"), os.path.join(profiles_dir, "profiles.yml")):
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read(4 << 20)
            except OSError:
                continue
            out |= {name for name in _ENV_VAR_CALL.findall(text) if per_run(name)}
        return out


def parsed_paths(project: str) -> list[str]:
    """The folders of ``project`` dbt parses files from (see the module docstring)."""
    try:
        import yaml

        with open(os.path.join(project, "dbt_project.yml"), encoding="utf-8") as fh:
            conf = yaml.safe_load(fh) or {}
    except (OSError, ValueError, ImportError):
        return [project]
    if not isinstance(conf, dict):
        return [project]
    out: list[str] = []
    for key, default in PATH_KEYS.items():
        value = conf.get(key, default)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and "{" not in v for v in values):
            return [project]  # Jinja, or not what dbt accepts: every file counts
        out += [os.path.realpath(os.path.join(project, v)) for v in values]
    # nested folders (models/ and models/staging/ both listed) would be walked twice
    out = sorted(set(out), key=len)
    return [p for i, p in enumerate(out) if not any(p.startswith(q.rstrip("/") + "/") for q in out[:i])]


def _flags(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv[1:]:  # argv[0] is "parse"
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in NOT_PARSE_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _dbt_version() -> str:
    try:
        from dbt.version import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover - dbt is a dependency
        return "?"
