"""``dockyard users create|list|delete``: the web UI's users (only a password hash is stored)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell
from dockyard.tokens import SCOPES
from dockyard.views import iso

users = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Web UI users: create (a password, stored as an argon2 hash), list, delete.",
)
cli.add_typer(users, name="users")


def _read_password(from_stdin: bool) -> str:
    from dockyard.errors import DockyardError

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise DockyardError("no password on standard input", hint="echo the password into --password-stdin")
        return password
    if not sys.stdin.isatty():
        raise DockyardError("no terminal to ask for the password", hint="pass it with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise DockyardError("the passwords differ", hint="type the same password twice")
    return first


@users.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    scope: Annotated[
        str, typer.Option("--scope", help="read, trigger (includes read) or admin (everything).")
    ] = "read",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user who logs in to the web UI with a password (asked twice, never echoed)."""
    from dockyard.errors import DockyardError

    if scope not in SCOPES:
        raise DockyardError(f"unknown scope {scope!r}", hint="use --scope read, trigger or admin")
    app = _app(config)
    password = _read_password(password_stdin)
    record = app.users.create(name, password, scope)
    out.print(cell(f"Created user {record.id} '{record.name}' with scope {record.scope}."))


@users.command("list")
@handle_errors
def list_users(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every user with its scope and creation time (never a password or hash)."""
    rows = [
        {"id": u.id, "name": u.name, "scope": u.scope, "created_at": iso(u.created_at), "disabled": u.disabled}
        for u in _app(config).users.list()
    ]
    if as_json:
        return _emit(rows)
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "scope", "created", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]), cell(r["name"]), cell(r["scope"]), r["created_at"], "disabled" if r["disabled"] else "active"
        )
    out.print(table)


@users.command("delete")
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    config: ConfigOpt = None,
) -> None:
    """Delete a user; its web UI sessions end at once."""
    record = _app(config).users.delete(name)
    out.print(cell(f"Deleted user {record.id} '{record.name}'; its sessions are ended."))
