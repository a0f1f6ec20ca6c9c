"""The ``metrics:`` block of dockyard.yml: slowdown alerts, the daily digest, the history in
the warehouse, the Prometheus label bound (docs/metrics.md, docs/configuration.md)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.config.cron import TimeZone

CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SlowdownConfig(_Strict):
    """A model whose runtime exceeds ``factor`` x the median of its last ``last_runs``
    successful runs (at least ``min_runs`` of them) and ``min_seconds`` alerts, once, until it
    is back under."""

    enabled: bool = True
    factor: float = Field(3.0, gt=1, le=1000)
    last_runs: int = Field(10, ge=1, le=200)
    min_runs: int = Field(5, ge=1, le=200)
    min_seconds: float = Field(10.0, ge=0, le=86400)


class DigestConfig(_Strict):
    """The daily digest: at ``at`` (HH:MM) in ``timezone``, to the top-level notifications named
    in ``notify``."""

    at: str = "08:00"
    timezone: TimeZone = "UTC"
    notify: list[str] = Field(min_length=1)
    environments: list[str] | None = None  # default: every environment

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if not CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day such as '08:00' (HH:MM, 24 h)")
        return value


class WarehouseHistoryConfig(_Strict):
    """After each run, its run and node results go to ``<schema>.<table>`` in the warehouse of
    its environment (out of band, by the scheduler's ``WriteWarehouseHistory`` duty)."""

    enabled: bool = False
    environments: list[str] | None = None  # default: every environment with jobs
    table: str = "dockyard_run_results"
    schema_: str | None = Field(None, alias="schema")  # default: the target's schema

    @field_validator("table", "schema_")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be a plain SQL identifier (letters, digits, _)")
        return value


class MetricsConfig(_Strict):
    slowdown: SlowdownConfig = Field(default_factory=SlowdownConfig)
    digest: DigestConfig | None = None
    warehouse_history: WarehouseHistoryConfig = Field(default_factory=WarehouseHistoryConfig)
    # at most this many models (the most recently run) label dockyard_model_duration_seconds
    histogram_models: int = Field(200, ge=0, le=5000)
