"""The ``monitors:`` list of dockyard.yml: data monitors as code (docs/monitors.md).

A :class:`Monitor` watches one table (``table: schema.table`` or ``database.schema.table``)
or one dbt model (``model:``, a name or unique id resolved to its relation from the
environment's last successful manifest): its ``freshness`` (the age of ``max(<timestamp
column>)``, or of the model's last successful build), its ``volume`` (the row count against a
minimum, a relative change, or as an anomaly), its ``schema`` (columns added, removed or
changed type) or a custom ``sql`` query whose rows are failures. The shape follows Monte
Carlo's monitors-as-code (``name``, ``type``, ``table``, ``threshold``, ``alert_on_change``);
the anomaly settings are those of :class:`dockyard.anomaly.Settings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard.config.cron import Schedule

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
TABLE = re.compile(rf"^(?:(?:\"[^\"]+\"|{IDENT})\.)?(?:\"[^\"]+\"|{IDENT})\.(?:\"[^\"]+\"|{IDENT})$")
DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)\s*$", re.I
)
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
#: ``{{ relation('model') }}`` in a sql monitor: the model's relation (ref() and source() are not
#: available to dbt run-operation)
RELATION_CALL = re.compile(r"\{\{\s*relation\(\s*['\"]([^'\"]+)['\"]\s*\)\s*\}\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def parse_duration(text: str) -> float:
    """Seconds of ``"6 hours"``, ``"30 minutes"``, ``"2 days"``, ``"90s"``; ValueError otherwise."""
    m = DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration such as '6 hours', '30 minutes' or '2 days'")
    return float(m.group(1)) * UNIT_S[m.group(2)[0].lower()]


@dataclass(frozen=True)
class Threshold:
    """A parsed ``threshold``: ``kind`` max_age (seconds), min_rows, relative (a fraction) or anomaly."""

    kind: str
    value: float | None = None


class Monitor(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NAME)
    type: Literal["freshness", "volume", "schema", "sql"]
    table: str | None = Field(None, max_length=500)  # schema.table or database.schema.table
    model: str | None = Field(None, min_length=1, max_length=500)  # a dbt model's name or unique id
    environment: str | None = None  # default: the one environment (or that of the jobs building it)
    # freshness: a duration ("6 hours"); volume: a minimum row count (1000), a relative change
    # against the previous measurement ("10%") or "anomaly" (the default)
    threshold: str | int | float | None = None
    timestamp_column: str | None = Field(None, min_length=1, max_length=200)  # freshness
    sql: str | None = Field(None, min_length=1, max_length=20000)  # type sql: the rows returned are failures
    schedule: Schedule | None = None  # also on a cron of its own
    after_jobs: list[str] | None = None  # default: the jobs whose runs build the model or table
    alert_on_change: bool = True  # schema: alert on added, removed and type-changed columns
    severity: Literal["warning", "critical"] = "critical"
    description: str | None = Field(None, max_length=2000)
    # anomaly scoring (volume with threshold anomaly): see dockyard.anomaly
    sensitivity: float = Field(3.5, gt=0, le=100)
    min_training_points: int = Field(7, ge=2, le=1000)
    training_days: float = Field(35, gt=0, le=3650)
    min_absolute_change: float = Field(100, ge=0)
    min_relative_change: float = Field(0.1, ge=0, le=100)
    seasonality: Literal["none", "day_of_week"] = "day_of_week"
    direction: Literal["both", "spike", "drop"] = "both"

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is not None and not TABLE.match(value):
            raise ValueError(f"{value!r} must be schema.table or database.schema.table")
        return value

    @field_validator("timestamp_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(rf"{IDENT}|\"[^\"]+\"", value):
            raise ValueError(f"{value!r} is not a column name")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Monitor:
        if self.table and self.model:
            raise ValueError(f"monitor {self.name!r}: give table or model, not both")
        if self.type != "sql" and not (self.table or self.model):
            raise ValueError(f"monitor {self.name!r}: a {self.type} monitor needs a table or a model")
        if self.type == "sql" and not self.sql:
            raise ValueError(f"monitor {self.name!r}: a sql monitor needs sql (a query whose rows are failures)")
        if self.sql and ("{{" in RELATION_CALL.sub("", self.sql) or "{%" in self.sql):
            raise ValueError(
                f"monitor {self.name!r}: sql may use {{{{ relation('model') }}}} and table names only"
                " (ref(), source() and other Jinja are not available)"
            )
        if self.type != "sql" and self.sql:
            raise ValueError(f"monitor {self.name!r}: sql is for type sql")
        if self.timestamp_column and self.type != "freshness":
            raise ValueError(f"monitor {self.name!r}: timestamp_column is for type freshness")
        if self.type == "freshness" and self.threshold is None:
            raise ValueError(f"monitor {self.name!r}: a freshness monitor needs a threshold such as '6 hours'")
        if self.type in ("schema", "sql") and self.threshold is not None:
            raise ValueError(f"monitor {self.name!r}: a {self.type} monitor takes no threshold")
        self.parsed_threshold()  # raises ValueError with the reason
        return self

    def parsed_threshold(self) -> Threshold | None:
        value = self.threshold
        if self.type == "freshness":
            return Threshold("max_age", parse_duration(str(value)))
        if self.type != "volume":
            return None
        if value is None or (isinstance(value, str) and value.strip().lower() == "anomaly"):
            return Threshold("anomaly")
        if isinstance(value, bool):
            raise ValueError(f"monitor {self.name!r}: threshold {value!r}")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError(f"monitor {self.name!r}: a minimum row count is 0 or more")
            return Threshold("min_rows", float(value))
        if m := PERCENT.match(value):
            return Threshold("relative", float(m.group(1)) / 100)
        if value.strip().isdigit():
            return Threshold("min_rows", float(value))
        raise ValueError(
            f"monitor {self.name!r}: volume threshold {value!r} must be a row count (1000), a change ('10%')"
            " or 'anomaly'"
        )


def _unique(monitors: list[Monitor]) -> list[Monitor]:
    seen: set[str] = set()
    for m in monitors:
        if m.name in seen:
            raise ValueError(f"two monitors are named {m.name!r}: names must be unique")
        seen.add(m.name)
    return monitors


Monitors = Annotated[list[Monitor], AfterValidator(_unique)]
