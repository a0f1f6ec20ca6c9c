"""Executing one run: its steps in order, one dbt invocation each.

The executor is single-threaded: one :mod:`selectors` loop per step (inside
:meth:`DbtInvocation.poll`) with a short timeout, which also watches the run's deadline and
the cancel flag. :meth:`Executor.cancel` only sets that flag, so it may be called from a
signal handler or from another thread.

The run's dbt writes into a target folder of its own (``<run folder>/target``, seeded with
the environment's partial parse and deleted at the end; see :mod:`dockyard.runner.workspace`),
so overlapping runs never see each other's artifacts. For each step:

1. delete ``run_results.json``, ``sources.json`` and ``catalog.json`` from the target folder
   (so a step never reports a previous step's results; ``dbt retry`` keeps
   ``run_results.json``, which it reads); a step that writes into the project folder
   (``dbt deps``, ``dbt clean``) first takes the project lock;
2. run dbt; every log line is scrubbed, appended to ``logs/step-<n>.log`` and handed to
   :meth:`Recorder.log`; node events feed a :class:`NodeTracker`, whose changes go to
   :meth:`Recorder.nodes` at most every 0.25 s;
3. copy the artifacts this step wrote into ``artifacts/step-<n>/``, scrubbed, and report
   them with size and sha256;
4. reconcile node results from the copied ``run_results.json`` (and ``sources.json``) and
   report them (a command that only compiles, such as ``docs generate``, reports its nodes
   ``compiled``); decide the step's status; publish the partial parse dbt wrote.

A failed step (exit code != 0, or a node with status error/fail/runtime error) ends the run
ERROR ("step_failed"); a timeout or a cancel interrupts dbt (SIGINT to its process group),
then after ``grace_seconds`` SIGTERM, then after ``kill_after_seconds`` SIGKILL; the step is
CANCELLED and the run ERROR ("timeout") or CANCELLED ("cancelled"). Steps after a failed,
timed-out or cancelled one are reported SKIPPED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from datetime import UTC
from pathlib import Path

from dockyard import clock
from dockyard.dbt.command import executes_nodes, with_target_path, writes_project
from dockyard.dbt.events import WARN_STATUSES, NodeTracker
from dockyard.dbt.selection import has_selection
from dockyard.domain import FAILED_STATUSES, ArtifactRef, NodeResult, RunStatus, StepStatus
from dockyard.errors import DbtInvocationError
from dockyard.permissions import private_dir, write_private
from dockyard.runner import manifest_env
from dockyard.runner.invocation import DbtInvocation
from dockyard.runner.output import COMPILED_PATHS_EVENT, DbtEvent, LogLine
from dockyard.runner.plan import Recorder, RunOutcome, RunPlan, StepPlan
from dockyard.runner.process import group_members
from dockyard.runner.sessions import SessionWatch, sessions_doc
from dockyard.runner.steplog import StepLog, append_line, describe
from dockyard.runner.warm import not_warm
from dockyard.runner.workspace import ProjectLock, RunTarget
from dockyard.secrets import Scrubber

log = logging.getLogger(__name__)

ARTIFACT_NAMES = (
    "manifest.json",
    "run_results.json",
    "sources.json",
    "catalog.json",
    "index.html",
    "semantic_manifest.json",
)
STALE_ARTIFACTS = ("run_results.json", "sources.json", "catalog.json")
NODE_FLUSH_S = 0.25
LOG_FLUSH_S = 0.5
POLL_S = 0.1
# an artifact counts as this step's when written after the step started (minus this slack
# for coarse file-system timestamps)
MTIME_SLACK_S = 0.5


@dataclasses.dataclass
class _StepEnd:
    status: StepStatus
    exit_code: int | None
    stop_reason: str | None  # "timeout" | "cancelled" | None
    has_warnings: bool = False


class Executor:
    def __init__(self, plan: RunPlan, recorder: Recorder):
        self.plan = plan
        self.recorder = recorder
        self.scrubber = Scrubber.from_env(plan.env, plan.secrets)
        self.pids: list[int] = []  # the process (group) id of each dbt invocation started
        self._cancel_requested = False
        self._deadline: float | None = None
        self.workspace = RunTarget(self._shared_target(), plan.run_dir / "target", plan.run_id)
        self._view = plan.view

    def cancel(self) -> None:
        """Ask the run to stop. Async-signal-safe: only sets a flag."""
        self._cancel_requested = True

    # -- the run ---------------------------------------------------------------------

    def run(self) -> RunOutcome:
        plan = self.plan
        with contextlib.suppress(OSError):  # each step recreates them, or fails saying why
            private_dir(plan.run_dir / "logs")  # 0700 folders, 0600 files: see dockyard.permissions
            private_dir(plan.run_dir / "artifacts")
        self._deadline = time.monotonic() + float(plan.timeout_seconds)
        try:
            self.workspace.prepare()
        except OSError as exc:  # the first step fails on it, saying why
            log.warning("run %s: cannot prepare its target folder: %s", plan.run_id, describe(exc))
        view = plan.view
        if view:  # the run's target folder lies in the state folder, which dbt does not see
            self._view = dataclasses.replace(view, reveal=(*view.reveal, str(self.workspace.own)))
        try:
            return self._run_steps()
        finally:
            self.workspace.remove()

    def _run_steps(self) -> RunOutcome:
        plan = self.plan
        outcome = RunOutcome(RunStatus.SUCCESS)
        fresh = FreshSources(plan.fresh_sources_state) if plan.fresh_sources_state else None
        for step in plan.steps:
            if fresh and fresh.current is not None and outcome.reason is None:
                if not fresh.fresher:
                    outcome = RunOutcome(RunStatus.SUCCESS, "no_new_data", outcome.has_warnings)
                else:
                    step = fresh.rewrite(step)
            if outcome.reason is None:
                if self._cancel_requested:
                    outcome = RunOutcome(RunStatus.CANCELLED, "cancelled", outcome.has_warnings)
                elif time.monotonic() >= self._deadline:
                    outcome = RunOutcome(RunStatus.ERROR, "timeout", outcome.has_warnings)
            if outcome.reason is not None:
                self.recorder.step_finished(step.index, StepStatus.SKIPPED, None, clock.now(), "")
                continue
            end = self._run_step(step)
            if fresh and step.argv[:2] == ["source", "freshness"] and end.stop_reason is None:
                fresh.read(self.plan.run_dir / "artifacts" / f"step-{step.index}" / "sources.json")
            outcome.has_warnings = outcome.has_warnings or end.has_warnings
            if end.stop_reason == "cancelled":
                outcome = RunOutcome(RunStatus.CANCELLED, "cancelled", outcome.has_warnings)
            elif end.stop_reason == "timeout":
                outcome = RunOutcome(RunStatus.ERROR, "timeout", outcome.has_warnings)
            elif end.status is not StepStatus.SUCCESS:
                outcome = RunOutcome(RunStatus.ERROR, "step_failed", outcome.has_warnings)
        if fresh and outcome.status is RunStatus.SUCCESS:
            try:
                fresh.save()  # the next run compares its sources with this run's
            except OSError as exc:
                log.warning(
                    "run %s: could not keep its source freshness for the next run: %s", plan.run_id, describe(exc)
                )
        return outcome

    # -- one step --------------------------------------------------------------------

    def _shared_target(self) -> Path:
        """The environment's target folder: keeps the partial parse between runs."""
        target = Path(self.plan.target_path)
        return target if target.is_absolute() else Path(self.plan.project_dir) / target

    def _project_lock(self) -> ProjectLock:
        return ProjectLock(self.plan.project_lock or self._shared_target().parent / "project.lock")

    def _run_step(self, step: StepPlan) -> _StepEnd:
        plan, rec, index = self.plan, self.recorder, step.index
        target = self.workspace.own
        argv = with_target_path(step.argv, str(target))
        is_retry = bool(step.argv) and step.argv[0] == "retry"
        for name in STALE_ARTIFACTS:
            if is_retry and name == "run_results.json":
                continue
            if name == "sources.json" and any(a.startswith("source_status:") for a in step.argv):
                continue  # dbt reads this run's source freshness results from it
            try:
                (target / name).unlink()
            except FileNotFoundError:
                pass
        log_rel = f"logs/step-{index}.log"
        log_file = plan.run_dir / log_rel
        tracker = NodeTracker(executes=executes_nodes(argv[0]) if argv else True)
        step_wall_start = time.time()
        rec.step_started(index, clock.now())

        exit_code: int | None = None
        stop_reason: str | None = None
        with StepLog(log_file) as logf:  # survives its folder being deleted, a full disk

            def emit(text: str) -> None:
                line = self.scrubber.scrub(text)
                logf.write(line + "\n")
                rec.log(index, line)

            def note(text: str) -> None:
                emit(f"{time.strftime('%H:%M:%S', time.gmtime())}  [dockyard] {text}")

            if plan.notes and index == plan.steps[0].index:
                for text in plan.notes:
                    note(text)
            if logf.error is not None:
                note(f"cannot write the step log {log_file} ({describe(logf.error)}): dbt was not started")
                rec.step_finished(index, StepStatus.ERROR, None, clock.now(), log_rel)
                return _StepEnd(StepStatus.ERROR, None, None)

            inv = DbtInvocation(
                argv,
                project_dir=plan.project_dir,
                env=plan.env,
                mode=plan.mode,
                preload=plan.preload,
                view=self._view,
                prelude=step.prelude,
                **self._warm(argv, step, note),
            )
            lock = self._project_lock() if writes_project(argv) else None
            if lock is not None:
                try:
                    stop_reason = self._wait_for_lock(lock, index, note)
                except OSError as exc:
                    lock.release()
                    note(f"cannot take the project lock {lock.path} ({describe(exc)}): dbt was not started")
                    logf.flush()
                    rec.step_finished(index, StepStatus.ERROR, None, clock.now(), log_rel)
                    return _StepEnd(StepStatus.ERROR, None, None)
                except BaseException:
                    lock.release()  # a worker abandoning the run (fenced) in its tick
                    raise
                if stop_reason is not None:
                    lock.release()
                    logf.flush()
                    rec.step_finished(index, StepStatus.CANCELLED, None, clock.now(), log_rel)
                    return _StepEnd(StepStatus.CANCELLED, None, stop_reason)
            try:
                inv.start()
            except DbtInvocationError as exc:
                if lock is not None:
                    lock.release()
                note(f"could not start dbt: {exc}")
                logf.flush()
                rec.step_finished(index, StepStatus.ERROR, None, clock.now(), log_rel)
                return _StepEnd(StepStatus.ERROR, None, None)
            assert inv.pid is not None
            if inv.warm is not None and inv.warm_answer and not inv.warm_answer.get("parsed"):
                note("warm: no parse, the manifest in memory matches the project")
            self.pids.append(inv.pid)
            rec.process_started(index, inv.pid)
            watch = self._session_watch()
            ended_normally = False
            try:
                exit_code, stop_reason = self._pump(inv, tracker, emit, note, logf, index, watch)
                ended_normally = stop_reason is None and (exit_code is None or exit_code >= 0)
            finally:
                inv.close()
                if lock is not None:
                    lock.release()
                if watch and not ended_normally:
                    watch.sweep(note)  # dbt is gone: cancel any query it left running
            if plan.warm is not None:
                plan.warm.sweep()  # a warm parent grown past its memory ceiling goes now
            logf.flush()
            if logf.vanished():
                logf.restore()
                if logf.restored:
                    note(
                        f"the step log {log_file} disappeared while the step ran (its run folder was "
                        "deleted?): wrote it again"
                    )
            write_error = logf.error

        problems: list[str] = []
        if write_error is not None:
            problems.append(
                f"could not write the step log {log_file} ({describe(write_error)}): "
                "the step is failed because its log is incomplete"
            )
        refs = self._collect_artifacts(index, target, step_wall_start, problems)
        if refs:
            rec.artifacts(index, refs)
        for problem in problems:
            line = self.scrubber.scrub(f"{time.strftime('%H:%M:%S', time.gmtime())}  [dockyard] {problem}")
            log.error("run %s step %s: %s", plan.run_id, index, problem)
            append_line(log_file, line)
            rec.log(index, line)
        self._reconcile(index, tracker)
        final_nodes = tracker.all()
        changed = tracker.drain()
        if changed:
            rec.nodes(index, [self._scrub_node(n) for n in changed])

        failed_nodes = any(n.status in FAILED_STATUSES for n in final_nodes)
        has_warnings = any(n.status in WARN_STATUSES for n in final_nodes)
        if stop_reason is not None:
            status = StepStatus.CANCELLED
        elif exit_code != 0 or failed_nodes or problems:
            status = StepStatus.ERROR
        else:
            status = StepStatus.SUCCESS
        if stop_reason is None and exit_code is not None and exit_code >= 0:
            try:  # dbt writes it only after a parse that succeeded
                self.workspace.publish()
            except OSError as exc:
                log.warning("run %s step %s: could not keep dbt's partial parse: %s", plan.run_id, index, describe(exc))
        rec.step_finished(index, status, exit_code, clock.now(), log_rel)
        return _StepEnd(status, exit_code, stop_reason, has_warnings)

    def _warm(self, argv: list[str], step: StepPlan, note) -> dict:
        """The warm parent for this step (``warm``, ``warm_request``), or nothing when warm
        runs are off or the step cannot use one (then the reason goes to its log)."""
        plan = self.plan
        if plan.warm is None or plan.mode != "fork":
            return {}
        why = not_warm(argv, prelude=step.prelude is not None, project_dir=str(plan.project_dir))
        if why is not None:
            note(f"warm: {why}; the step parses as usual")
            return {}
        shared = self._shared_target()
        try:
            parent = plan.warm.get(plan.warm_name)
        except OSError as exc:
            note(f"warm: no warm parent ({describe(exc)}); the step parses as usual")
            return {}
        return {
            "warm": parent,
            "warm_request": {"skip": [str(shared.parent.parent), str(plan.run_dir)], "cache_dir": str(shared)},
            "tick": self.recorder.tick,  # a worker renews its lease while the warm parent parses
        }

    def _wait_for_lock(self, lock: ProjectLock, index: int, note) -> str | None:
        """Take the project lock, heart-beating and watching the cancel flag and the deadline
        meanwhile; returns the stop reason ("cancelled", "timeout") when the wait was cut short."""
        holder = f"run {self.plan.run_id} step {index}"
        if lock.try_acquire(holder):
            return None
        note(
            f"waiting for the project lock {lock.path}: another run's step writes into the project "
            f"folder ({lock.holder() or 'holder unknown'})"
        )
        assert self._deadline is not None
        started = time.monotonic()
        while not lock.try_acquire(holder):
            self.recorder.tick()
            if self._cancel_requested:
                note("run cancelled while waiting for the project lock")
                return "cancelled"
            if time.monotonic() >= self._deadline:
                note(f"run timed out after {self.plan.timeout_seconds:g} s while waiting for the project lock")
                return "timeout"
            time.sleep(POLL_S)
        note(f"took the project lock after {time.monotonic() - started:.1f} s")
        return None

    def _session_watch(self) -> SessionWatch | None:
        """Follows the step's warehouse sessions on a PostgreSQL target (see runner.sessions)."""
        plan = self.plan
        if plan.warehouse is None:
            return None

        def report(sessions) -> None:
            doc = sessions_doc(plan.warehouse_target or "", plan.warehouse_profiles_dir or "", sessions)
            self.recorder.warehouse_sessions(doc)

        return SessionWatch(plan.warehouse, report)

    def _pump(
        self, inv: DbtInvocation, tracker: NodeTracker, emit, note, logf, index: int, watch: SessionWatch | None = None
    ):
        plan, rec = self.plan, self.recorder

        def scan(force: bool = False) -> None:
            pid = inv.pid
            if watch is not None and pid is not None:
                watch.scan(lambda: group_members(pid) or [pid], force)

        assert self._deadline is not None
        stop_reason: str | None = None
        phase = 0  # 0 running, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL sent
        phase_at = 0.0
        last_nodes = last_log = time.monotonic()
        while not inv.done:
            for item in inv.poll(POLL_S):
                if isinstance(item, LogLine):
                    emit(item.text)
                elif isinstance(item, DbtEvent):
                    if item.name == COMPILED_PATHS_EVENT:
                        tracker.compiled_paths(item.data.get("paths") or {})
                    else:
                        tracker.apply(item.payload)
            scan()
            try:
                self.recorder.tick()  # a worker's heartbeat; may cancel, or raise to abandon the run
            except BaseException:
                scan(force=True)  # dbt is killed next: know every session it has
                raise
            now = time.monotonic()
            if stop_reason is None:
                if self._cancel_requested:
                    stop_reason = "cancelled"
                    note("run cancelled: interrupting dbt (SIGINT)")
                elif now >= self._deadline:
                    stop_reason = "timeout"
                    note(f"run timed out after {plan.timeout_seconds:g} s: interrupting dbt (SIGINT)")
                if stop_reason is not None:
                    scan(force=True)
                    inv.interrupt()
                    phase, phase_at = 1, now
            elif phase == 1 and now - phase_at >= plan.grace_seconds:
                scan(force=True)
                if inv.terminate():
                    note(f"dbt still running {plan.grace_seconds:g} s after SIGINT: sending SIGTERM")
                phase, phase_at = 2, now
            elif phase == 2 and now - phase_at >= plan.kill_after_seconds:
                scan(force=True)
                if inv.kill():
                    note("dbt still running after SIGTERM: sending SIGKILL")
                phase, phase_at = 3, now
            if tracker.dirty and now - last_nodes >= NODE_FLUSH_S:
                rec.nodes(index, [self._scrub_node(n) for n in tracker.drain()])
                last_nodes = now
            if now - last_log >= LOG_FLUSH_S:
                logf.flush()
                last_log = now
        code = inv.returncode
        if code is not None and code < 0:
            note(f"dbt ended by signal {-code}")
        return code, stop_reason

    # -- artifacts and reconciliation ------------------------------------------------

    def _collect_artifacts(
        self, index: int, target: Path, step_wall_start: float, problems: list[str] | None = None
    ) -> list[ArtifactRef]:
        """Copy this step's artifacts (scrubbed); one that cannot be stored (its folder gone
        and not creatable, a full disk) is reported in ``problems`` and the step fails."""
        dest_dir = self.plan.run_dir / "artifacts" / f"step-{index}"
        refs: list[ArtifactRef] = []
        for name in ARTIFACT_NAMES:
            src = target / name
            try:
                st = src.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime < step_wall_start - MTIME_SLACK_S:
                continue  # left there by an earlier step or run
            try:
                data = src.read_bytes()
            except OSError as exc:
                log.warning("cannot read artifact %s: %s", src, exc)
                continue
            if name == "manifest.json":  # a partial parse keeps an older run's metadata.env
                data = manifest_env.with_env(data, manifest_env.custom_env(self.plan.env))
            data = self.scrubber.scrub_bytes(data)
            tmp = dest_dir / f".{name}.tmp"
            try:
                private_dir(dest_dir)  # recreated if the run folder was deleted meanwhile
                write_private(tmp, data)
                os.replace(tmp, dest_dir / name)
            except OSError as exc:
                if problems is not None:
                    problems.append(f"could not store artifact {name} in {dest_dir} ({describe(exc)})")
                continue
            refs.append(
                ArtifactRef(
                    step_index=index,
                    name=name,
                    path=f"step-{index}/{name}",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        return refs

    def _load_copied(self, index: int, name: str) -> dict | None:
        path = self.plan.run_dir / "artifacts" / f"step-{index}" / name
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            log.warning("cannot read %s: %s", path, str(exc)[:200])
            return None
        return data if isinstance(data, dict) else None

    def _reconcile(self, index: int, tracker: NodeTracker) -> None:
        run_results = self._load_copied(index, "run_results.json")
        sources = self._load_copied(index, "sources.json")
        # In fork mode names, types and compiled paths came with dbt's events; loading the
        # manifest here (tens of MB of Python objects on big projects) would only grow this
        # process. Subprocess mode has no other source of compiled paths.
        manifest = self._load_copied(index, "manifest.json") if run_results and self.plan.mode == "subprocess" else None
        if run_results or sources:
            tracker.reconcile(run_results, manifest=manifest, sources=sources)

    def _scrub_node(self, node: NodeResult) -> NodeResult:
        if not self.scrubber:
            return node
        return dataclasses.replace(
            node,
            message=self.scrubber.scrub(node.message) if node.message else node.message,
            adapter_response=self.scrubber.scrub_obj(node.adapter_response)
            if node.adapter_response
            else node.adapter_response,
        )


class FreshSources:
    """``triggers.fresh_sources_only``: after the run's ``dbt source freshness`` step, the
    following steps build only what is downstream of sources with newer data than at the
    job's last successful run (``--select source_status:fresher+ --state <state>``); with no
    source fresher, the run ends ``success`` with reason ``no_new_data`` and skips the rest.
    Without a previous result (the first run), the steps run unchanged."""

    SELECTABLE = frozenset({"run", "build", "test", "seed", "snapshot", "compile", "docs", "ls", "list"})

    def __init__(self, state: Path):
        self.state = Path(state)
        self.sources: Path | None = None  # this run's sources.json
        self.current: Path | None = None  # set when there is a previous result to compare with
        self.fresher = True

    def read(self, sources_json: Path) -> None:
        current = _max_loaded_at(sources_json)
        if current is None:
            return
        self.sources = sources_json
        previous = _max_loaded_at(self.state / "sources.json")
        if previous is None:
            return  # the first run: nothing to compare with, run everything
        self.current = sources_json
        self.fresher = any(uid not in previous or (at or "") > (previous[uid] or "") for uid, at in current.items())

    def rewrite(self, step: StepPlan) -> StepPlan:
        argv = list(step.argv)
        if not argv or argv[0] not in self.SELECTABLE or argv[:2] == ["source", "freshness"]:
            return step
        if not has_selection(argv):  # every spelling of --select (--model, --select=x...) or --selector
            argv += ["--select", "source_status:fresher+"]
        if "--state" not in argv:
            argv += ["--state", str(self.state)]
        return dataclasses.replace(step, argv=argv)

    def save(self) -> None:
        if self.sources is None or not self.sources.is_file():
            return
        private_dir(self.state)
        tmp = self.state / ".sources.json.tmp"
        write_private(tmp, self.sources.read_bytes())
        os.replace(tmp, self.state / "sources.json")


def _max_loaded_at(path: Path) -> dict[str, str | None] | None:
    """unique_id -> max_loaded_at of a sources.json (normalised to UTC ISO text), or None."""
    from datetime import datetime

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    results = data.get("results") if isinstance(data, dict) else None
    out: dict[str, str | None] = {}
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        at = result.get("max_loaded_at")
        if at:
            try:
                parsed = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone(UTC).replace(tzinfo=None)
                at = parsed.isoformat()
            except ValueError:
                pass
        out[result.get("unique_id", "")] = at
    return out
