"""A foreground run on the terminal: live progress (step, nodes done of total, the nodes
running now, elapsed time; Rich Live without auto refresh, single-threaded, because the runner
forks dbt processes and must not have other threads), dbt's log lines, Ctrl-C, the summary or
JSON and the exit code. One rendering for both ways ``dockyard run`` runs a job: in this
process (:func:`foreground`) or handed to a running server's worker slots (:func:`handed_off`,
which replays what the worker writes as the same observer calls)."""

from __future__ import annotations

import re
import signal
import time

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from dockyard.cli.app import EXIT, WIDTH, _emit
from dockyard.cli.render import TerminalConsole, show_run
from dockyard.domain import NodeResult, StepStatus
from dockyard.text import escape
from dockyard.views import run_dict

COUNTER = re.compile(r"\b(\d+) of (\d+) (START|OK|PASS|WARN|ERROR|FAIL|SKIP)")
STEP_STYLE = {
    StepStatus.SUCCESS: "green",
    StepStatus.ERROR: "red",
    StepStatus.SKIPPED: "dim",
    StepStatus.CANCELLED: "yellow",
}


class Progress:
    """A RunObserver that draws progress and (optionally) echoes dbt's log lines."""

    def __init__(self, console: Console, commands: list[str] | None = None, echo_logs: bool = True):
        self.console = console
        self.echo = echo_logs
        self.commands = commands or []
        self.started = time.monotonic()
        self.step: tuple[int, str] | None = None
        self.done = 0
        self.total = 0
        self.running: dict[str, str] = {}
        self.live = Live(
            console=console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self._last = 0.0

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if self.console.is_terminal:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.console.is_terminal:
            self.live.__exit__(*exc)

    # RunObserver ------------------------------------------------------------------------------
    def step_started(self, index: int, command: str) -> None:
        self.step, self.done, self.total = (index, command), 0, 0
        self.running.clear()
        self.console.print(Text(f"── step {index}: {escape(command)}", style="bold"))
        self._refresh(force=True)

    def step_finished(self, index: int, status: StepStatus) -> None:
        self.console.print(Text(f"── step {index} {status.value}", style=STEP_STYLE.get(status, "")))
        self.running.clear()
        self._refresh(force=True)

    def nodes(self, index: int, nodes: list[NodeResult]) -> None:
        for node in nodes:
            if node.status in ("started", "running", "compiling", "executing") and not node.finished_at:
                self.running[node.unique_id] = escape(node.name or node.unique_id)
            else:
                self.running.pop(node.unique_id, None)
        self._refresh()

    def log(self, index: int, line: str) -> None:
        match = COUNTER.search(line)
        if match:
            self.total = int(match.group(2))
            if match.group(3) != "START":
                self.done = max(self.done, int(match.group(1)))
        if self.echo:
            if self.console.is_terminal:
                self.console.print(Text(escape(line, keep="\t")), highlight=False, soft_wrap=True)
            else:
                self.console.file.write(escape(line, keep="\t") + "\n")
        self._refresh()

    def tick(self) -> None:
        """Between events (a handed-off run's follow loop calls it each poll): the elapsed time
        moves on, and a burst of log lines read at once ends drawn."""
        self._refresh()

    # drawing ----------------------------------------------------------------------------------
    def render(self) -> Group:
        elapsed = time.monotonic() - self.started
        head = f"{self.step[1]}" if self.step else "starting"
        count = f"{self.done}/{self.total} nodes" if self.total else "parsing"
        now = ", ".join(list(self.running.values())[:4])
        more = f" +{len(self.running) - 4}" if len(self.running) > 4 else ""
        line = Text.assemble((f"[{elapsed:6.1f}s] ", "cyan"), (head, "bold"), f"  {count}")
        if now:
            line.append(f"  running: {now}{more}", style="dim")
        return Group(line)

    def _refresh(self, force: bool = False) -> None:
        if not self.console.is_terminal:
            return
        now = time.monotonic()
        if force or now - self._last > 0.1:
            self._last = now
            self.live.update(self.render(), refresh=True)


def _run_console(as_json: bool) -> TerminalConsole:
    """Where a foreground run's progress goes: standard error with --json (standard output
    holds the JSON only), standard output otherwise."""
    if as_json:
        return TerminalConsole(stderr=True, highlight=False)
    return TerminalConsole(highlight=False, width=WIDTH)


def _end(console: TerminalConsole, result, as_json: bool) -> None:
    """The summary (or the JSON run object) and the exit code of a finished run."""
    if as_json:
        _emit(run_dict(result))
    else:
        show_run(console, result, all_nodes=False)
    raise typer.Exit(EXIT.get(result.status, 1))


def handed_off(app, job_ref: int, env: str | None, as_json: bool, quiet: bool) -> bool:
    """``run`` through a running server (``app.handoff``): queue the run for its worker slots
    and show it as a foreground run shows (the same progress, summary, JSON and exit codes);
    Ctrl-C/SIGTERM cancels it in the server. False when no live worker slot would take it."""
    console = _run_console(as_json)
    progress = Progress(console, [], echo_logs=not (as_json or quiet))
    asked: list[int] = []

    def cancel(signum, frame):  # only a flag: the follow loop asks the store
        if not asked:
            console.print(
                Text(
                    "Cancelling: asking the server to stop dbt (Ctrl-C again does not skip the grace period)",
                    style="yellow",
                )
            )
        asked.append(signum)

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, cancel)  # before the run is queued: no Ctrl-C leaves it behind
    signal.signal(signal.SIGTERM, cancel)
    try:
        handed = app.handoff.start(job_ref, environment=env)
        if handed is None:
            if asked:
                raise typer.Exit(130)
            return False
        how = "handed to the running server" + (": worker slots warm" if handed.warm else "")
        with progress:
            console.print(
                Text(escape(f"Run {handed.run_id}: {handed.job} on {handed.environment} ({how})"), style="bold")
            )
            result = app.handoff.follow(handed.run_id, progress, cancelled=lambda: bool(asked))
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not result.status.is_final:  # cancelled, and the server did not end it in time
        console.print(
            Text(
                f"Run {result.id} did not stop within {app.handoff.stop_wait_s():.0f} s; the server goes on "
                f"stopping it (dockyard show {result.id})",
                style="yellow",
            )
        )
        raise typer.Exit(130)
    _end(console, result, as_json)
    return True


def foreground(start, title, as_json: bool, quiet: bool) -> None:
    """What ``run`` does around the App call, for any foreground run: progress (dbt's log
    lines unless quiet or JSON), Ctrl-C/SIGTERM cancel, the summary or JSON, the exit code.
    ``start(observer, on_start)`` runs it; ``title(run_id)`` is the first line printed."""
    from dockyard.environ import seal_process

    seal_process()  # dbt steps must not read this process's environment (/proc/<pid>/environ)
    console = _run_console(as_json)
    progress = Progress(console, [], echo_logs=not (as_json or quiet))
    previous = signal.getsignal(signal.SIGINT)

    def on_start(run_id, executor):
        def cancel(signum, frame):
            console.print(
                Text("Cancelling: stopping dbt (Ctrl-C again does not skip the grace period)", style="yellow")
            )
            executor.cancel()

        signal.signal(signal.SIGINT, cancel)
        signal.signal(signal.SIGTERM, cancel)
        progress.commands = [s.command for s in executor.plan.steps]
        console.print(Text(escape(title(run_id)), style="bold"))

    try:
        with progress:
            result = start(progress, on_start)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _end(console, result, as_json)
