"""``dockyard monitors [run|history]``: data monitors (docs/monitors.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell
from dockyard.text import escape

monitors = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    rich_markup_mode=None,
    help="Data monitors: list them with their last status, run them now, show a monitor's history.",
)
cli.add_typer(monitors, name="monitors")

STYLE = {"ok": "green", "alert": "red", "error": "red", "warming_up": "yellow"}


def _status(status: str | None) -> Text:
    if not status:
        return Text("-")
    return Text(escape(status), style=STYLE.get(status, ""))


def _value(value) -> str:
    return "-" if value is None else f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


@monitors.callback()
@handle_errors
def list_monitors(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every monitor of dockyard.yml with its environment and last status."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _app(config).monitors.list()
    if as_json:
        return _emit(rows)
    if not rows:
        out.print("No monitors: add them under monitors: in dockyard.yml (docs/monitors.md).")
        return
    table = Table(box=None, header_style="bold")
    for col in ("monitor", "type", "table", "env", "status", "since", "last value", "message"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            cell(r["name"]),
            cell(r["type"]),
            cell(r["table"] or r["model"] or "-"),
            cell(r["environment"] or "-"),
            _status(r["status"]),
            cell((r["since"] or "-")[:19]),
            _value(r["last_value"]),
            cell(r["problem"] or r["message"] or ""),
        )
    out.print(table)


@monitors.command("run")
@handle_errors
def run_monitors(
    names: Annotated[list[str] | None, typer.Argument(help="Monitors to run (default: all).")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Run them in this environment.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Measure monitors now (one dbt run-operation per environment) and print the measurements.
    Alerts go out as the server sends them (or with the next `dockyard serve`)."""
    outcomes = _app(config).monitors.check(names or None, env, trigger="manual")
    if as_json:
        return _emit([o.to_dict() for o in outcomes])
    table = Table(box=None, header_style="bold")
    for col in ("monitor", "env", "status", "value", "message"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(cell(o.monitor), cell(o.environment), _status(o.status), _value(o.value), cell(o.message))
    out.print(table)
    if any(o.status in ("alert", "error") for o in outcomes):
        raise typer.Exit(1)


@monitors.command("history")
@handle_errors
def history(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    limit: Annotated[int, typer.Option("--limit", help="How many measurements (newest first).")] = 30,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A monitor's measurements, newest first: value, status, expected band, trigger."""
    rows = _app(config).monitors.history(name, limit)
    if as_json:
        return _emit(rows)
    table = Table(box=None, header_style="bold")
    for col in ("measured", "env", "status", "value", "expected", "band", "trigger", "message"):
        table.add_column(col)
    for r in rows:
        band = "-" if r["lower"] is None and r["upper"] is None else f"{_value(r['lower'])} .. {_value(r['upper'])}"
        table.add_row(
            r["measured_at"][:19],
            cell(r["environment"]),
            _status(r["status"]),
            _value(r["value"]),
            _value(r["expected"]),
            band,
            cell(r["trigger"]),
            cell((r["detail"] or {}).get("message") or ""),
        )
    out.print(table)
