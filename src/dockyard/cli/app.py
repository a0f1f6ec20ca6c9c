"""The CLI's one shared module: the Typer app, its global options and state, how a command
gets the App (``_app``) and prints JSON (``_emit``). Command modules (:mod:`dockyard.cli.main`,
:mod:`dockyard.cli.service`, :mod:`dockyard.cli.tokens`) import from here, never from each
other."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from dockyard import __version__
from dockyard.cli.render import TerminalConsole
from dockyard.domain import RunStatus

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="dockyard: deploy, schedule and observe dbt Core projects.",
)
# When piped, don't squeeze tables into 80 columns.
WIDTH = None if sys.stdout.isatty() else 160
out = TerminalConsole(highlight=False, width=WIDTH)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path of dockyard.yml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only on standard output.")]
EXIT = {RunStatus.SUCCESS: 0, RunStatus.ERROR: 1, RunStatus.CANCELLED: 130}


class State:
    config: Path | None = None
    store_url: str | None = None


state = State()


def _app(config: Path | None = None):
    from dockyard.app import App

    return App.open(config or state.config, state.store_url)


def _emit(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        print(f"dockyard {__version__}")
        raise typer.Exit(0)


@cli.callback()
def main_options(
    config: ConfigOpt = None,
    store_url: Annotated[str | None, typer.Option("--store-url", help="Store URL (overrides config).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_version)
    ] = False,
) -> None:
    state.config, state.store_url = config, store_url
    if store_url:  # its password would show in /proc/<pid>/cmdline (to dbt steps too)
        from urllib.parse import urlsplit

        from dockyard.environ import hide_in_argv

        with contextlib.suppress(ValueError):
            hide_in_argv(urlsplit(store_url).password)
    if debug:
        os.environ["DOCKYARD_DEBUG"] = "1"
