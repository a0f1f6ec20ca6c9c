"""One pull-request run: what :meth:`dockyard.app.execution.Execution.plan` changes for it.

A run whose overrides carry a pull-request number (:func:`dockyard.app.ci.pr_number`) builds
into the PR schema (a ``schema_override`` of the trigger wins) and, before its first step:

1. the CI copy of the project is written (:mod:`dockyard.slim.shadow`);
2. the base manifest (the last successful run of the base environment: the local store, a
   dockyard server, or a folder) is copied into ``<run folder>/state/``; without one,
   ``ci.without_base`` says: ``full`` (a log line, the ``state:`` selectors dropped) or
   ``fail`` (the run fails at once, saying why);
3. the commands that use ``state:``/``--defer`` get ``--state``, ``--defer --favor-state``;
4. the project parsed, the selection explained (:mod:`dockyard.slim.manifest`), the
   base's sources rendered as the CI target renders them where they are the same source
   (:func:`dockyard.slim.manifest.align_sources`), ``artifacts/ci.json`` written and every
   selected node checked to write into the PR schema (:meth:`CiRun.select`).

Step 4 parses once in fork mode (``runner.mode: fork``): it is the *prelude* of the first
step that parses (:attr:`dockyard.runner.plan.StepPlan.prelude`), run in that step's forked
dbt child between its ``dbt parse`` and the step itself, which reuses the parsed manifest
(:mod:`dockyard.runner.fork`); a failed check fails the step before anything is built. In
subprocess mode (or a job with no step that parses) it is a ``dbt parse`` of its own here,
before the first step (its partial parse is then the environment's, so the build only
checks it), and a failure fails the run at set-up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from dockyard import permissions
from dockyard.errors import CancelledError, DockyardError, SetupError
from dockyard.runner.invocation import DbtInvocation
from dockyard.runner.output import LogLine
from dockyard.runner.workspace import RunTarget
from dockyard.slim import compare, shadow, state
from dockyard.slim import manifest as mf
from dockyard.slim import schema as pr_schema

log = logging.getLogger("dockyard.app.ci")
PARSE_TIMEOUT_S = 1800
TICK_S = 5.0


@dataclasses.dataclass
class BaseOptions:
    """Where a build's base state comes from (``dockyard ci --base/--state/--server``)."""

    base: str | None = None
    state: Path | None = None
    server: str | None = None
    token: str | None = None


class CiRun:
    def __init__(self, app, run, env_name: str, pr: int, provider: str, options: BaseOptions | None = None):
        self.app, self.run, self.env_name, self.pr, self.provider = app, run, env_name, pr, provider
        self.options = options or BaseOptions()
        given = (run.overrides or {}).get("schema_override")
        self.schema = given or app.ci.pr_schema(env_name, pr)

    @property
    def overrides(self) -> dict:
        """The run's overrides with the PR schema (the trigger's own ``schema_override`` wins)."""
        return {**(self.run.overrides or {}), "schema_override": self.schema}

    def shadow_dir(self) -> Path:
        return self.app.ci.shadow_dir(self.env_name, self.pr)

    # -- the plan -------------------------------------------------------------------------------
    def prepare(self, plan):
        """The run's plan (:class:`dockyard.runner.plan.RunPlan`) made a pull-request build."""
        base_env = self.options.base or self.app.config.ci.base
        # the CI copy carries the comparison macro: the build's own dbt process runs it after
        # the build, on the manifest it parsed (no second dbt process, no second parse)
        copy = shadow.make(Path(plan.project_dir), self.shadow_dir(), {compare.FILE: compare.MACRO})
        state_dir = plan.run_dir / "state"
        base = self._base(base_env, state_dir)
        steps = []
        for step in plan.steps:
            argv = _replace(step.argv, "--project-dir", str(copy))
            argv = state.with_state(argv, state_dir) if base else state.without_state(argv)
            steps.append(dataclasses.replace(step, argv=argv))
        # the PR's own partial parse: the PR schema is in the profile, and dbt parses in full
        # when the profile changes, so one file for all pull requests would thrash
        target_path = permissions.private_dir(self.app.ci.target_dir(self.env_name, self.pr))
        reveal = [str(copy), str(copy.resolve()), str(state_dir), str(target_path)]
        view = dataclasses.replace(plan.view, reveal=tuple(sorted({*plan.view.reveal, *map(os.path.realpath, reveal)})))
        plan = dataclasses.replace(plan, steps=steps, view=view, target_path=target_path)
        if base is None:
            text = (
                f"no base manifest: no successful run of environment '{base_env}' with a manifest; "
                "building everything (ci.without_base: full)"
            )
            log.warning("run %s: %s", self.run.id, text)
            plan = dataclasses.replace(plan, notes=[*plan.notes, text])
        report = {
            "pr": self.pr,
            "provider": self.provider,
            "environment": self.env_name,
            "base_environment": base_env,
            "base_run_id": base.get("run_id") if base else None,
            "base_source": base["source"] if base else "none",
            "schema": self.schema,
            "sha": self.run.git_sha,
            "base_timings": base.get("timings", {}) if base else {},
            "comparisons": [],
        }
        base_path = base["manifest"] if base else None
        first = _parsing_step(plan.steps) if plan.mode == "fork" else None
        if first is not None:
            # one parse: the step's dbt child parses, runs the prelude, then builds with the
            # parsed manifest; ci.json is written from there (its folder shown to that child)
            def prelude(target: Path):
                new = mf.load(target / state.MANIFEST)
                chosen = self.select(new, base_path, state_dir, plan.run_dir, report)
                return self._comparison(new, chosen, first.argv, copy, plan.run_dir)

            steps = [dataclasses.replace(s, prelude=prelude) if s is first else s for s in plan.steps]
            artifacts = permissions.private_dir(plan.run_dir / "artifacts")
            reveal = (*plan.view.reveal, os.path.realpath(artifacts))
            plan = dataclasses.replace(plan, steps=steps, view=dataclasses.replace(plan.view, reveal=reveal))
        else:
            if plan.mode == "fork" and self.app.config.runner.preload is None:
                # two dbt invocations (the parse, the build): import dbt once here and fork both warm
                plan = dataclasses.replace(plan, preload=True)
            self.select(self._parse(plan, copy), base_path, state_dir, plan.run_dir, report)
        self.app.store.pr_schemas.built(self.env_name, self.pr, self.schema, self.run.git_sha)
        return plan

    def select(self, new: dict, base_path: Path | None, state_dir: Path, run_dir: Path, report: dict) -> None:
        """The selection of the parsed manifest ``new`` explained against the base manifest
        at ``base_path`` (None: no base), the base's sources aligned in ``state_dir``,
        ``ci.json`` written, and every selected node checked to write into the PR schema
        (a :class:`DockyardError` otherwise). Touches files only: in fork mode it runs in the
        step's dbt child."""
        base_manifest = mf.load(base_path) if base_path else {}
        selection = mf.explain(base_manifest, new)
        if base_path and mf.align_sources(base_manifest, new):  # sources that follow the target
            state.write_manifest(base_manifest, state_dir)
        chosen = {"selected": selection.selected, "deleted": selection.deleted, "exposures": selection.exposures}
        write_report(run_dir, {**report, **chosen})
        pr_schema.check(new, [s["unique_id"] for s in selection.built()], self.schema)
        return {**report, **chosen, "_base": base_manifest}

    def _comparison(self, new: dict, report: dict, argv: list[str], copy: Path, run_dir: Path):
        """What the build's dbt process does after a successful build (fork mode): compare the
        changed table models with the base's (``dockyard__compare``, with the parsed manifest),
        into ci.json. None when there is nothing to compare."""
        base = report.pop("_base", {})
        pairs = compare.pairs(new, base, report.get("selected", []))
        if not pairs:
            return None
        flags = _managed(argv, copy)
        command = ["run-operation", "dockyard__compare", "--args", json.dumps({"pairs": pairs}), *flags]
        command += ["--no-write-json", "--quiet", "--log-level-file", "none"]  # nothing in the step log

        def after(run_dbt) -> None:
            found = None
            for message in run_dbt(command):
                if message.startswith(compare.MARK):
                    found = json.loads(message[len(compare.MARK) :])
            if found is None:
                raise DockyardError("dockyard__compare logged no answer")
            write_report(run_dir, {**report, "comparisons": compare.comparisons(pairs, found), "compared": True})

        return after

    def _base(self, base_env: str, state_dir: Path) -> dict | None:
        """The base manifest copied into ``state_dir``: ``{manifest, source, run_id, timings}``."""
        opts = self.options
        if opts.state is not None:
            found = state.from_path(opts.state)
            if found is None:
                raise SetupError(
                    f"no manifest.json in {opts.state}", hint="point --state at the folder of the base manifest"
                )
            state.copy_into(found, state_dir)
            return {"manifest": state_dir / state.MANIFEST, "source": "path"}
        if opts.server:
            got = state.fetch_from_server(opts.server, opts.token, base_env, state_dir)
            if got is None:
                return self._no_base(base_env, f"the server {opts.server} has")
            return {"manifest": state_dir / state.MANIFEST, "source": "server", **got}
        found = self.app.ci.base_run(base_env)
        if found is None:
            return self._no_base(base_env, "the store has")
        run_id, path = found
        state.copy_into(path, state_dir)
        return {
            "manifest": state_dir / state.MANIFEST,
            "source": "store",
            "run_id": run_id,
            "timings": self.app.ci.timings(run_id),
        }

    def _no_base(self, base_env: str, where: str) -> None:
        if self.app.config.ci.without_base == "fail":
            raise SetupError(
                f"no base manifest for pull request #{self.pr}: {where} no successful run of "
                f"environment '{base_env}' with a manifest",
                hint=f"run a job of '{base_env}' first, pass --state DIR, or set ci.without_base: full",
            )
        return None

    def _parse(self, plan, copy: Path) -> dict:
        """``dbt parse`` of the CI copy with the run's profile; the parsed manifest."""
        first = plan.steps[0].argv if plan.steps else []
        own = plan.run_dir / "ci-parse"
        argv = ["parse", *_managed(first, copy), "--target-path", str(own), "--log-level-file", "none"]
        workspace = RunTarget(plan.target_path, own, plan.run_id)
        workspace.prepare()
        try:
            view = dataclasses.replace(plan.view, reveal=tuple(sorted({*plan.view.reveal, os.path.realpath(own)})))
            code, lines = call_dbt(argv, plan.project_dir, plan.env, view, plan.mode, plan.preload, tick=self._beat)
            if code != 0:
                tail = "\n".join(lines[-15:])
                raise DockyardError(
                    f"dbt parse of pull request #{self.pr} failed (exit {code}):\n{tail}",
                    hint="fix the project in the pull request; the lines above are dbt's",
                )
            new = mf.load(own / state.MANIFEST)
            workspace.publish()  # the build's parse starts from this one
            return new
        finally:
            workspace.remove()

    def _beat(self) -> bool:
        """Renew the run's lease while it parses; False when it was cancelled or lost."""
        run = self.run
        if not run.worker_id:
            return True
        beat = self.app.store.leases.heartbeat_runs(run.worker_id, [(run.id, run.lease_epoch)])
        return run.id not in beat.lost and run.id not in beat.cancel_requested


def call_dbt(argv, cwd, env, view=None, mode="subprocess", preload=False, timeout=PARSE_TIMEOUT_S, tick=None):
    """Run one dbt invocation to its end; ``(exit code, console lines)``. ``tick()`` is
    called every few seconds (a run's heartbeat: a long parse must not look like a lost
    worker); when it answers False, dbt is stopped."""
    inv = DbtInvocation(argv, project_dir=cwd, env=env, mode=mode, preload=preload, view=view)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    beat = time.monotonic()
    inv.start()
    try:
        while not inv.done:
            for item in inv.poll(0.2):
                if isinstance(item, LogLine):
                    lines.append(item.text)
            if tick is not None and time.monotonic() - beat >= TICK_S:
                beat = time.monotonic()
                if tick() is False:
                    inv.terminate()
                    raise CancelledError(f"dbt {argv[0]} stopped: the run was cancelled or lost")
            if time.monotonic() > deadline:
                inv.terminate()
                raise DockyardError(f"dbt {argv[0]} took longer than {timeout} s", hint="see the step log")
        return inv.returncode, lines
    finally:
        inv.close()


def _parsing_step(steps):
    """The first step whose dbt parses the project (the one that parses once, for the
    selection and for itself), or None (a job of ``dbt deps`` only, say)."""
    return next((s for s in steps if s.argv and s.argv[0] in state.DEFER_COMMANDS), None)


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out):
            out[i + 1] = value
    return out


def _managed(argv: list[str], copy: Path) -> list[str]:
    """``--target``, ``--profiles-dir``, ``--project-dir`` of a step's argv (for the parse)."""
    out = []
    for flag in ("--target", "--profiles-dir", "--project-dir"):
        if flag in argv:
            out += [flag, argv[argv.index(flag) + 1]]
    return _replace(out, "--project-dir", str(copy))


def write_report(run_dir: Path, report: dict) -> Path:
    """``<run folder>/artifacts/ci.json`` (written whole, then renamed into place)."""
    folder = permissions.private_dir(run_dir / "artifacts")
    tmp = folder / ".ci.json.tmp"
    with permissions.open_private(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, sort_keys=True, default=str)
    tmp.replace(folder / "ci.json")
    return folder / "ci.json"
