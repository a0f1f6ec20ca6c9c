"""Named crash points for fault tests (Dagster's ``debug_crash_flags`` idea).

``DOCKYARD_CRASH_AT=run_inserted`` makes the process kill itself with
``DOCKYARD_CRASH_SIGNAL`` (default SIGKILL) when it reaches that point; with a handled signal
such as SIGTERM it then carries on as its handler decides. Unset, a crash point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = {
    # scheduler
    "tick_leased",
    "run_inserted",
    "tick_committed",
    # worker
    "run_claimed",
    "run_started",
    "step_finished",
    "run_finished",
    # event dispatch (scheduler, foreground run): a sink got an event, its cursor not yet moved
    "event_delivered",
    "sink_event_delivered",  # the same, for a sink of events.sinks only (not a built-in consumer)
}


def crash_point(name: str) -> None:
    assert name in POINTS, name
    if os.environ.get("DOCKYARD_CRASH_AT") != name:
        return
    sig = getattr(signal, os.environ.get("DOCKYARD_CRASH_SIGNAL", "SIGKILL"))
    # A handled signal (SIGTERM sets the stop flag of schedulers and workers) returns here and
    # the process goes on exactly as when the signal arrives at this point: it stops the way
    # its handler asked (gracefully). Waiting here instead would hang a flag-setting process.
    os.kill(os.getpid(), sig)
