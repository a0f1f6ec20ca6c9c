"""Fork mode: dbt imported once into a long-lived parent (:func:`preload_dbt`,
:func:`warm_dbt`), and the body of the child forked per invocation (:func:`fork_child`).
See :mod:`dockyard.runner.invocation` for the constraint fork mode puts on its caller.

A step with a *prelude* (:attr:`dockyard.runner.plan.StepPlan.prelude`: a pull-request
build's selection and schema check) parses once (when the prelude returns a callable, it is
called after a successful step with a function that invokes dbt on the same manifest: a
pull-request build's row and column comparison): the child runs ``dbt parse`` with the
step's own parse flags (:func:`parse_argv`), calls the prelude with its target folder (where
``manifest.json`` was just written), then ``dbtRunner(manifest=<the parsed manifest>)``
runs the step, which skips parsing (dbt/cli/requires.py ``setup_manifest`` uses the given
manifest). The prelude is a closure of the parent: it must not use the parent's database
connections (they are not this process's).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dockyard import environ
from dockyard.permissions import dbt_umask
from dockyard.runner.isolation import FileView, enter_view
from dockyard.runner.output import COMPILED_PATHS_EVENT
from dockyard.runner.process import lifeline

VIEW_WARNING = (
    "dockyard: this step can see the files of dockyard and of the other environments (no mount namespace: %s)"
)
_dbt_loaded = False
# the flags of a step that change what dbt parses (or where it keeps the parse): given to
# the ``dbt parse`` of a step with a prelude; the value-taking ones, then the switches
PARSE_OPTIONS = frozenset(
    {
        "--project-dir",
        "--profiles-dir",
        "--profile",
        "--target",
        "-t",
        "--target-path",
        "--vars",
        "--log-path",
        "--log-level",
        "--log-level-file",
        "--warn-error-options",
    }
)
PARSE_SWITCHES = frozenset(
    {
        "--partial-parse",
        "--no-partial-parse",
        "--partial-parse-file-diff",
        "--no-partial-parse-file-diff",
        "--static-parser",
        "--no-static-parser",
        "--use-experimental-parser",
        "--no-use-experimental-parser",
        "--warn-error",
        "--no-warn-error",
        "--debug",
        "-d",
    }
)


def _tracker_fds() -> list[int]:
    """The pipe to the multiprocessing resource tracker a fork child shares with its parent."""
    from multiprocessing import resource_tracker

    fd = getattr(resource_tracker._resource_tracker, "_fd", None)
    return [fd] if isinstance(fd, int) else []


def ensure_resource_tracker() -> None:
    """dbt makes multiprocessing (spawn) locks, whose named semaphores are watched by a
    resource-tracker process. Started in the parent, one tracker serves every fork child;
    otherwise each child would spawn its own inside its process group, and killing the
    group at the end would leak the semaphores in /dev/shm."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def preload_dbt(adapters: Sequence[str] = ()) -> None:
    """Import dbt (and optionally adapter plugins, e.g. ``"duckdb"``) into this process.

    Fork-mode children inherit the imported modules; call this early (before the process
    starts any thread) to take the import cost once.
    """
    global _dbt_loaded
    if not _dbt_loaded:
        import dbt.cli.main  # noqa: F401

        ensure_resource_tracker()
        _dbt_loaded = True
    for adapter in adapters:
        with contextlib.suppress(ImportError):
            __import__(f"dbt.adapters.{adapter}")


def warm_dbt() -> int:
    """Compile dbt's (mashumaro) serialisers in this process, so forked children don't each
    generate them on their first manifest load (~0.3–1 s per run). Returns the number of
    classes visited. For long-lived workers; costs about a second once."""
    from dbt_common.dataclass_schema import dbtClassMixin

    seen: set[type] = set()
    stack = list(dbtClassMixin.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        with contextlib.suppress(Exception):  # an empty dict fails validation after compiling
            cls.from_dict({})
    return len(seen)


def fork_child(
    args: list[str],
    project_dir: str,
    env: dict[str, str],
    forward: frozenset[str],
    view: FileView,
    *,
    out_r: int,
    out_w: int,
    ev_r: int,
    ev_w: int,
    parent_pid: int,
    prelude: Callable[[Path], Any] | None = None,
    manifest: Any = None,
) -> None:
    """Body of a fork-mode child. Never returns. ``manifest``: a manifest parsed by the
    warm parent this child was forked from (:mod:`dockyard.runner.warm`); the step runs
    with it, without parsing, and its artifacts get this invocation's metadata."""
    code = 2
    try:
        # Objects inherited from the parent (its database connections, say) must never be
        # finalised here: keep the garbage collector away from them.
        gc.freeze()
        os.umask(dbt_umask(args))  # dbt writes its target folder private (see dockyard.permissions)
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        lifeline(parent_pid)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        for fd in (out_r, ev_r):
            if fd >= 0:
                os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.close(out_w)
        # Keep the parent's stdio objects alive (their finaliser would flush into our pipe)
        # and give dbt fresh ones on the new fds, whatever the parent had (pytest capture...).
        fork_child.keep = (sys.stdout, sys.stderr)  # type: ignore[attr-defined]
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
        # Python logging as in a fresh interpreter: the parent's handlers (a log file, a
        # test harness) are not this child's; warnings go to stderr, i.e. to the step log
        logging.root.handlers[:] = []
        logging.root.setLevel(logging.WARNING)
        os.chdir(project_dir)
        # Only the step's own environment, by every channel: os.environ, the C environment,
        # /proc/self/environ (the inherited block) and the worker's open files and sockets
        environ.enter_step(env)
        environ.drop_inherited_fds(keep={0, 1, 2, ev_w, *_tracker_fds()})
        why = enter_view(view.hide, view.reveal)  # nor dockyard's files, other environments' ones
        if why:
            print(VIEW_WARNING % why, file=sys.stderr)
        with contextlib.suppress(Exception):  # dbt caches DBT_ENV_CUSTOM_ENV_* (metadata.env) once per
            from dbt_common.events.functions import reset_metadata_vars  # process: the parent may have

            reset_metadata_vars()  # filled it (warm_dbt); this run's DBT_CLOUD_RUN_ID must be in its artifacts
        sys.path[:] = [p for p in sys.path if p not in ("", ".")]

        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        lock = threading.Lock()

        def forward_raw(payload: dict) -> None:
            try:
                line = (json.dumps(payload, default=str) + "\n").encode("utf-8")
                with lock:
                    view = memoryview(line)
                    while view:
                        n = os.write(ev_w, view)
                        view = view[n:]
            except Exception:  # never break dbt because of a lost event
                pass

        stamped = manifest is None
        after = None

        def forward_event(msg) -> None:
            nonlocal stamped
            if not stamped:  # the first event: this invocation's id, time and metadata.env
                stamped = True
                _stamp_metadata(manifest, msg.info.invocation_id)
            if msg.info.name in forward:
                forward_raw(msg_to_dict(msg))

        if prelude is not None:  # parse once: the prelude reads this parse, the step reuses it
            parsed = dbtRunner(callbacks=[forward_event]).invoke(parse_argv(args))
            if not parsed.success:
                code = _exit_code(parsed)
                print("dockyard: dbt parse failed: nothing was built", file=sys.stderr)
                return
            try:
                after = prelude(Path(option(args, "--target-path") or "target"))
            except Exception as exc:  # a DockyardError says what and how to fix it
                print(f"Error: {exc}", file=sys.stderr)
                print("dockyard: the step was stopped before building anything", file=sys.stderr)
                code = 2
                return
            manifest = parsed.result
        result = dbtRunner(manifest=manifest, callbacks=[forward_event]).invoke(list(args))
        if callable(after) and result.success:  # the prelude's follow-up, on the same manifest
            _after(after, manifest)
        with contextlib.suppress(Exception):  # compiled paths are known here, not in the events
            paths = {
                r.node.unique_id: r.node.compiled_path
                for r in result.result.results
                if getattr(getattr(r, "node", None), "compiled_path", None)
            }
            if paths:
                forward_raw({"info": {"name": COMPILED_PATHS_EVENT}, "data": {"paths": paths}})
        code = _exit_code(result)
    except BaseException:
        code = 2
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            # os._exit skips the interpreter's shutdown: run multiprocessing's finalisers
            # (they unlink dbt's named semaphores; each only runs in the process that made it)
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                mp_util._run_finalizers(0)
                mp_util._run_finalizers()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _after(after: Callable, manifest: Any) -> None:
    """Call ``after(run_dbt)``: ``run_dbt(args)`` invokes dbt on ``manifest`` (no parse) and
    returns the messages it logged. A failure is a warning in the step log, never the step's."""
    from dbt.cli.main import dbtRunner

    def run_dbt(argv: list[str]) -> list[str]:
        messages: list[str] = []

        def collect(msg) -> None:
            with contextlib.suppress(Exception):
                messages.append(str(msg.info.msg))

        done = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(list(argv))
        if not done.success:
            raise RuntimeError(f"dbt {argv[0]} failed: {done.exception or 'see above'}")
        return messages

    try:
        after(run_dbt)
    except Exception as exc:  # noqa: BLE001 - the step succeeded; say what did not
        print(f"dockyard: warning: after the step: {exc}", file=sys.stderr)


def _stamp_metadata(manifest: Any, invocation_id: str) -> None:
    """A reused manifest's metadata made this invocation's, as its own parse would have made
    it: ``invocation_id``, ``generated_at`` and ``env`` (``DBT_ENV_CUSTOM_ENV_*``)."""
    with contextlib.suppress(Exception):
        from datetime import UTC, datetime

        from dbt_common.events.functions import get_metadata_vars
        from dbt_common.invocation import get_invocation_started_at

        meta = manifest.metadata
        meta.invocation_id = invocation_id
        meta.generated_at = datetime.now(UTC).replace(tzinfo=None)
        meta.env = dict(get_metadata_vars())
        meta.invocation_started_at = get_invocation_started_at()


def _exit_code(result) -> int:
    """dbt's CLI exit code of a ``dbtRunnerResult`` (0 success, 1 failed result, 2 error);
    a usage error, which dbt does not print when invoked programmatically, is printed."""
    if result.success:
        return 0
    if result.exception is None:
        return 1
    exc = result.exception
    if type(exc).__name__ in ("DbtUsageException", "DbtInternalException"):
        print(f"Error: {exc}", file=sys.stderr)
    return 2


def option(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag value`` or ``--flag=value``; the last one)."""
    found = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found


def parse_argv(args: Sequence[str]) -> list[str]:
    """``parse`` with the flags of the step ``args`` that change what dbt parses or where
    it keeps the parse (project, profile, target, vars, target folder, log settings): the
    manifest the step then reuses is the one its own parse would have made, and the partial
    parse dbt writes is valid for the next run of the step."""
    out = ["parse"]
    i = 1
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in PARSE_OPTIONS:
            if "=" in arg:
                out.append(arg)
            elif i + 1 < len(args):
                out += [arg, args[i + 1]]
                i += 1
        elif arg in PARSE_SWITCHES:
            out.append(arg)
        i += 1
    return out
