"""``dockyard notify test NAME``: send a sample alert through one channel; the delivery log
of ``dockyard show RUN`` (docs/alerts.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell

STYLE = {"sent": "green", "failed": "red", "pending": "yellow", "suppressed": "dim"}

notify = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Notifications: send a test message through a channel.",
)
cli.add_typer(notify, name="notify")


@notify.command("test")
@handle_errors
def test(
    name: Annotated[
        str,
        typer.Argument(help="A top-level notification's name, or job:<job name>:<index> for a job's own."),
    ],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Send a sample message through the notification NAME now and print the channel's answer."""
    app = _app(config)
    channel = app.alerts.channel(name)
    result = app.alerts.test(name)
    if as_json:
        return _emit({"channel": channel.name, "type": channel.notification.type, "result": result})
    out.print(cell(f"Sent a test message to {channel.name} ({channel.notification.type}): {result}"))


def show_notifications(console: Console, rows: list[dict]) -> None:
    """The "Notifications" section of ``dockyard show``: channel, event, status, attempts, error."""
    if not rows:
        return
    table = Table(box=None, header_style="bold", title="notifications", title_justify="left")
    for col in ("channel", "type", "event", "status", "attempts", "last error / result"):
        table.add_column(col, overflow="fold")
    for row in reversed(rows):  # oldest first, like the steps
        table.add_row(
            cell(row["channel"]),
            cell(row["channel_type"]),
            cell(row["event"]),
            Text(row["status"], style=STYLE.get(row["status"], "")),
            str(row["attempts"]),
            cell((row.get("last_error") or row.get("result") or "")[:200]),
        )
    console.print(table)
