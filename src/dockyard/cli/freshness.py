"""``dockyard freshness``: the last freshness check of every source, or one source's history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell, styled

EnvOpt = Annotated[str | None, typer.Option("--env", help="Only this environment.")]
SourceOpt = Annotated[
    str | None,
    typer.Option("--source", help="One source's history: its unique id, <source>.<table> or table name."),
]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=1000, help="With --source: at most this many checks.")]


@cli.command()
@handle_errors
def freshness(
    env: EnvOpt = None,
    source: SourceOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Source freshness from the `dbt source freshness` steps: the latest check per source
    (status, age then and now, thresholds, run), or with --source that source's history."""
    app = _app(config)
    if env is not None and env not in app.config.environments:
        from dockyard.errors import DockyardError

        known = ", ".join(sorted(app.config.environments))
        raise DockyardError(f"unknown environment {env!r}", hint=f"use one of {known}")
    rows = app.freshness.history(source, env, limit=limit) if source else app.freshness.latest(env)
    if as_json:
        return _emit(rows)
    if not rows:
        what = f"source {source!r}" if source else "any source"
        out.print(
            cell(
                f"No freshness check of {what} is recorded yet: run a job with a 'dbt source freshness' "
                "step (or run_generate_sources: true)."
            ),
            soft_wrap=True,
        )
        return
    table = Table(box=None, header_style="bold")
    columns = ("checked", "env", "status", "age", "max loaded at", "run") if source else None
    columns = columns or ("source", "env", "status", "age then", "age now", "thresholds", "checked", "run")
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in rows:
        status = styled(r["status"])
        checked = (r["checked_at"] or "")[:19].replace("T", " ")
        if source:
            table.add_row(
                checked, cell(r["environment"]), status, cell(r["age"] or "-"), cell(r["max_loaded_at"] or "-"),
                str(r["run_id"]),
            )  # fmt: skip
        else:
            table.add_row(
                cell(r["source"]), cell(r["environment"]), status, cell(r["age"] or "-"), cell(r["age_now"] or "-"),
                cell(r["thresholds"]), checked, str(r["run_id"]),
            )  # fmt: skip
    out.print(table)
    errors = [r for r in rows if r["error"]]
    for r in errors[:5]:
        out.print(cell(f"{r['source']} ({r['environment']}): {r['error'].splitlines()[0][:200]}"), soft_wrap=True)
