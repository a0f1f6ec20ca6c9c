"""Data monitors: ``app.monitors`` (docs/monitors.md).

``check()`` measures monitors of an environment in one ``dbt run-operation`` (see
:mod:`dockyard.app.measurements`), stores every measurement, judges it, and on a change of
state (into or out of ``alert``/``error``) queues one alert through ``app.alerts.notify``:
``monitor:<name>@<env>``, event ``alert`` or ``resolved``. Checks run after the jobs that
build a monitor's table (the ``monitors`` event consumer queues them on ``run.succeeded``), on
a monitor's own cron, or on demand (``dockyard monitors run``, the API); the scheduler's
``RunMonitors`` duty runs what is queued, in a thread of its own. A foreground ``dockyard run``
runs no monitor: what it queued waits for a server (or ``dockyard monitors run``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from dockyard import clock
from dockyard.alert import Alert, AlertItem, AlertKind, Severity, first_lines
from dockyard.app import measurements as ms
from dockyard.app.monitor_targets import Target, resolve
from dockyard.app.warehouse import run_macro
from dockyard.errors import DockyardError, NotFoundError
from dockyard.project import resolve_secrets
from dockyard.secrets import Scrubber

log = logging.getLogger("dockyard.app.monitors")
ALERTING = ("alert", "error")


class Monitors:
    def __init__(self, app):
        self.app = app

    @property
    def configured(self):
        return list(self.app.config.monitors)

    def get(self, name: str):
        for monitor in self.app.config.monitors:
            if monitor.name == name:
                return monitor
        raise NotFoundError(
            f"no monitor named {name!r}", hint="see 'dockyard monitors' for the monitors of dockyard.yml"
        )

    # -- reading ------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        """Every configured monitor with its environment and last status."""
        states = {(s.monitor, s.environment): s for s in self.app.store.reader.monitors.states()}
        out = []
        for monitor in self.app.config.monitors:
            try:
                env = resolve(self.app, monitor).environment
            except DockyardError as exc:
                env, problem = monitor.environment, exc.what
            else:
                problem = None
            state = states.get((monitor.name, env))
            last = self.app.store.reader.monitors.last(monitor.name, env) if env else None
            out.append(
                {
                    "name": monitor.name,
                    "type": monitor.type,
                    "table": monitor.table,
                    "model": monitor.model,
                    "environment": env,
                    "schedule": monitor.schedule.cron if monitor.schedule else None,
                    "status": state.status if state else None,
                    "since": state.since.isoformat() if state else None,
                    "last_measured_at": last.measured_at.isoformat() if last else None,
                    "last_value": last.value if last else None,
                    "message": (last.detail or {}).get("message") if last else None,
                    "problem": problem,
                }
            )
        return out

    def history(self, name: str, limit: int = 100, environment: str | None = None) -> list[dict]:
        self.get(name)
        rows = self.app.store.reader.monitors.history(name, environment, limit=max(1, min(limit, 1000)))
        return [m.to_dict() for m in rows]

    # -- queueing -----------------------------------------------------------------------------
    def request(self, names: list[str] | None = None, environment: str | None = None) -> list[int]:
        """Queue a manual check (the API); the ids are not needed, the count is: how many
        environments got a check queued."""
        groups = self._groups(names, environment)
        for env, monitors in groups.items():
            self.app.store.monitors.queue(f"manual:{uuid.uuid4().hex}", [m.name for m in monitors], env, "manual")
        return sorted(len(v) for v in groups.values())

    def _groups(self, names: list[str] | None, environment: str | None) -> dict[str, list]:
        chosen = [self.get(n) for n in names] if names else list(self.app.config.monitors)
        if environment is not None and environment not in self.app.config.environments:
            raise DockyardError(
                f"unknown environment {environment!r}", hint=f"one of: {', '.join(self.app.config.environments)}"
            )
        groups: dict[str, list] = {}
        for monitor in chosen:
            env = environment or resolve(self.app, monitor).environment
            groups.setdefault(env, []).append(monitor)
        return groups

    # -- checking -----------------------------------------------------------------------------
    def check(
        self,
        names: list[str] | None = None,
        environment: str | None = None,
        *,
        trigger: str = "manual",
        run_id: int | None = None,
        job: str | None = None,
    ) -> list[ms.Outcome]:
        """Measure the monitors (one dbt process per environment), store, judge, alert."""
        out: list[ms.Outcome] = []
        for env, monitors in self._groups(names, environment).items():
            out += self._check_env(env, monitors, trigger, run_id, job)
        return out

    def _check_env(self, env: str, monitors: list, trigger: str, run_id: int | None, job: str | None) -> list:
        targets: list[Target] = []
        failed: dict[str, str] = {}
        for monitor in monitors:
            try:
                targets.append(resolve(self.app, monitor, env))
            except DockyardError as exc:
                failed[monitor.name] = exc.what
        answers = self._measure(env, [t for t in targets if t.check is not None])
        now = clock.now()
        out = []
        for monitor in monitors:
            target = next((t for t in targets if t.monitor is monitor), None)
            if target is None:
                verdict = ms.Verdict("error", message=failed[monitor.name])
            else:
                verdict = self._judge(target, answers, now)
            out.append(self._record(monitor, env, verdict, now, trigger, run_id, job))
        return out

    def _measure(self, env: str, targets: list[Target]) -> dict:
        if not targets:
            return {}
        checks = [t.check for t in targets]
        try:
            return self._run(env, checks)
        except DockyardError as exc:
            if len(checks) == 1:
                return {checks[0]["name"]: {"error": self._scrub(env, exc.what)}}
        answers = {}  # one bad query must not hide the others: each alone
        for check in checks:
            try:
                answers.update(self._run(env, [check]))
            except DockyardError as exc:
                answers[check["name"]] = {"error": self._scrub(env, exc.what)}
        return answers

    def _run(self, env: str, checks: list[dict]) -> dict:
        return run_macro(
            self.app, env, "dockyard__measure", {"checks": checks}, macros={"dockyard__monitors.sql": ms.MACROS},
            folder="monitors", timeout=300,
        )  # fmt: skip

    def _scrubber(self, env: str) -> Scrubber:
        """Masks the environment's secrets (dbt's errors and sample rows may hold them)."""
        try:
            return Scrubber(list(resolve_secrets(self.app.loaded, env).values()))
        except DockyardError:
            return Scrubber([])

    def _scrub(self, env: str, text: str) -> str:
        return first_lines(self._scrubber(env).scrub(text), lines=12, chars=2000) or ""

    def _judge(self, target: Target, answers: dict, now: datetime) -> ms.Verdict:
        monitor, env = target.monitor, target.environment
        reader = self.app.store.reader.monitors
        if target.check is None:  # freshness by the last successful build: the store knows
            return ms.judge_freshness(monitor, target.built_at, now, "last successful build")
        answer = answers.get(monitor.name) or {"error": "the warehouse gave no answer for this monitor"}
        if "error" in answer:
            return ms.Verdict("error", message=answer["error"])
        if answer.get("missing"):
            return ms.Verdict("error", message=f"{target.relation_text} does not exist in the warehouse")
        try:
            if monitor.type == "volume":
                since = now - timedelta(days=monitor.training_days)
                past = reader.history(monitor.name, env, since=since, limit=5000, oldest_first=True)
                past = [m for m in past if m.value is not None and m.status != "error"]
                points = [ms.anomaly.Point(target.local(m.measured_at), m.value, m.status == "alert") for m in past]
                previous = past[-1].value if past else None
                return ms.judge_volume(monitor, int(answer["rows"]), target.local(now), points, previous)
            if monitor.type == "freshness":
                latest = ms.parse_timestamp(answer["max"]) if answer.get("max") is not None else None
                return ms.judge_freshness(monitor, latest, now, f"max({monitor.timestamp_column})")
            if monitor.type == "schema":
                last = reader.last(monitor.name, env, statuses=("ok", "alert"))
                before = (last.detail or {}).get("columns") if last else None
                return ms.judge_schema(monitor, [list(c) for c in answer["columns"]], before)
            sample = self._scrubber(env).scrub_obj(answer.get("sample") or [])
            return ms.judge_sql(int(answer["failures"]), sample, answer.get("columns"))
        except (KeyError, TypeError, ValueError) as exc:
            return ms.Verdict("error", message=f"unexpected answer from the warehouse: {exc}")

    def _record(self, monitor, env, verdict: ms.Verdict, now, trigger, run_id, job) -> ms.Outcome:
        store = self.app.store.monitors
        detail = {**verdict.detail, "message": verdict.message}
        m = store.record(
            monitor.name, env, status=verdict.status, trigger=trigger, value=verdict.value, run_id=run_id,
            measured_at=now, score=verdict.score, expected=verdict.expected, lower=verdict.lower,
            upper=verdict.upper, detail=detail,
        )  # fmt: skip
        before = store.transition(monitor.name, env, verdict.status, m.id, now=now)
        previous = before.status if before else None
        outcome = ms.Outcome(monitor.name, env, verdict.status, verdict.message, m.id, verdict.value, previous)
        was, now_alerting = previous in ALERTING, verdict.status in ALERTING
        if now_alerting and not was:
            outcome.alerted = self._notify(monitor, env, verdict, m.id, run_id, job, resolved=False)
        elif was and verdict.status == "ok":
            outcome.alerted = self._notify(monitor, env, verdict, m.id, run_id, job, resolved=True)
        if outcome.alerted is not None:
            store.alerted(monitor.name, env, now)
        log.info("monitor %s in %s: %s (%s)", monitor.name, env, verdict.status, verdict.message)
        return outcome

    def _notify(self, monitor, env, verdict, measurement_id, run_id, job, *, resolved: bool) -> int:
        relation = monitor.table or monitor.model or "custom query"
        if resolved:
            title, severity = f"Monitor {monitor.name} is back to normal in {env}", Severity.OK
        else:
            title = f"Monitor {monitor.name} {'failed' if verdict.status == 'error' else 'alerted'} in {env}"
            severity = Severity.CRITICAL if monitor.severity == "critical" else Severity.WARNING
        facts = [("Monitor", monitor.name), ("Type", monitor.type), ("Table", relation), ("Environment", env)]
        if verdict.expected is not None:
            facts.append(("Expected", f"{verdict.expected:,.0f}"))
        if job:
            facts.append(("After job", job))
        alert = Alert(
            kind=AlertKind.MONITOR,
            event="resolved" if resolved else "alert",
            subject=f"monitor:{monitor.name}@{env}",
            key=f"monitor:{monitor.name}@{env}:{measurement_id}",
            title=title,
            severity=severity,
            text=first_lines(verdict.message) or "",
            facts=tuple(facts),
            items=(AlertItem(monitor.name, verdict.status, first_lines(verdict.message), None),),
            items_total=1,
            job=job,
            environment=env,
            run_id=run_id,
            resolves=resolved,
        )
        try:
            return self.app.alerts.notify(alert)
        except Exception:  # noqa: BLE001 - a monitor's alert never breaks the check
            log.exception("monitor %s: alert not queued", monitor.name)
            return 0

    # -- the queue (the RunMonitors duty) -------------------------------------------------------
    def run_pending(self, holder: str, *, limit: int = 20, busy=None) -> int:
        """Run queued checks (at most ``limit``); a check of an environment where ``busy(env)``
        is true goes back to the queue for later. The number run."""
        store = self.app.store.monitors
        done = 0
        while done < limit:
            check = store.claim(holder)
            if check is None:
                break
            if busy is not None and busy(check.environment):
                store.release(check.id)
                break
            error = None
            try:
                known = {m.name for m in self.app.config.monitors}
                names = [n for n in check.monitors if n in known]
                if names:
                    self.check(names, check.environment, trigger=check.trigger, run_id=check.run_id, job=check.job)
            except DockyardError as exc:
                error = exc.what
                log.warning("monitor check %s: %s", check.key, exc.render())
            except Exception as exc:  # noqa: BLE001 - the duty's thread must survive anything
                error = type(exc).__name__
                log.exception("monitor check %s failed", check.key)
            store.finish(check.id, error)
            done += 1
        return done
