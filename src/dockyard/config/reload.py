"""Config reload in the long-running processes (scheduler, worker slots, the API).

A :class:`Reloader` notices that dockyard.yml changed (its size, mtime or inode), reads it
within the YAML bounds of :mod:`dockyard.config.yamlfile` and, when the content differs from
the config in force, has it checked by a *probe*: ``python -m dockyard.config.reload`` in a process
of its own, given that snapshot of the file on standard input, with a time limit
(:data:`PROBE_TIMEOUT_S`) and an address-space limit (:data:`PROBE_MEMORY_BYTES`). Only when
the probe loaded the snapshot does this process load the same snapshot and switch to it.

So the calling loop never waits on the parser: :meth:`Reloader.check` starts the probe and
returns, and later calls collect its answer. The YAML bounds already make every parse
short; the probe is the second line, against a parser bug that would hang or eat memory:
that would cost one killed probe, never a wedged scheduler or worker slot.

Whatever fails (bomb, syntax error, invalid config, too large, unreadable, probe timed
out), the last good config stays in force and :attr:`Reloader.error` holds the located
message (also set as ``app.config_error``), which every process publishes in its heartbeat
(``info.config_error``); it is cleared once the file loads again, or is restored to the
config in force.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.config.loader import load_config
from dockyard.config.yamlfile import decode, read_bytes
from dockyard.errors import ConfigError

log = logging.getLogger("dockyard.config.reload")

PROBE_TIMEOUT_S = 20.0
PROBE_MEMORY_BYTES = 1 << 30
# what the probe needs of this process's environment (never the secrets' sources)
PROBE_ENV = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "LANG", "LC_ALL", "TMPDIR", "DOCKYARD_YAML_MAX_BYTES")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Reloader:
    """Follows one app's dockyard.yml; see the module's docstring."""

    def __init__(self, app, *, error: str | None = None):
        self.app = app
        self.path = Path(app.loaded.path)
        self.signature: tuple | None = None  # the first check compares the file with the config in force
        self.applied = digest_of(app.loaded)
        self.error: str | None = None
        self._probe: _Probe | None = None
        self._set_error(error if error is not None else getattr(app, "config_error", None))

    def check(self) -> bool:
        """One step, never blocking on the parser; True when a new config was applied."""
        if self.app.config.repository is not None and self.app.repository.follow():
            return True  # code from git: another process deployed a commit (dockyard.app.repository)
        if self._probe is not None:
            return self._collect()
        signature = _signature(self.path)
        if signature == self.signature:
            return False
        self.signature = signature
        try:
            text = decode(read_bytes(self.path), str(self.path))
        except ConfigError as exc:
            self._fail(exc.render())
            return False
        if digest(text) in (self.applied, digest_of(self.app.loaded)):  # the config in force
            self._set_error(None)
            return False
        try:
            self._probe = _Probe(self.path, text)
        except OSError as exc:
            self._fail(f"cannot check {self.path}: {exc}")
        return False

    def _collect(self) -> bool:
        probe = self._probe
        verdict = probe.verdict()
        if verdict is None:
            return False
        self._probe = None
        if verdict is not True:
            self._fail(verdict)
            return False
        try:
            loaded = load_config(self.path, text=probe.text)
        except ConfigError as exc:  # not expected: the probe loaded the same text
            self._fail(exc.render())
            return False
        self.app.reload(loaded)
        remember_good(loaded)
        self.applied = digest(probe.text)
        self._set_error(None)
        log.info("reloaded %s", self.path)
        return True

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.error("%s is invalid, keeping the config in force: %s", self.path.name, message)
        self._set_error(message)

    def _set_error(self, message: str | None) -> None:
        if self.error and not message:
            log.info("%s is valid again: the config error is cleared", self.path.name)
        self.error = message
        self.app.config_error = message


FALLBACK_ENV = "DOCKYARD_CONFIG_FALLBACK"


def remember_good(loaded) -> None:
    """Keep the config in force as the fallback of the processes a supervisor (re)starts
    (``$DOCKYARD_CONFIG_FALLBACK``, set by ``serve`` and ``worker``): written atomically."""
    target, text = os.environ.get(FALLBACK_ENV), getattr(loaded, "text", None)
    if not target or text is None:
        return
    try:
        tmp = Path(f"{target}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("cannot keep the last good config in %s: %s", target, exc)


def digest_of(loaded) -> str | None:
    text = getattr(loaded, "text", None)
    return digest(text) if text is not None else None


class _Probe:
    """``python -m dockyard.config.reload PATH`` over a snapshot of the file; see :meth:`verdict`."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text
        self.started = time.monotonic()
        self._out = tempfile.TemporaryFile()
        with tempfile.TemporaryFile() as stdin:
            stdin.write(text.encode("utf-8", "surrogatepass"))
            stdin.seek(0)
            env = {k: v for k, v in os.environ.items() if k in PROBE_ENV}
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "dockyard.config.reload", str(path)],
                stdin=stdin,
                stdout=self._out,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )

    def verdict(self) -> bool | str | None:
        """None while it runs; True when the snapshot loaded; otherwise the error message."""
        code = self._proc.poll()
        if code is None:
            if time.monotonic() - self.started < PROBE_TIMEOUT_S:
                return None
            self._proc.kill()
            self._proc.wait()
            self._out.close()
            return (
                f"checking {self.path.name} took more than {PROBE_TIMEOUT_S:g} s "
                f"({self.path}:1): simplify the file; the config in force is kept"
            )
        try:
            self._out.seek(0)
            answer = json.loads(self._out.read(1 << 20) or b"{}")
        except ValueError:
            answer = {}
        finally:
            self._out.close()
        if code == 0 and answer.get("ok"):
            return True
        if isinstance(answer.get("error"), str):
            return answer["error"]
        return (
            f"checking {self.path.name} failed (the check exited with {code}, e.g. over its "
            f"{PROBE_MEMORY_BYTES >> 20} MiB memory limit) ({self.path}:1): simplify the file"
        )


def _signature(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def _probe_main(argv: list[str]) -> int:
    """The probe: load the snapshot on standard input as ``argv[0]``; print a JSON verdict."""
    import resource

    for limit, value in ((resource.RLIMIT_AS, PROBE_MEMORY_BYTES), (resource.RLIMIT_CPU, int(PROBE_TIMEOUT_S) + 5)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass
    try:
        data = sys.stdin.buffer.read()
        load_config(argv[0], text=decode(data, argv[0]))
    except ConfigError as exc:
        answer = {"ok": False, "error": exc.render()}
    except MemoryError:
        answer = {
            "ok": False,
            "error": f"checking {Path(argv[0]).name} needed more than "
            f"{PROBE_MEMORY_BYTES >> 20} MiB ({argv[0]}:1): simplify the file",
        }
    else:
        answer = {"ok": True}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0 if answer["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(_probe_main(sys.argv[1:]))
