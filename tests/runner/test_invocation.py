"""DbtInvocation on its own: output in both modes, exit codes, errors."""

from __future__ import annotations

import re
import shutil

import pytest

from dockyard.errors import DbtInvocationError
from dockyard.runner.invocation import DbtEvent, DbtInvocation, LogLine, human_line

from .conftest import FIXTURES, MODES, base_env, group_members

TS = re.compile(r"^\d\d:\d\d:\d\d  ")


def collect(inv: DbtInvocation) -> tuple[list[str], list[DbtEvent]]:
    lines, events = [], []
    while not inv.done:
        for item in inv.poll(0.1):
            if isinstance(item, LogLine):
                lines.append(item.text)
            else:
                events.append(item)
    return lines, events


def args_for(project, tmp_path, *args):
    return [
        *args,
        "--profiles-dir",
        str(project),
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
    ]


@pytest.mark.slow
def test_both_modes_print_the_same_human_log(tmp_path):
    outputs = {}
    for mode in MODES:
        project = tmp_path / mode / "mini"
        shutil.copytree(FIXTURES / "mini", project)
        inv = DbtInvocation(
            args_for(project, tmp_path / mode, "run", "--select", "stg_numbers"),
            project_dir=project,
            env=base_env(tmp_path),
            mode=mode,
        )
        inv.start()
        with inv:
            lines, events = collect(inv)
        assert inv.returncode == 0
        assert group_members(inv.pid) == []
        outputs[mode] = [TS.sub("HH:MM:SS  ", line) for line in lines]
        assert all("\x1b" not in line for line in lines)
        names = {e.name for e in events}
        assert {"LogStartLine", "LogModelResult"} <= names
        if mode == "fork":  # debug-level events only reach the in-process callback
            assert {"NodeStart", "NodeFinished"} <= names
    normalise = re.compile(r"\d+\.\d+ ?s(econds)?\b")
    fork = [normalise.sub("Xs", line) for line in outputs["fork"]]
    sub = [normalise.sub("Xs", line) for line in outputs["subprocess"]]
    assert fork == sub
    assert "HH:MM:SS  1 of 1 OK created sql table model main.stg_numbers " + "." * 10 in "\n".join(fork)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_usage_error_exit_code_2(tmp_path, mode):
    project = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", project)
    inv = DbtInvocation(["run", "--no-such-flag"], project_dir=project, env=base_env(tmp_path), mode=mode)
    inv.start()
    assert inv.wait(timeout=60) == 2
    text = "\n".join(i.text for i in inv.poll() if isinstance(i, LogLine))
    inv.close()
    assert "no-such-flag" in text


def test_bad_arguments():
    with pytest.raises(ValueError):
        DbtInvocation(["run"], project_dir="/", env={}, mode="thread")
    inv = DbtInvocation(["run"], project_dir="/no/such/folder", env={})
    with pytest.raises(DbtInvocationError):
        inv.start()


def test_human_line_matches_dbt_text_format():
    event = {
        "info": {
            "name": "LogStartLine",
            "ts": "2026-11-29T06:14:46.701764Z",
            "msg": "1 of 9 START sql view model main.echo ... [RUN]",
        }
    }
    assert human_line(event) == "06:14:46  1 of 9 START sql view model main.echo ... [RUN]"
    printed = {"info": {"name": "PrintEvent", "ts": "2026-11-29T06:14:46Z", "msg": "\x1b[32mplain\x1b[0m"}}
    assert human_line(printed) == "plain"
