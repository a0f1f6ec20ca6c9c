"""Live progress of a foreground run on standard error: step, nodes done of total,
the nodes running now, elapsed time. Single-threaded (Rich Live without auto refresh),
because the runner forks dbt processes and must not have other threads."""

from __future__ import annotations

import re
import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from dockyard.domain import NodeResult, StepStatus
from dockyard.text import escape

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
