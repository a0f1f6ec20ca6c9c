"""Server commands: serve, scheduler, worker, status, trigger, cancel, deploy."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out, state
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import TerminalLogFormatter, cell
from dockyard.errors import ConfigError, DockyardError
from dockyard.views import iso


def _logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _config_path(config: Path | None) -> str | None:
    path = config or state.config
    return str(path) if path else None


@cli.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default server.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default server.port).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker slots (default server.workers).")] = None,
    ssl_certfile: Annotated[str | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the scheduler, the workers and the HTTP API in one command."""
    from dockyard.server.serve import serve as run_serve

    _logging()
    app = _app(config)
    server = app.config.server
    host = host or server.host
    # The API demands a token once any token exists (revoked ones count, so it never reopens);
    # with none, it is open, so only a loopback address is allowed.
    _warn_permissions(app, [ssl_keyfile] if ssl_keyfile else [])
    auth = app.tokens.any()
    if not _loopback(host) and not auth:
        raise DockyardError(
            f"refusing to listen on {host}: the API has no authentication configured",
            hint="create a token first (dockyard tokens create NAME --scope admin), or bind to 127.0.0.1 (the default)",
        )
    out.print(
        f"dockyard serving on http{'s' if ssl_certfile else ''}://{host}:{port or server.port} "
        f"(web UI at /, API at /api/v1; tokens {'required' if auth else 'not required until the first one is created'})"
    )
    raise typer.Exit(
        run_serve(
            _config_path(config),
            state.store_url,
            host=host,
            port=port or server.port,
            workers=server.workers if workers is None else workers,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
    )


@cli.command()
@handle_errors
def scheduler(config: ConfigOpt = None) -> None:
    """Run the scheduler alone (several may run on a PostgreSQL store)."""
    from dockyard.server.fallback import open_app
    from dockyard.server.processes import run_scheduler

    _logging()
    run_scheduler(open_app(config or state.config, state.store_url))


@cli.command()
@handle_errors
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Runs at once.")] = 1,
    config: ConfigOpt = None,
) -> None:
    """Run a worker that executes queued runs (several may run, on several machines)."""
    from dockyard.server.fallback import open_app
    from dockyard.server.processes import run_worker

    _logging()
    # fail early (bad config, unreachable store) before forking; a worker that serve restarts
    # while dockyard.yml is invalid starts on the last good config
    open_app(config or state.config, state.store_url).connect()
    raise typer.Exit(run_worker(_config_path(config), state.store_url, concurrency))


@cli.command()
@handle_errors
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Processes and their heartbeats, the queue, the next fires, and whether the running
    processes could load dockyard.yml."""
    try:
        app = _app(config)
    except ConfigError as exc:  # the server keeps its last good config: show it anyway
        return _status_of_store(exc, as_json, config)
    report = app.status()
    _warn_permissions(app)
    if as_json:
        return _emit(report)
    _print_status(report)


def _print_status(report: dict) -> None:
    table = Table(box=None, header_style="bold", title="processes", title_justify="left")
    for col in ("kind", "id", "alive", "heartbeat"):
        table.add_column(col)
    for proc in report["processes"]:
        table.add_row(
            cell(proc["kind"]), cell(proc["id"]), "yes" if proc["alive"] else "no", iso(proc.get("heartbeat_at"))
        )
    out.print(table)
    cfg = report.get("config") or {"ok": True}
    if cfg["ok"]:
        out.print("config: ok")
    else:
        who = f" (reported by {len(cfg['processes'])} process(es))" if cfg.get("processes") else ""
        out.print(
            f"config: INVALID, the last good config stays in force{who}: {cfg['error']}", markup=False, highlight=False
        )
    if repo := report.get("repository"):  # code from git (docs/ci.md)
        deployed = (repo.get("deployed") or {}).get("sha") or "none yet (run: dockyard deploy)"
        out.print(cell(f"repository: {repo['url']} branch {repo['branch']}, deployed {deployed}"))
        if refused := repo.get("refused"):
            out.print(cell(f"refused commit {refused['sha']}: {refused['error']}"), markup=False, highlight=False)
    out.print(f"queue: {report['queue']}")
    for name, when in report["next_fires"].items():
        out.print(cell(f"next fire of {name}: {iso(when) or 'no schedule'}"))


def _status_of_store(error: ConfigError, as_json: bool, config: Path | None) -> None:
    """``status`` when dockyard.yml does not load: the processes from the store (given by
    --store-url, $DOCKYARD_STORE_URL, or the default SQLite file next to dockyard.yml), then
    the error (exit 1). Without a store to read, just the error."""
    import os

    from dockyard.app import store_status
    from dockyard.config.loader import find_config

    url = state.store_url or os.environ.get("DOCKYARD_STORE_URL")
    if not url:
        try:
            default = find_config(None) if not (config or state.config) else Path(config or state.config)
        except DockyardError:
            raise error from None
        db = default.resolve().parent / ".dockyard" / "dockyard.db"
        if not db.is_file():
            raise error
        url = f"sqlite:///{db}"
    found = store_status(url, lost_after_seconds=30)
    processes, queue = found["processes"], found["queue"]
    errors = sorted(p["id"] for p in processes if p["alive"] and (p.get("info") or {}).get("config_error"))
    report = {
        "processes": processes,
        "queue": queue,
        "next_fires": {},
        "config": {"ok": False, "error": error.render(), "processes": errors},
    }
    if as_json:
        _emit(report)
    else:
        _print_status(report)
    raise error


@cli.command()
@handle_errors
def trigger(
    job: Annotated[str, typer.Argument(help="Job name, identifier or id.")],
    env: Annotated[str | None, typer.Option("--env", help="Run in another environment.")] = None,
    cause: Annotated[str | None, typer.Option("--cause", help="Why (shown in the run).")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Queue a run for the server's workers (``dockyard run`` runs in the foreground)."""
    app = _app(config)
    app.triggers.check_environment(env)
    app.triggers.check_queue(app.jobs.get(job).id)
    result = app.triggers.enqueue(job, environment=env, trigger="manual", cause=cause or "Triggered manually")
    data = {"run_id": result.run_id, "created": result.created, "coalesced": result.coalesced}
    if as_json:
        return _emit(data)
    if result.coalesced:
        out.print(f"Run {result.run_id} was already queued for this job; the trigger was folded into it")
    else:
        out.print(f"Queued run {result.run_id}")


@cli.command()
@handle_errors
def cancel(run_id: int, config: ConfigOpt = None) -> None:
    """Cancel a run: a queued one at once, a running one through its worker (it then ends
    cancelled). A run that had already ended: an error naming its status, exit 1."""
    outcome = _app(config).runs.cancel(run_id)
    out.print(
        {
            "cancelled": f"Run {run_id} cancelled",
            "requested": f"Cancel of run {run_id} requested; it will end cancelled",
        }[outcome]
    )


@cli.command()
@handle_errors
def deploy(
    sha: Annotated[
        str | None, typer.Option("--sha", help="The commit to deploy (default: the head of repository.branch).")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Put the jobs of dockyard.yml in force: with repository:, fetch the branch head (or
    --sha), validate that commit's dockyard.yml and deploy it, or refuse it (exit 1, the last
    good commit stays); without, re-sync environments and jobs from dockyard.yml."""
    app = _app(config)
    if sha and app.config.repository is None:
        raise DockyardError("--sha needs a repository: block in dockyard.yml", hint="see docs/ci.md, Code from git")
    answer = app.deploy(sha)
    if as_json:
        _emit(answer)
    elif answer["status"] == "ok":
        ids = answer["jobs"]
        at = f"commit {answer['sha']}: " if answer.get("sha") else ""
        out.print(cell(f"Deployed {at}{len(ids)} job(s): " + ", ".join(f"{name} ({i})" for name, i in ids.items())))
    else:
        raise DockyardError(
            f"commit {answer['sha']} refused, the last good commit stays in force: {answer['error']}",
            hint="fix dockyard.yml in a new commit, then deploy again",
        )
    if answer["status"] != "ok":
        raise typer.Exit(1)


def _warn_permissions(app, also: list[str] | None = None) -> None:
    """A warning (never an error) on standard error when the state folder is not private."""
    from rich.text import Text

    from dockyard.cli.errors import err_console

    for line in app.permission_warnings(also):
        err_console.print(Text(f"Warning: {line}", style="yellow"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
