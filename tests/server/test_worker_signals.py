"""A worker stops on SIGTERM whenever it arrives, including in the instant after a slot is
forked and before the slot has run a line of its own (a CI run once hung there: the slot
had replaced the inherited stop flag with a fresh one and ignored the signal forever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

# The slot body is replaced by a loop on the stop flag so the test needs no dbt; the fork
# is wrapped so that the signal reaches the child (or the parent) right after fork().
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from dockyard.server import processes as supervisor

    target = sys.argv[1]
    real_fork = os.fork
    forks = []

    def fork():
        pid = real_fork()
        forks.append(pid)
        if pid == 0 and target == "child" and len(forks) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        if pid and target == "parent" and len(forks) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return pid

    def slot(config_path, store_url, stop):
        while not stop():
            time.sleep(0.01)
        print("slot stopped", os.getpid(), flush=True)

    os.fork = fork
    supervisor.run_worker_slot = slot
    supervisor.run_worker(None, None, 3)
    print("worker stopped, slots forked:", len(forks), flush=True)
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["child", "parent"])
def test_sigterm_right_after_a_fork_stops_the_worker(target):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, target],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if target == "child":
        # the first slot got a SIGTERM of its own at birth: it stops (and is restarted);
        # then the worker is stopped
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the worker did not stop after SIGTERM:\n{out}")
    assert proc.returncode == 0, out
    if target == "parent":
        # stopped while forking its first slot: it forks no more and stops that one
        assert "worker stopped, slots forked: 1" in out, out
        assert out.count("slot stopped") == 1, out
    else:
        assert "worker slot 0 exited (status 0); restarting it" in out, out
        assert out.count("slot stopped") == 4, out  # slot 0, then the three live slots
