"""Data monitors: their measurements, their state and the checks waiting to run.

* ``monitor_measurements``: every measurement of a monitor in an environment (the value, the
  status it gave, the anomaly score and band, a bounded detail);
* ``monitor_state``: per (monitor, environment) the status alerts are sent on changes of, since
  when, and when the last alert went out; :meth:`Monitors.transition` moves it in one
  transaction and answers the previous status (so two checkers cannot both alert);
* ``monitor_checks``: the checks queued by the ``monitors`` event consumer (after a job), the
  cron schedule and the API, claimed one at a time by the ``RunMonitors`` duty (a claim older
  than ``stale_s`` is taken over); a key makes each check queued once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.tables import monitor_checks, monitor_measurements, monitor_state

STATUSES = ("ok", "alert", "warming_up", "error")
TRIGGERS = ("schedule", "after_job", "manual")


@dataclass
class Measurement:
    id: int
    monitor: str
    environment: str
    run_id: int | None
    measured_at: datetime
    value: float | None
    status: str  # ok | alert | warming_up | error
    score: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    detail: dict | None
    trigger: str

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["measured_at"] = self.measured_at.isoformat()
        return data


@dataclass
class MonitorState:
    monitor: str
    environment: str
    status: str
    since: datetime
    last_alert_at: datetime | None
    measurement_id: int | None
    updated_at: datetime


@dataclass
class Check:
    id: int
    key: str
    monitors: list[str]
    environment: str
    trigger: str
    run_id: int | None
    job: str | None
    state: str  # pending | running | done
    requested_at: datetime
    holder: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


def _make(cls, row):
    return cls(**{k: row[k] for k in cls.__dataclass_fields__})


class MonitorReader(Repository):
    """The reading half (also reachable through ``store.reader.monitors``)."""

    def history(
        self,
        monitor: str,
        environment: str | None = None,
        *,
        limit: int = 100,
        since: datetime | None = None,
        oldest_first: bool = False,
    ) -> list[Measurement]:
        m = monitor_measurements.c
        query = select(monitor_measurements).where(m.monitor == monitor)
        if environment is not None:
            query = query.where(m.environment == environment)
        if since is not None:
            query = query.where(m.measured_at >= since)
        query = query.order_by(m.measured_at.desc(), m.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = [_make(Measurement, r) for r in conn.execute(query).mappings()]
        return rows[::-1] if oldest_first else rows

    def last(self, monitor: str, environment: str, *, statuses: tuple[str, ...] | None = None) -> Measurement | None:
        m = monitor_measurements.c
        query = select(monitor_measurements).where(m.monitor == monitor, m.environment == environment)
        if statuses:
            query = query.where(m.status.in_(statuses))
        query = query.order_by(m.measured_at.desc(), m.id.desc()).limit(1)
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        return _make(Measurement, row) if row else None

    def state(self, monitor: str, environment: str) -> MonitorState | None:
        s = monitor_state.c
        with self.db.read() as conn:
            row = (
                conn.execute(select(monitor_state).where(s.monitor == monitor, s.environment == environment))
                .mappings()
                .first()
            )
        return _make(MonitorState, row) if row else None

    def states(self) -> list[MonitorState]:
        with self.db.read() as conn:
            rows = conn.execute(select(monitor_state).order_by(monitor_state.c.monitor, monitor_state.c.environment))
            return [_make(MonitorState, r) for r in rows.mappings()]

    def checks(self, *, states: tuple[str, ...] | None = None, limit: int = 100) -> list[Check]:
        query = select(monitor_checks).order_by(monitor_checks.c.id.desc()).limit(limit)
        if states:
            query = query.where(monitor_checks.c.state.in_(states))
        with self.db.read() as conn:
            return [_make(Check, r) for r in conn.execute(query).mappings()]


class Monitors(MonitorReader):
    def record(
        self,
        monitor: str,
        environment: str,
        *,
        status: str,
        trigger: str,
        value: float | None = None,
        run_id: int | None = None,
        measured_at: datetime | None = None,
        score: float | None = None,
        expected: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
        detail: dict | None = None,
    ) -> Measurement:
        if status not in STATUSES or trigger not in TRIGGERS:
            raise ValueError(f"status must be one of {STATUSES}, trigger one of {TRIGGERS}")
        values = dict(
            monitor=monitor,
            environment=environment,
            run_id=run_id,
            measured_at=measured_at or clock.now(),
            value=value,
            status=status,
            score=score,
            expected=expected,
            lower=lower,
            upper=upper,
            detail=detail,
            trigger=trigger,
        )
        with self.db.write() as conn:
            new_id = conn.execute(monitor_measurements.insert().values(**values)).inserted_primary_key[0]
        return Measurement(id=new_id, **values)

    def transition(
        self, monitor: str, environment: str, status: str, measurement_id: int | None, *, now: datetime | None = None
    ) -> MonitorState | None:
        """Set the monitor's status; the state before (None for a first measurement). The
        ``since`` moves only when the status changes. The row is locked (PostgreSQL; SQLite
        serialises writers): of two checkers at once, one sees the other's status."""
        now = now or clock.now()
        s = monitor_state.c
        where = (s.monitor == monitor, s.environment == environment)
        with self.db.write() as conn:
            row = conn.execute(select(monitor_state).where(*where).with_for_update()).mappings().first()
            if row is None:
                stmt = self.db.insert(monitor_state).values(
                    monitor=monitor,
                    environment=environment,
                    status=status,
                    since=now,
                    measurement_id=measurement_id,
                    updated_at=now,
                )
                stmt = stmt.on_conflict_do_nothing(index_elements=["monitor", "environment"])
                if conn.execute(stmt.returning(monitor_state.c.monitor)).first() is not None:
                    return None
                row = conn.execute(select(monitor_state).where(*where).with_for_update()).mappings().one()
            values: dict[str, Any] = dict(status=status, measurement_id=measurement_id, updated_at=now)
            if row["status"] != status:
                values["since"] = now
            conn.execute(update(monitor_state).where(*where).values(**values))
        return _make(MonitorState, row)

    def alerted(self, monitor: str, environment: str, at: datetime | None = None) -> None:
        s = monitor_state.c
        with self.db.write() as conn:
            conn.execute(
                update(monitor_state)
                .where(s.monitor == monitor, s.environment == environment)
                .values(last_alert_at=at or clock.now())
            )

    # -- the queue of checks ------------------------------------------------------------------
    def queue(
        self,
        key: str,
        monitors: list[str],
        environment: str,
        trigger: str,
        *,
        run_id: int | None = None,
        job: str | None = None,
    ) -> bool:
        """Queue a check (once per ``key``); True when this call queued it."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        stmt = self.db.insert(monitor_checks).values(
            key=key[:255],
            monitors=sorted(set(monitors)),
            environment=environment,
            trigger=trigger,
            run_id=run_id,
            job=job,
            state="pending",
            requested_at=clock.now(),
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(monitor_checks.c.id)
        with self.db.write() as conn:
            return conn.execute(stmt).first() is not None

    def claim(self, holder: str, *, stale_s: float = 900) -> Check | None:
        """The oldest pending check (or one whose checker has held it ``stale_s``), now
        ``running`` under ``holder``; None when there is none."""
        now = clock.now()
        c = monitor_checks.c
        takeable = or_(
            c.state == "pending", and_(c.state == "running", c.started_at < now - timedelta(seconds=stale_s))
        )
        with self.db.write() as conn:
            row = conn.execute(select(monitor_checks).where(takeable).order_by(c.id).limit(1)).mappings().first()
            if row is None:
                return None
            conn.execute(
                update(monitor_checks)
                .where(c.id == row["id"], takeable)
                .values(state="running", holder=holder, started_at=now)
            )
            row = conn.execute(select(monitor_checks).where(c.id == row["id"])).mappings().one()
        return _make(Check, row) if row["holder"] == holder else None

    def release(self, check_id: int) -> None:
        """Put a claimed check back in the queue (its environment is busy)."""
        with self.db.write() as conn:
            conn.execute(
                update(monitor_checks)
                .where(monitor_checks.c.id == check_id)
                .values(state="pending", holder=None, started_at=None)
            )

    def finish(self, check_id: int, error: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(monitor_checks)
                .where(monitor_checks.c.id == check_id)
                .values(state="done", finished_at=clock.now(), error=error[:2000] if error else None)
            )

    def pending(self) -> int:
        with self.db.read() as conn:
            return conn.execute(
                select(func.count()).select_from(monitor_checks).where(monitor_checks.c.state != "done")
            ).scalar_one()

    def prune_checks(self, before: datetime) -> int:
        """Forget finished checks older than ``before``."""
        c = monitor_checks.c
        with self.db.write() as conn:
            return conn.execute(delete(monitor_checks).where(c.state == "done", c.finished_at < before)).rowcount
