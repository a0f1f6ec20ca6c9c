"""What the next attempt of a failed run re-runs: :func:`retry_steps` (see
:mod:`dockyard.retry` for how a failed step's command is rewritten)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from dockyard.dbt.command import DbtCommand, parse_command
from dockyard.dbt.selection import EXCLUDE_FLAGS, SELECT_FLAGS, SELECTOR_FLAGS, node_selector, take_option
from dockyard.domain import NodeResult, RunRecord, StepResult, StepStatus
from dockyard.retry.classify import DONE_STATUSES, _step_nodes, failed_step

# dbt commands whose nodes can be selected; every other command is repeated whole.
SELECTABLE = frozenset({"run", "test", "seed", "snapshot", "build", "source freshness"})


@dataclass(frozen=True)
class RetryStep:
    """One step of a retry: where it was in the original run, and what to run now.

    ``how``: ``"select"`` (only the nodes that did not complete, listed), ``"exclude"`` (the
    command minus the nodes that completed), ``"whole"`` (the failed step again, as it
    was) or ``"unchanged"`` (a step after the failed one, never reached)."""

    index_in_original: int
    command: str
    how: str = "unchanged"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _text(args: list[str]) -> str:
    return shlex.join(["dbt", *args])


def _indirect_empty(cmd: DbtCommand) -> bool:
    args = list(cmd.args)
    for i, arg in enumerate(args):
        if arg == "--indirect-selection" and i + 1 < len(args):
            return args[i + 1].lower() == "empty"
        if arg.startswith("--indirect-selection="):
            return arg.split("=", 1)[1].lower() == "empty"
    return False


def rewrite_step(step: StepResult, nodes: list[NodeResult], *, default_selector: bool = False) -> RetryStep:
    """The retry of one failed step, from its node results (see the module docstring)."""
    whole = RetryStep(step.index, step.command, "whole")
    cmd = parse_command(step.command)
    if cmd.name not in SELECTABLE:
        return whole
    empty = _indirect_empty(cmd)
    done, todo = [], []
    for node in nodes:
        selector = node_selector(node.unique_id, indirect_empty=empty)
        if selector is not None:
            (done if node.status in DONE_STATUSES else todo).append(selector)
    done, todo = _unique(done), _unique(todo)
    args = list(cmd.args)
    complete = step.status == StepStatus.ERROR and step.exit_code in (0, 1)
    if complete:
        if not todo:
            return whole  # the failure was outside the nodes (a hook, dbt itself)
        rest, _, _ = take_option(args, SELECT_FLAGS, multi=True)
        rest, _, _ = take_option(rest, SELECTOR_FLAGS, multi=False)
        return RetryStep(step.index, _text([*rest, "--select", *todo]), "select")
    if not done:
        return whole
    _, _, has_selector = take_option(args, SELECTOR_FLAGS, multi=False)
    _, _, has_select = take_option(args, SELECT_FLAGS, multi=True)
    if has_selector or (default_selector and not has_select):
        return whole
    rest, excluded, _ = take_option(args, EXCLUDE_FLAGS, multi=True)
    merged = _unique([*excluded, *done])
    return RetryStep(step.index, _text([*rest, "--exclude", *merged]), "exclude")


def retry_steps(run: RunRecord, *, default_selector: bool = False) -> list[RetryStep]:
    """The steps of the next attempt of a failed run: its first failed step rewritten to
    the nodes that did not complete, then every later step unchanged. Empty when every
    step succeeded. ``default_selector``: the project's ``selectors.yml`` has a selector
    with ``default: true`` (see :func:`has_default_selector`)."""
    step = failed_step(run)
    if step is None:
        return []
    out = [rewrite_step(step, _step_nodes(run, step.index), default_selector=default_selector)]
    for later in sorted(run.steps, key=lambda s: s.index):
        if later.index > step.index:
            out.append(RetryStep(later.index, later.command, "unchanged"))
    for item in out:
        parse_command(item.command)  # every rewritten command is still a valid job command
    return out


def has_default_selector(project_dir: str | Path) -> bool:
    """Whether the dbt project's ``selectors.yml`` marks a selector ``default`` (a Jinja
    expression counts: it may be true)."""
    path = Path(project_dir) / "selectors.yml"
    if not path.is_file():
        return False
    from dockyard.config.yamlfile import read_yaml
    from dockyard.errors import ConfigError

    try:
        data = read_yaml(path) or {}  # bounded: a selectors.yml bomb is refused, not expanded
    except ConfigError:
        return False
    for selector in (data.get("selectors") or []) if isinstance(data, dict) else []:
        if not isinstance(selector, dict):
            continue
        value = selector.get("default")
        if value is True or (isinstance(value, str) and value.strip().lower() not in ("", "false")):
            return True
    return False
