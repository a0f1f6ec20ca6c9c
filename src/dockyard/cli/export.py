"""``dockyard export TARGET JOB``: files that show a dockyard job in another tool (Airflow,
Prefect, Dagster; docs/integrations.md). One function per target on the ``export_app``
sub-app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.app import ConfigOpt, _app, cli
from dockyard.cli.errors import handle_errors

export_app = typer.Typer(no_args_is_help=True, help="Write files that show dockyard jobs in other tools.")
cli.add_typer(export_app, name="export")

JobArg = Annotated[str, typer.Argument(help="The job's name or id.")]
GroupOpt = Annotated[
    str, typer.Option("--group-by", help="One task per model, per folder or per layer (models/<layer>/...).")
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Read the job and its manifest from this dockyard server, not the local store."),
]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token for --server (default: $DOCKYARD_TOKEN).")]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, max=10, help="Retries of each model task.")]


def _graph(job: str, group_by: str, server: str | None, token: str | None, config: Path | None):
    from dockyard.app import exports

    if server:
        from dockyard.client import Client

        with Client(server, token) as client:
            return exports.remote_graph(client, job, group_by)
    app = _app(config)
    try:
        return exports.local_graph(app, job, group_by)
    finally:
        app.close()


def _write(text: str, dest: Path | None) -> None:
    if dest is None:
        sys.stdout.write(text)  # not through Rich: the file as it is
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {dest}", err=True)


@export_app.command("airflow")
@handle_errors
def export_airflow(
    job: JobArg,
    group_by: GroupOpt = "model",
    dest: OutOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    retries: RetriesOpt = 1,
    config: ConfigOpt = None,
) -> None:
    """An Airflow DAG: a task that triggers the job's run, then a task per model (or group)
    that waits for its result, with the dbt dependencies between them."""
    from dockyard.integrations import render

    _write(render.airflow(_graph(job, group_by, server, token, config), retries=retries), dest)


@export_app.command("prefect")
@handle_errors
def export_prefect(
    job: JobArg,
    group_by: GroupOpt = "model",
    dest: OutOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    retries: RetriesOpt = 1,
    config: ConfigOpt = None,
) -> None:
    """A Prefect flow: a task that triggers the job's run, then a task per model (or group)."""
    from dockyard.integrations import render

    _write(render.prefect(_graph(job, group_by, server, token, config), retries=retries), dest)


@export_app.command("dagster")
@handle_errors
def export_dagster(
    job: JobArg,
    dest: OutOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Dagster definitions: an asset per model (grouped by folder), materialised by the job's
    run through a DockyardResource."""
    from dockyard.integrations import render

    _write(render.dagster(_graph(job, "model", server, token, config)), dest)
