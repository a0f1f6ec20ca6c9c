"""``dockyard`` commands. Each one parses its options, calls the App, renders the answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out, state
from dockyard.cli.errors import err_console, handle_errors
from dockyard.cli.progress import foreground, handed_off
from dockyard.cli.render import cell, run_table, show_run, styled
from dockyard.domain import RunStatus
from dockyard.text import escape
from dockyard.views import iso, job_dict, run_dict


@cli.command()
@handle_errors
def init(
    project_dir: Annotated[Path, typer.Option("--project-dir", help="The dbt project folder.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing dockyard.yml.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Where to write it.")] = None,
) -> None:
    """Write a commented dockyard.yml from the project's profile targets."""
    from dockyard.scaffold import write_config

    path = write_config(project_dir, force=force, target=config or state.config)
    out.print(f"Wrote {path}. Next: dockyard validate")


@cli.command()
@handle_errors
def validate(
    connection: Annotated[bool, typer.Option("--connection", help="Also run dbt debug per environment.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check dockyard.yml, the dbt project, profiles and targets; show the jobs' next fires."""
    app = _app(config)
    report = app.validate(connection=connection)
    for check in report.checks:
        mark = (
            (Text("! ", style="yellow") if check.warning else Text("✓ ", style="green"))
            if check.ok
            else Text("✗ ", style="red")
        )
        out.print(mark + Text(f"{check.name}: {check.detail}"), soft_wrap=True)  # paths stay whole
    for record, fires in report.jobs:
        when = ", ".join(iso(t) for t in fires) if fires else "no schedule"
        out.print(
            Text.assemble(
                ("job ", "bold"),
                (f"{record.id} {escape(record.name)}", "bold"),
                f" [{escape(record.environment)}]  next: {when}",
            )
        )
    if not report.ok:
        failed = [c for c in report.checks if not c.ok]
        raise typer.Exit(1) if failed else None


@cli.command()
@handle_errors
def jobs(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List jobs with their stable id, environment, schedule and next fire time."""
    app = _app(config)
    rows = [job_dict(j, app.next_fires(j, 1)) for j in app.jobs()]
    if as_json:
        return _emit(rows)
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "environment", "schedule", "next fire"):
        table.add_column(col)
    for row in rows:
        sched = f"{row['cron']} ({row['timezone']})" if row["cron"] else "-"
        table.add_row(str(row["id"]), cell(row["name"]), cell(row["environment"]), cell(sched), row["next_fire"] or "-")
    out.print(table)


@cli.command()
@handle_errors
def run(
    job: Annotated[str, typer.Argument(help="Job name, identifier or id.")],
    env: Annotated[str | None, typer.Option("--env", help="Run in another environment.")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo dbt's log lines.")] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Run it in this process even when a running server has worker slots.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Run a job now, in the foreground (through a running server's worker slots when one is
    alive, see --local). Exit 0 on success, 1 on failure, 130 when cancelled."""
    app = _app(config)
    record, job_cfg = app.job(job)
    if not local and handed_off(app, record.id, env, as_json, quiet):
        return
    foreground(
        lambda observer, on_start: app.run_job(record.id, environment=env, observer=observer, on_start=on_start),
        lambda run_id: f"Run {run_id}: {record.name} on {env or job_cfg.environment}",
        as_json,
        quiet,
    )


@cli.command()
@handle_errors
def rerun(
    run_id: Annotated[int, typer.Argument(help="The failed or cancelled run.")],
    from_failure: Annotated[
        bool,
        typer.Option(
            "--from-failure/--all",
            help="Only the failed step's nodes that did not complete, then the later steps (default); "
            "or every command of the run.",
        ),
    ] = True,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo dbt's log lines.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run a failed run again in the foreground, from its failure. Exit codes as for run."""
    app = _app(config)
    old = app.runs.get(run_id)

    def title(new_id: int) -> str:
        return (
            f"Run {new_id}: {old.job} on {old.environment} (attempt {old.attempt + 1}, "
            f"rerun of run {old.id}{' from failure' if from_failure else ''})"
        )

    foreground(
        lambda observer, on_start: app.runs.rerun(
            run_id, from_failure=from_failure, queued=False, observer=observer, on_start=on_start
        ),
        title,
        as_json,
        quiet,
    )


@cli.command()
@handle_errors
def runs(
    job: Annotated[str | None, typer.Option("--job", help="Only this job (name or id).")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List recent runs, newest first."""
    if status and status not in {s.value for s in RunStatus}:
        from dockyard.errors import DockyardError

        raise DockyardError(f"unknown status '{status}'", hint=f"use one of {', '.join(s.value for s in RunStatus)}")
    found = _app(config).runs.list(job=job, status=status, limit=limit)
    if as_json:
        return _emit([run_dict(r, nodes=False) for r in found])
    out.print(run_table(found))


@cli.command()
@handle_errors
def show(
    run_id: int,
    as_json: JsonOpt = False,
    all_nodes: Annotated[
        bool,
        typer.Option("--all-nodes", help="Also the nodes that steps such as docs generate only compiled."),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Show one run: steps, the nodes it executed with status and timing, the slowest models."""
    app = _app(config)
    run = app.runs.get(run_id)
    notifications = app.alerts.deliveries(run_id)  # the run's alert deliveries (docs/alerts.md)
    if as_json:
        return _emit({**run_dict(run, all_nodes=all_nodes), "notifications": notifications})
    show_run(out, run, compiled=all_nodes)
    from dockyard.cli.notify import show_notifications

    show_notifications(out, notifications)


@cli.command()
@handle_errors
def logs(
    run_id: int,
    step: Annotated[int | None, typer.Option("--step", help="Only this step (numbered from 1).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Print a run's dbt logs (secrets scrubbed)."""
    sys.stdout.write(escape(_app(config).runs.logs(run_id, step), keep="\n\t"))


@cli.command()
@handle_errors
def artifacts(run_id: int, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List a run's artifacts (manifest.json, run_results.json, ...) and where they are."""
    app = _app(config)
    rows = [
        {
            "step_index": a.step_index,
            "name": a.name,
            "path": str(app.runs.artifact_path(run_id, a.path)),
            "size": a.size,
            "sha256": a.sha256,
        }
        for a in app.runs.artifacts(run_id)
    ]
    if as_json:
        return _emit(rows)
    table = Table(box=None, header_style="bold")
    for col in ("step", "name", "size", "path"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(str(row["step_index"]), cell(row["name"]), f"{row['size']:,}", cell(row["path"]))
    out.print(table)


def main() -> None:
    from dockyard.permissions import restrict_umask

    restrict_umask()  # before anything is created: the state folder is private (0700/0600)
    cli()


__all__ = ["cli", "main", "styled", "err_console", "state", "_app", "_emit", "out"]


from dockyard.cli import bi as _bi  # noqa: E402,F401  (dockyard export lookml|catalog, sync metabase)
from dockyard.cli import ci as _ci  # noqa: E402,F401  (registers dockyard ci ...)
from dockyard.cli import costs as _costs  # noqa: E402,F401  (registers dockyard costs)
from dockyard.cli import export as _export  # noqa: E402,F401  (registers dockyard export ...)
from dockyard.cli import freshness as _freshness  # noqa: E402,F401  (registers dockyard freshness)
from dockyard.cli import monitors as _monitors  # noqa: E402,F401  (registers dockyard monitors ...)
from dockyard.cli import notify as _notify  # noqa: E402,F401  (registers dockyard notify test)
from dockyard.cli import service as _service  # noqa: E402,F401  (registers the server commands)
from dockyard.cli import tokens as _tokens  # noqa: E402,F401  (registers dockyard tokens ...)
from dockyard.cli import users as _users  # noqa: E402,F401  (registers dockyard users ...)
