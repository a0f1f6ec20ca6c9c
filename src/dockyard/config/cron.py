"""Cron schedules in dockyard.yml: jobs' and monitors' ``schedule: {cron, timezone}``, and the
time zones of other blocks (the daily digest), checked one way everywhere."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from dockyard.schedule import check_cron, check_timezone


def _cron(value: str) -> str:
    if problem := check_cron(value):
        raise ValueError(problem)
    return value


def _timezone(value: str) -> str:
    if problem := check_timezone(value):
        raise ValueError(problem)
    return value


Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]  # an IANA name such as "America/New_York"


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cron: Cron
    timezone: TimeZone = "UTC"
