"""dbt commands as written in jobs: parsing, validation and argv building.

A command is a string such as ``"dbt run --select tag:daily"``. It is split with
:func:`shlex.split` (never given to a shell), must start with ``dbt`` and name a
dbt subcommand, and may not contain shell syntax.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

# dbt-core 1.10/1.11 subcommands that make sense in a job.
SUBCOMMANDS = {
    "build",
    "clean",
    "clone",
    "compile",
    "debug",
    "deps",
    "docs",
    "list",
    "ls",
    "parse",
    "retry",
    "run",
    "run-operation",
    "seed",
    "show",
    "snapshot",
    "source",
    "test",
}
SUB_SUBCOMMANDS = {"docs": {"generate"}, "source": {"freshness"}}
SHELL_TOKENS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "<<", "`", "$(", "2>", "2>&1"}
# Subcommands that write no target folder and reject --target-path.
NO_TARGET_PATH = ("debug", "deps")
# Subcommands (and the ``args.which`` of their run_results.json: ``docs generate`` is
# ``generate``, ``ls`` is ``list``) whose node results are compiles, not executions: dbt
# reports a ``success`` per node it compiled (or listed, or previewed) without building,
# testing or loading anything (dbt-core 1.11: CompileTask and its subclasses GenerateTask,
# ShowTask; ListTask, parse, debug, deps, clean).
COMPILE_ONLY = frozenset({"compile", "docs", "generate", "list", "ls", "show", "parse", "debug", "deps", "clean"})
# Subcommands that write into the project folder itself, not into the target folder:
# ``deps`` empties and refills ``dbt_packages`` (and writes package-lock.yml), ``clean``
# deletes the project's ``clean-targets``. Two at once in one project break each other.
WRITES_PROJECT = frozenset({"deps", "clean"})
# Flags dockyard sets itself for each environment; a job may not set them.
MANAGED_FLAGS = {
    "--target",
    "-t",
    "--profiles-dir",
    "--project-dir",
    "--target-path",
    "--log-path",
    "--log-format",
    "--log-format-file",
    "--log-level-file",
}


@dataclass(frozen=True)
class DbtCommand:
    """A validated dbt command: ``args`` excludes the leading ``dbt``."""

    text: str
    args: tuple[str, ...]

    @property
    def subcommand(self) -> str:
        return self.args[0]

    @property
    def name(self) -> str:
        """``run``, ``docs generate``, ``source freshness``..."""
        if self.args[0] in SUB_SUBCOMMANDS and len(self.args) > 1:
            return f"{self.args[0]} {self.args[1]}"
        return self.args[0]

    def has_flag(self, *flags: str) -> bool:
        return any(a == f or a.startswith(f + "=") for a in self.args for f in flags)


def executes_nodes(which: str) -> bool:
    """Whether the node results of dbt subcommand ``which`` (``run``, ``docs``...) or of a
    run_results.json whose ``args.which`` is ``which`` (``generate``, ``list``...) are
    executions (models built, tests run, seeds loaded, freshness checked) rather than
    compiles."""
    return which not in COMPILE_ONLY


def writes_project(argv: list[str] | tuple[str, ...]) -> bool:
    """Whether a step's dbt argv writes into the project folder (see :data:`WRITES_PROJECT`)."""
    return bool(argv) and argv[0] in WRITES_PROJECT


def with_target_path(argv: list[str], target_path: str) -> list[str]:
    """``argv`` with the value of its ``--target-path`` replaced (unchanged without one)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--target-path" and i + 1 < len(out):
            out[i + 1] = target_path
        elif arg.startswith("--target-path="):
            out[i] = f"--target-path={target_path}"
    return out


class CommandError(ValueError):
    """A job command is not a plain dbt command; the message says why."""


def parse_command(text: str) -> DbtCommand:
    if not isinstance(text, str) or not text.strip():
        raise CommandError("a command must be a non-empty string such as 'dbt run'")
    for bad in ("`", "$(", "\n"):
        if bad in text:
            raise CommandError(f"shell syntax {bad!r} is not allowed; write one dbt command per entry")
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise CommandError(f"cannot split the command: {exc}") from exc
    if not parts or parts[0] != "dbt":
        raise CommandError(f"commands must start with 'dbt', got {parts[0] if parts else text!r}")
    for token in parts[1:]:
        if token in SHELL_TOKENS or token.startswith((">", "<", "|", "&&", ";")) or token.endswith(";"):
            raise CommandError(f"shell syntax {token!r} is not allowed; commands run without a shell")
    if len(parts) < 2:
        raise CommandError("a dbt subcommand is missing, e.g. 'dbt run'")
    sub = parts[1]
    if sub not in SUBCOMMANDS:
        raise CommandError(f"'{sub}' is not a dbt subcommand (use one of {', '.join(sorted(SUBCOMMANDS))})")
    if sub in SUB_SUBCOMMANDS:
        if len(parts) < 3 or parts[2] not in SUB_SUBCOMMANDS[sub]:
            allowed = ", ".join(f"'dbt {sub} {s}'" for s in sorted(SUB_SUBCOMMANDS[sub]))
            raise CommandError(f"'dbt {sub}' needs a subcommand: {allowed}")
    cmd = DbtCommand(text=text, args=tuple(parts[1:]))
    if cmd.has_flag(*MANAGED_FLAGS):
        flags = ", ".join(sorted(f for f in MANAGED_FLAGS if cmd.has_flag(f)))
        raise CommandError(f"{flags} is set by dockyard from the environment; remove it from the command")
    return cmd


def build_argv(
    command: DbtCommand,
    *,
    target: str,
    profiles_dir: str,
    project_dir: str,
    target_path: str,
    threads: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The argv after ``dbt`` for one step of a run in one environment."""
    argv = list(command.args)
    argv += ["--target", target, "--profiles-dir", profiles_dir, "--project-dir", project_dir]
    if command.subcommand not in NO_TARGET_PATH:
        argv += ["--target-path", target_path]
    # dockyard keeps dbt's console log per step (scrubbed); dbt's own debug file log
    # would be an unscrubbed copy in the project folder, so it is turned off.
    argv += ["--log-level-file", "none"]
    if (
        threads
        and command.subcommand not in ("debug", "deps", "clean", "parse", "list", "ls")
        and not command.has_flag("--threads")
    ):
        argv += ["--threads", str(threads)]
    if extra:
        argv += extra
    return argv
