"""``dockyard costs``: the models that take the warehouse's time, their trend, and the
full-refresh tables to make incremental (docs/metrics.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell

TOP = 20  # rows of each table on a terminal (--json has them all, up to --limit)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return "-"  # pragma: no cover


def _trend(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} s/day"


def _plain(value):
    from datetime import datetime

    from dockyard.views import iso

    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@cli.command("costs")
@handle_errors
def costs(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="The window, in days.")] = 30,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Models per list.")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Models ranked by total warehouse time (and bytes where the adapter reports them), their
    trend (seconds per day, least squares), and the tables whose runtime grows fastest."""
    app = _app(config)
    if env is not None and env not in app.config.environments:
        from dockyard.errors import DockyardError

        raise DockyardError(
            f"unknown environment {env!r}", hint="use one of " + ", ".join(sorted(app.config.environments))
        )
    report = app.costs.report(env, days, limit=limit)
    if as_json:
        return _emit(_plain(report))
    where = f" in {env}" if env else ""
    if not report["models"]:
        out.print(cell(f"No model ran{where} in the last {days} days."))
        return
    table = Table(box=None, header_style="bold", title=f"Warehouse time{where}, last {days} days")
    for col in ("model", "runs", "total s", "mean s", "last s", "trend", "bytes billed"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in report["models"][:TOP]:
        table.add_row(
            cell(m["name"]),
            str(m["runs"]),
            _seconds(m["total_s"]),
            _seconds(m["mean_s"]),
            _seconds(m["last_s"]),
            _trend(m["slope_s_per_day"]),
            _bytes(m["bytes_billed"] if m["bytes_billed"] is not None else m["bytes_processed"]),
        )
    out.print(table)
    if report["by_bytes"]:
        table = Table(box=None, header_style="bold", title="By bytes")
        for col in ("model", "bytes processed", "bytes billed"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for m in report["by_bytes"][:TOP]:
            table.add_row(cell(m["name"]), _bytes(m["bytes_processed"]), _bytes(m["bytes_billed"]))
        out.print(table)
    candidates = report["incremental_candidates"]
    if report["materializations_from"] is None:
        out.print(cell("Incremental candidates: unknown (no run kept a manifest.json to tell the materializations)."))
    elif not candidates:
        out.print(cell("Incremental candidates: none (no table model's runtime grows)."))
    else:
        table = Table(box=None, header_style="bold", title="Incremental candidates (tables whose runtime grows)")
        for col in ("model", "trend", "last s", "runs"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for m in candidates[:TOP]:
            table.add_row(cell(m["name"]), _trend(m["slope_s_per_day"]), _seconds(m["last_s"]), str(m["runs"]))
        out.print(table)
