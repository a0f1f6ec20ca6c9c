"""``dockyard tokens create|list|revoke``: API tokens (only their digests are stored)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.render import cell
from dockyard.text import control_problem
from dockyard.tokens import SCOPES
from dockyard.views import iso

tokens = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="API tokens: create (shown once), list, revoke.",
)
cli.add_typer(tokens, name="tokens")


@tokens.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    scope: Annotated[
        str, typer.Option("--scope", help="read, trigger (includes read) or admin (everything).")
    ] = "read",
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once, alone on the last line; only its digest is stored."""
    from dockyard.errors import DockyardError

    if scope not in SCOPES:
        raise DockyardError(f"unknown scope {scope!r}", hint="use --scope read, trigger or admin")
    if problem := control_problem(name, "the token name"):
        raise DockyardError(problem, hint="use printable characters")
    record, token = _app(config).tokens.create(name, scope)
    out.print(
        cell(
            f"Created token {record.id} '{record.name}' with scope {record.scope}. Copy it now: "
            "dockyard keeps only its digest and cannot show it again."
        ),
        soft_wrap=True,
    )
    print(token, flush=True)


@tokens.command("list")
@handle_errors
def list_tokens(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every token with its scope, first characters, creation, last use and whether revoked."""
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "scope": t.scope,
            "prefix": t.prefix,
            "created_at": iso(t.created_at),
            "last_used_at": iso(t.last_used_at),
            "revoked_at": iso(t.revoked_at),
        }
        for t in _app(config).tokens.list()
    ]
    if as_json:
        return _emit(rows)
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "scope", "token", "created", "last used", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            cell(r["name"]),
            cell(r["scope"]),
            cell(r["prefix"] + "..."),
            r["created_at"] or "-",
            r["last_used_at"] or "never",
            "revoked" if r["revoked_at"] else "active",
        )
    out.print(table)


@tokens.command("revoke")
@handle_errors
def revoke(
    name_or_id: Annotated[str, typer.Argument(help="The token's id or name.")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a token; requests with it are refused from the next one on."""
    for record in _app(config).tokens.revoke(name_or_id):
        out.print(cell(f"Revoked token {record.id} '{record.name}' ({record.scope})"))
