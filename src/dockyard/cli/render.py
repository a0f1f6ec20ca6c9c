"""Tables and summaries for the terminal.

Everything the CLI prints goes through a :class:`TerminalConsole`: strings are never Rich
markup (a job named ``[bold]x`` prints literally) and every control character that came
with the data (an ESC that would clear the screen, a bidi override) is printed as a visible
escape such as ``\x1b`` (:func:`dockyard.text.escape`). Tables escape their cells first
(:func:`cell`) so columns stay aligned; the console escapes whatever else reaches it.
dbt's log lines are recorded without ANSI colours, so they are escaped like the rest
(newlines and tabs kept).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from dockyard.domain import FAILED_STATUSES, RunRecord
from dockyard.text import CONTROL, escape
from dockyard.views import iso


class TerminalConsole(Console):
    """A Rich console that prints data, never markup or control characters (see above)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("markup", False)
        super().__init__(*args, **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not CONTROL.search(segment.text):
                yield segment  # Rich's own cursor moves (Live) and clean text
            else:
                yield Segment(escape(segment.text, keep="\n"), segment.style, segment.control)


class TerminalLogFormatter(logging.Formatter):
    """Log lines of the server processes as data too: a path or name with control characters
    in a message never acts on the terminal (tracebacks keep their newlines)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record), keep="\n")


def cell(value: object) -> Text:
    """A value from the store as a table cell or line part: escaped, never markup."""
    return Text("" if value is None else escape(value))


STATUS_STYLE = {
    "success": "green",
    "error": "red",
    "fail": "red",
    "runtime error": "red",
    "cancelled": "yellow",
    "warn": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "queued": "dim",
    "starting": "cyan",
    "pass": "green",
}


def styled(status: str) -> Text:
    return Text(escape(status), style=STATUS_STYLE.get(status, ""))


def run_table(runs: list[RunRecord]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("id", "job", "env", "status", "trigger", "started", "duration"):
        table.add_column(col)
    for run in runs:
        status = run.status.value + (" (warnings)" if run.has_warnings else "")
        status += f" [{run.reason}]" if run.reason else ""
        table.add_row(
            str(run.id),
            cell(run.job),
            cell(run.environment),
            styled(status),
            cell(run.trigger),
            iso(run.started_at) or "-",
            f"{run.duration_s:.1f}s" if run.duration_s else "-",
        )
    return table


def show_run(
    console: Console, run: RunRecord, *, slowest: int = 5, all_nodes: bool = True, compiled: bool = False
) -> None:
    """``all_nodes`` prints the table of nodes (executed ones; with ``compiled`` also those
    that steps such as ``docs generate`` only compiled, status ``compiled``)."""
    head = Text.assemble(
        ("Run ", "bold"),
        (str(run.id), "bold"),
        f"  {escape(run.job)} on {escape(run.environment)}  ",
        styled(run.status.value),
        f" ({run.status_code})",
    )
    if run.reason:
        head.append(f"  reason: {escape(run.reason)}")
    if run.has_warnings:
        head.append("  with warnings", style="yellow")
    console.print(head)
    console.print(
        f"trigger {escape(run.trigger)}, started {iso(run.started_at) or '-'}, finished "
        f"{iso(run.finished_at) or '-'}, duration {run.duration_s if run.duration_s else '-'} s"
    )
    steps = Table(box=None, header_style="bold", title="steps", title_justify="left")
    for col in ("#", "command", "status", "exit", "duration"):
        steps.add_column(col)
    for s in run.steps:
        took = (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None
        steps.add_row(
            str(s.index),
            cell(s.command),
            styled(s.status.value),
            "" if s.exit_code is None else str(s.exit_code),
            f"{took:.1f}s" if took else "-",
        )
    console.print(steps)
    executed = run.executed_nodes
    listed = run.nodes if compiled else executed
    if all_nodes and listed:
        nodes = Table(box=None, header_style="bold", title="nodes", title_justify="left")
        for col in ("step", "node", "type", "status", "time", "rows", "message"):
            nodes.add_column(col, overflow="fold")
        for n in listed:
            nodes.add_row(
                str(n.step_index if n.step_index is not None else ""),
                cell(n.name or n.unique_id),
                cell(n.resource_type),
                styled(n.status),
                f"{n.execution_time_s:.2f}s" if n.execution_time_s is not None else "-",
                "" if n.rows_affected is None else str(n.rows_affected),
                cell((n.message or "")[:120] if n.status not in ("success", "pass", "compiled") else ""),
            )
        console.print(nodes)
    hidden = len(run.nodes) - len(executed)
    if all_nodes and hidden and not compiled:
        console.print(f"({hidden} node results of steps that only compiled are not listed: --all-nodes shows them)")
    timed = sorted(
        (n for n in executed if n.resource_type in ("model", "snapshot", "seed") and n.execution_time_s),
        key=lambda n: -(n.execution_time_s or 0),
    )[:slowest]
    if timed:
        console.print(
            Text("slowest: ", style="bold")
            + Text(", ".join(f"{escape(n.name)} {n.execution_time_s:.2f}s" for n in timed))
        )
    failed = [n for n in executed if n.status in FAILED_STATUSES]
    for n in failed[:10]:
        console.print(
            Text.assemble(("✗ ", "red"), (escape(n.name or n.unique_id), "bold"), f": {escape(n.message or '')}")
        )
