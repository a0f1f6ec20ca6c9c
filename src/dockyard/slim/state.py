"""The base state of a pull-request build, and the command lines that use it.

The base manifest comes from the local store (the app finds the last successful run of the
base environment), from a dockyard server (:func:`fetch_from_server`: through its API), or
from a folder (:func:`from_path`). It is copied into the run folder's ``state/``.

:func:`with_state` gives each command that uses ``state:`` selectors or ``--defer`` the
state: ``--state DIR``, and ``--defer --favor-state`` (only the flags not given), as dbt
Cloud does for a CI job's ``dbt build --select state:modified+``. :func:`without_state`
takes the ``state:`` selectors (and the defer flags) out when there is no base manifest and
``ci.without_base`` is ``full``: the command then builds everything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dockyard.dbt.selection import SELECT_FLAGS, take_option
from dockyard.errors import DockyardError
from dockyard.permissions import private_dir

MANIFEST = "manifest.json"
DEFER_COMMANDS = frozenset(
    {"build", "run", "test", "seed", "snapshot", "compile", "show", "clone", "ls", "list", "docs"}
)
STATE_FLAGS = frozenset({"--state", "--defer-state"})


def uses_state(args: list[str]) -> bool:
    """Whether a command line selects by ``state:`` or asks for ``--defer``."""
    _, values, _ = take_option(list(args), SELECT_FLAGS | frozenset({"--exclude"}), multi=True)
    return "--defer" in args or any("state:" in v for v in values)


def _has(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def with_state(argv: list[str], state_dir: Path) -> list[str]:
    """``argv`` (after ``dbt``) given the base state, when it uses it."""
    if not argv or argv[0] not in DEFER_COMMANDS or not uses_state(argv):
        return list(argv)
    out = list(argv)
    if not _has(out, "--state"):
        out += ["--state", str(state_dir)]
    if not _has(out, "--defer") and not _has(out, "--no-defer"):
        out.append("--defer")
    if not _has(out, "--favor-state") and not _has(out, "--no-favor-state"):
        out.append("--favor-state")
    return out


def without_state(argv: list[str]) -> list[str]:
    """``argv`` with its ``state:`` selectors and defer flags taken out (a full build)."""
    if not argv or not uses_state(argv):
        return list(argv)
    rest, values, found = take_option(list(argv), SELECT_FLAGS, multi=True)
    rest, excluded, _ = take_option(rest, frozenset({"--exclude"}), multi=True)
    rest, _, _ = take_option(rest, STATE_FLAGS, multi=False)
    rest = [a for a in rest if a not in ("--defer", "--favor-state", "--no-defer", "--no-favor-state")]
    if found and not any("state:" in v for v in values):
        rest[1:1] = ["--select", *values]  # without a base every node is new: state: selects all
    kept = [v for v in excluded if "state:" not in v]
    if kept:
        rest[1:1] = ["--exclude", *kept]
    return rest


def from_path(path: Path) -> Path | None:
    """The manifest in ``path`` (a folder holding manifest.json, or the file itself)."""
    path = Path(path).expanduser()
    candidate = path / MANIFEST if path.is_dir() else path
    return candidate if candidate.is_file() else None


def copy_into(manifest: Path, state_dir: Path) -> Path:
    """Copy the base manifest into the run's ``state/`` folder; returns that folder."""
    private_dir(state_dir)
    shutil.copyfile(manifest, state_dir / MANIFEST)
    return state_dir


def write_manifest(manifest: dict, state_dir: Path) -> Path:
    """Write ``manifest`` as the state's manifest.json (whole, then renamed into place)."""
    import json

    tmp = state_dir / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    tmp.replace(state_dir / MANIFEST)
    return state_dir / MANIFEST


def fetch_from_server(server: str, token: str | None, environment: str, dest: Path, client=None) -> dict | None:
    """The manifest of the last successful run of ``environment`` on a dockyard server,
    written to ``dest/manifest.json``; returns ``{"run_id": ..., "timings": {...}}`` or None
    when the server has no such run. Raises :class:`DockyardError` when the server cannot
    be asked (its answer, never the token, in the message). ``client``: a
    :class:`dockyard.client.Client` (by default one for ``server``, which retries 429/503)."""
    from dockyard.client import Client, ClientError

    own = client is None
    try:
        client = client or Client(server, token or "", timeout=60, retries=2)
        for run in client.runs(environment=environment, status="success", limit=20):
            arts = client.artifacts(run.id)
            manifests = sorted((a for a in arts if a.get("name") == MANIFEST), key=lambda a: a.get("step_index") or 0)
            if not manifests:
                continue
            content = client.artifact(run.id, manifests[-1]["path"])
            private_dir(dest)
            (dest / MANIFEST).write_bytes(content)
            timings = {
                n.get("unique_id"): n.get("execution_time_s")
                for n in client.nodes(run.id)
                if n.get("unique_id") and n.get("execution_time_s") is not None
            }
            return {"run_id": run.id, "timings": timings}
        return None
    except ClientError as exc:
        if not exc.http_status:
            raise DockyardError(
                f"cannot read the base state from {server}: {exc.message}",
                hint="check --server and that the server is running",
            ) from None
        raise DockyardError(
            f"the dockyard server {server} answered {exc.http_status} ({exc.message})",
            hint="check the token (a read scope is enough) and the server's URL",
        ) from None
    finally:
        if own and client is not None:
            client.close()
