"""Tables and summaries for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockyard.domain import RunRecord
from dockyard.views import iso

STATUS_STYLE = {"success": "green", "error": "red", "fail": "red", "runtime error": "red",
                "cancelled": "yellow", "warn": "yellow", "skipped": "dim", "running": "cyan",
                "queued": "dim", "starting": "cyan", "pass": "green"}


def styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def run_table(runs: list[RunRecord]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("id", "job", "env", "status", "trigger", "started", "duration"):
        table.add_column(col)
    for run in runs:
        status = run.status.value + (" (warnings)" if run.has_warnings else "")
        status += f" [{run.reason}]" if run.reason else ""
        table.add_row(str(run.id), run.job, run.environment, styled(status), run.trigger,
                      iso(run.started_at) or "-", f"{run.duration_s:.1f}s" if run.duration_s else "-")
    return table


def show_run(console: Console, run: RunRecord, *, slowest: int = 5, all_nodes: bool = True) -> None:
    head = Text.assemble(("Run ", "bold"), (str(run.id), "bold"), f"  {run.job} on {run.environment}  ",
                         styled(run.status.value), f" ({run.status_code})")
    if run.reason:
        head.append(f"  reason: {run.reason}")
    if run.has_warnings:
        head.append("  with warnings", style="yellow")
    console.print(head)
    console.print(f"trigger {run.trigger}, started {iso(run.started_at) or '-'}, finished "
                  f"{iso(run.finished_at) or '-'}, duration {run.duration_s if run.duration_s else '-'} s")
    steps = Table(box=None, header_style="bold", title="steps", title_justify="left")
    for col in ("#", "command", "status", "exit", "duration"):
        steps.add_column(col)
    for s in run.steps:
        took = (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None
        steps.add_row(str(s.index), s.command, styled(s.status.value),
                      "" if s.exit_code is None else str(s.exit_code), f"{took:.1f}s" if took else "-")
    console.print(steps)
    if all_nodes and run.nodes:
        nodes = Table(box=None, header_style="bold", title="nodes", title_justify="left")
        for col in ("step", "node", "type", "status", "time", "rows", "message"):
            nodes.add_column(col, overflow="fold")
        for n in run.nodes:
            nodes.add_row(str(n.step_index if n.step_index is not None else ""), n.name or n.unique_id,
                          n.resource_type, styled(n.status),
                          f"{n.execution_time_s:.2f}s" if n.execution_time_s is not None else "-",
                          "" if n.rows_affected is None else str(n.rows_affected),
                          (n.message or "")[:120] if n.status not in ("success", "pass") else "")
        console.print(nodes)
    timed = sorted((n for n in run.nodes if n.resource_type in ("model", "snapshot", "seed")
                    and n.execution_time_s), key=lambda n: -(n.execution_time_s or 0))[:slowest]
    if timed:
        console.print(Text("slowest: ", style="bold") + Text(", ".join(
            f"{n.name} {n.execution_time_s:.2f}s" for n in timed)))
    failed = [n for n in run.nodes if n.status in ("error", "fail", "runtime error")]
    for n in failed[:10]:
        console.print(Text.assemble(("✗ ", "red"), (n.name or n.unique_id, "bold"), f": {n.message or ''}"))
