"""Measuring monitors in the warehouse, and judging what was measured (docs/monitors.md).

:data:`MACROS` holds ``dockyard__measure(checks)``, run with ``dbt run-operation`` through
:func:`dockyard.app.warehouse.run_macro`: one dbt process measures every monitor of an
environment, through dbt's adapter (so every adapter works the same way): a row count, the
``max()`` of a timestamp column, the columns of the relation (``adapter.get_columns_in_relation``,
the warehouse's ``information_schema`` on DuckDB and PostgreSQL), or a custom query's failing
rows (counted, and a bounded sample). The judging functions below are pure: a measurement in,
a :class:`Verdict` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dockyard import anomaly
from dockyard.config.monitors import RELATION_CALL

SAMPLE_ROWS = 10  # failing rows kept per sql measurement
SAMPLE_CHARS = 200  # of each value

MACROS = """{# written by dockyard: measuring data monitors (docs/monitors.md) #}
{% macro dockyard__measure(checks) %}
  {% set out = {} %}
  {% for c in checks %}
    {% set res = {} %}
    {% if c['kind'] == 'sql' %}
      {% set ns = namespace(sql=c['sql']) %}
      {% for token, r in c['relations'].items() %}
        {% set rel = api.Relation.create(database=r[0] or target.database, schema=r[1], identifier=r[2]) %}
        {% set ns.sql = ns.sql.replace(token, rel | string) %}
      {% endfor %}
      {% set sql = ns.sql %}
      {% set n = run_query('select count(*) from (' ~ sql ~ ') dockyard_failures').columns[0].values()[0] %}
      {% set rows = [] %}
      {% if n | int > 0 %}
        {% set sample = run_query('select * from (' ~ sql ~ ') dockyard_failures limit ' ~ c['limit']) %}
        {% for row in sample.rows %}
          {% set vals = [] %}
          {% for v in row %}{% do vals.append(none if v is none else (v | string)[:c['chars']]) %}{% endfor %}
          {% do rows.append(vals) %}
        {% endfor %}
        {% do res.update({'columns': sample.column_names | list}) %}
      {% endif %}
      {% do res.update({'failures': n | int, 'sample': rows}) %}
    {% else %}
      {% set r = c['relation'] %}
      {% set rel = adapter.get_relation(database=r[0] or target.database, schema=r[1], identifier=r[2]) %}
      {% if rel is none %}
        {% do res.update({'missing': true}) %}
      {% elif c['kind'] == 'rows' %}
        {% do res.update({'rows': run_query('select count(*) from ' ~ rel).columns[0].values()[0] | int}) %}
      {% elif c['kind'] == 'max' %}
        {% set v = run_query('select max(' ~ c['column'] ~ ') from ' ~ rel).columns[0].values()[0] %}
        {% do res.update({'max': none if v is none else v | string}) %}
      {% elif c['kind'] == 'columns' %}
        {% set cols = [] %}
        {% for col in adapter.get_columns_in_relation(rel) %}{% do cols.append([col.name, col.data_type]) %}{% endfor %}
        {% do res.update({'columns': cols}) %}
      {% endif %}
    {% endif %}
    {% do out.update({c['name']: res}) %}
  {% endfor %}
  {{ log('dockyard-measured: ' ~ tojson(out), info=True) }}
{% endmacro %}
"""

#: synonyms of column types across adapters (and dbt's spellings), compared lower-case
TYPES = {
    "text": "text",
    "varchar": "text",
    "character varying": "text",
    "string": "text",
    "char varying": "text",
    "nvarchar": "text",
    "bpchar": "text",
    "int": "integer",
    "integer": "integer",
    "int4": "integer",
    "int32": "integer",
    "signed": "integer",
    "bigint": "bigint",
    "int8": "bigint",
    "int64": "bigint",
    "long": "bigint",
    "smallint": "smallint",
    "int2": "smallint",
    "double": "double",
    "double precision": "double",
    "float8": "double",
    "float64": "double",
    "real": "real",
    "float4": "real",
    "float": "double",
    "bool": "boolean",
    "boolean": "boolean",
    "logical": "boolean",
    "timestamp": "timestamp",
    "timestamp without time zone": "timestamp",
    "datetime": "timestamp",
    "timestamptz": "timestamptz",
    "timestamp with time zone": "timestamptz",
    "decimal": "numeric",
    "numeric": "numeric",
    "date": "date",
}


def normalise_type(data_type: str) -> str:
    """``character varying(256)`` and ``TEXT`` are the same column type; ``decimal(10,2)`` is
    ``numeric(10,2)``; a text type's length is no type change."""
    t = " ".join(str(data_type).lower().split())
    base, _, args = t.partition("(")
    name = TYPES.get(base.strip(), base.strip())
    if name == "text" or not args:
        return name
    return f"{name}({args.replace(' ', '')}"


def schema_changes(before: list[list[str]], after: list[list[str]]) -> list[dict[str, Any]]:
    """Columns added, removed and changed type between two snapshots ``[[name, type], ...]``
    (names compared case-insensitively)."""
    old = {n.lower(): (n, t) for n, t in before}
    new = {n.lower(): (n, t) for n, t in after}
    changes: list[dict[str, Any]] = []
    for key, (name, t) in new.items():
        if key not in old:
            changes.append({"change": "added", "column": name, "type": t})
        elif normalise_type(old[key][1]) != normalise_type(t):
            changes.append({"change": "type_changed", "column": name, "from": old[key][1], "to": t})
    changes += [{"change": "removed", "column": n, "type": t} for key, (n, t) in old.items() if key not in new]
    return changes


def parse_timestamp(text: str) -> datetime:
    """A warehouse timestamp as dbt's adapter printed it (naive ones are UTC)."""
    value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sql_with_relations(sql: str) -> tuple[str, dict[str, str]]:
    """``sql`` with each ``{{ relation('model') }}`` replaced by a token the macro renders;
    the tokens and the models they stand for."""
    found: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        token = f"__dockyard_relation_{len(found)}__"
        found[token] = m.group(1)
        return token

    return RELATION_CALL.sub(swap, sql), found


@dataclass
class Verdict:
    """What one measurement means: the status, the value stored, the band, a message."""

    status: str  # ok | alert | warming_up | error
    value: float | None = None
    message: str = ""
    score: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """One monitor's measurement and whether it changed the monitor's state."""

    monitor: str
    environment: str
    status: str
    message: str
    measurement_id: int
    value: float | None
    previous: str | None  # the status before
    alerted: int | None = None  # deliveries queued (None: no alert this time)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def settings_of(monitor) -> anomaly.Settings:
    return anomaly.Settings(
        sensitivity=monitor.sensitivity,
        min_training_points=monitor.min_training_points,
        training_days=monitor.training_days,
        min_absolute_change=monitor.min_absolute_change,
        min_relative_change=monitor.min_relative_change,
        seasonality=monitor.seasonality,
        direction=monitor.direction,
    )


def judge_volume(monitor, rows: int, at: datetime, history: list, previous: float | None) -> Verdict:
    """``history``: earlier :class:`dockyard.anomaly.Point` (flagged = alerted); ``previous``:
    the last measured row count."""
    threshold = monitor.parsed_threshold()
    value = float(rows)
    if threshold.kind == "min_rows":
        ok = value >= threshold.value
        return Verdict(
            "ok" if ok else "alert",
            value,
            f"{rows:,} rows" + ("" if ok else f", fewer than the minimum {threshold.value:,.0f}"),
            lower=threshold.value,
        )
    if threshold.kind == "relative":
        if previous is None:
            return Verdict("warming_up", value, f"{rows:,} rows (first measurement)")
        change = (value - previous) / previous if previous else (0.0 if value == 0 else float("inf"))
        ok = abs(change) <= threshold.value
        msg = f"{rows:,} rows, {change:+.1%} since the last measurement ({previous:,.0f})"
        if not ok:
            msg += f": more than {threshold.value:.0%}"
        band = previous * threshold.value
        return Verdict(
            "ok" if ok else "alert", value, msg, expected=previous, lower=previous - band, upper=previous + band
        )
    result = anomaly.score(value, at, history, settings_of(monitor))
    detail = {"training_size": result.training_size, "seasonal": result.seasonal, "reason": result.reason}
    if result.state == "warming_up":
        need = monitor.min_training_points
        return Verdict(
            "warming_up", value, f"{rows:,} rows (warming up: {result.training_size} of {need} points)", detail=detail
        )
    msg = f"{rows:,} rows, expected {result.expected:,.0f} ({result.lower:,.0f} to {result.upper:,.0f})"
    if result.state == "anomaly":
        msg = {"stall": "the row count stopped changing: ", "empty": "the table is empty: "}.get(
            result.reason or "", f"a {result.reason}: "
        ) + msg
    return Verdict(
        "alert" if result.state == "anomaly" else "ok",
        value,
        msg,
        score=result.score,
        expected=result.expected,
        lower=result.lower,
        upper=result.upper,
        detail=detail,
    )


def judge_freshness(monitor, latest: datetime | None, now: datetime, what: str) -> Verdict:
    """``latest``: max(timestamp column) or the last successful build (``what`` says which)."""
    limit = monitor.parsed_threshold().value
    if latest is None:
        return Verdict("alert", None, f"no {what} yet", upper=limit)
    age = max((now - latest).total_seconds(), 0.0)
    ok = age <= limit
    msg = f"{what} {latest.isoformat(timespec='seconds')}, {_age(age)} old"
    if not ok:
        msg += f": older than {monitor.threshold}"
    return Verdict("ok" if ok else "alert", age, msg, upper=limit, detail={"latest": latest.isoformat()})


def judge_schema(monitor, columns: list[list[str]], previous: list[list[str]] | None) -> Verdict:
    detail: dict[str, Any] = {"columns": columns}
    if previous is None:
        return Verdict("ok", float(len(columns)), f"{len(columns)} columns (first snapshot)", detail=detail)
    changes = schema_changes(previous, columns)
    detail["changes"] = changes
    if not changes:
        return Verdict("ok", float(len(columns)), f"{len(columns)} columns, unchanged", detail=detail)
    parts = []
    for c in changes:
        if c["change"] == "type_changed":
            parts.append(f"{c['column']} changed type ({c['from']} -> {c['to']})")
        else:
            parts.append(f"{c['column']} {c['change']}")
    status = "alert" if monitor.alert_on_change else "ok"
    return Verdict(status, float(len(columns)), "; ".join(parts), detail=detail)


def judge_sql(failures: int, sample: list, columns: list[str] | None) -> Verdict:
    detail = {"sample": sample[:SAMPLE_ROWS], "columns": columns or []}
    if failures == 0:
        return Verdict("ok", 0.0, "no failing rows", detail=detail)
    return Verdict("alert", float(failures), f"{failures:,} failing row{'s' if failures != 1 else ''}", detail=detail)


def _age(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:.1f} {unit}s" if n != 1 else f"1 {unit}"
    return f"{seconds:.0f} seconds"
