"""Running dbt: commands, invocations, events and the run executor."""

from dockyard.runner.executor import Executor
from dockyard.runner.invocation import DbtEvent, DbtInvocation, LogLine, preload_dbt
from dockyard.runner.plan import Recorder, RunOutcome, RunPlan, StepPlan

__all__ = [
    "DbtEvent", "DbtInvocation", "Executor", "LogLine", "Recorder", "RunOutcome", "RunPlan",
    "StepPlan", "preload_dbt",
]
