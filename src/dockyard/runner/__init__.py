"""Running dbt: commands, invocations, events and the run executor."""

from dockyard.runner.executor import Executor
from dockyard.runner.fork import preload_dbt
from dockyard.runner.invocation import DbtInvocation
from dockyard.runner.output import DbtEvent, LogLine
from dockyard.runner.plan import Recorder, RunOutcome, RunPlan, StepPlan

__all__ = [
    "DbtEvent",
    "DbtInvocation",
    "Executor",
    "LogLine",
    "Recorder",
    "RunOutcome",
    "RunPlan",
    "StepPlan",
    "preload_dbt",
]
