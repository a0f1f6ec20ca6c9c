"""One place where errors become CLI output: ``Error: ...`` on stderr and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import typer
from rich.text import Text

from dockyard.cli.render import TerminalConsole
from dockyard.errors import DockyardError
from dockyard.text import escape

err_console = TerminalConsole(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DockyardError as exc:
            if os.environ.get("DOCKYARD_DEBUG"):
                raise
            for line in exc.render().splitlines():
                err_console.print(Text.assemble(("Error:", "bold red"), " ", escape(line)))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print(Text("Interrupted", style="yellow"))
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # an unexpected failure: short message, traceback only when asked
            if os.environ.get("DOCKYARD_DEBUG"):
                raise
            print(
                escape(
                    f"Error: internal error {type(exc).__name__}: {exc}: rerun with --debug for the "
                    "traceback and report it"
                ),
                file=sys.stderr,
            )
            raise typer.Exit(2) from None

    return wrapper
