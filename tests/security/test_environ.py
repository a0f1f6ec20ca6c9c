"""A dbt step sees only its own environment's variables and secrets, by any channel.

A model of the ``dev`` environment reads, from SQL, ``/proc/self/environ`` and the
``/proc/<pid>/environ`` of each of its ancestors up to (not including) this test process:
the dbt process itself, the worker slot, the worker, the foreground ``dockyard run``. The
dockyard process was started with a variable behind *another* environment's secret
(``OTHER_ENV_PASSWORD``, referenced by ``prod``) and one no environment references
(``SERVER_ONLY_SECRET``): neither may appear in anything the step read, while the step's
own variable and secret are visible through ``env_var()``.

The tests run as root, which may read any process's ``/proc`` files: they rely on the
cleared environment block, not on ``PR_SET_DUMPABLE``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from tests.runner.conftest import FIXTURES, base_env

from dockyard import environ
from dockyard.runner.invocation import DbtInvocation

DOCKYARD = [sys.executable, "-m", "dockyard"]

# Walks from the dbt process up its ancestors (read from /proc/<pid>/stat in SQL) until the
# process named by STOP_PID, and reads each one's environ; also what env_var() shows.
PROBE_MODEL = """\
{{ config(materialized='table') }}
{% set ns = namespace(pid='self', pids=[]) %}
{% if execute %}
  {% for _ in range(8) %}
    {% set stat = run_query("select content from read_text('/proc/" ~ ns.pid ~ "/stat')").columns[0].values()[0] %}
    {% set parent = stat.rsplit(') ', 1)[1].split(' ')[1] %}
    {% if parent == env_var('STOP_PID') or parent in ('0', '1') %}{% break %}{% endif %}
    {% do ns.pids.append(parent) %}
    {% set ns.pid = parent %}
  {% endfor %}
{% endif %}
select 0 as depth, 'self' as pid, replace(content, chr(0), chr(10)) as environ,
       '{{ env_var("OWN_VAR", "missing") }}' as own_var,
       '{{ env_var("OWN_SECRET", "missing") }}' as own_secret,
       '{{ env_var("OTHER_ENV_PASSWORD", "absent") }}' || '{{ env_var("SERVER_ONLY_SECRET", "absent") }}'
           || '{{ env_var("OTHER_PASSWORD", "absent") }}' || '{{ env_var("DBT_PROD_TOKEN", "absent") }}' as others
from read_text('/proc/self/environ')
{% for pid in ns.pids %}
union all
select {{ loop.index }}, '{{ pid }}', replace(content, chr(0), chr(10)), null, null, null
from read_text('/proc/{{ pid }}/environ')
{% endfor %}
"""

# What the step can see of dockyard's state folder, and another environment's file: secret
VISIBLE_STATE_MODEL = """\
{{ config(materialized='table') }}
select file from glob('.dockyard/**')
"""
PROD_FILE_MODEL = """\
{{ config(materialized='table') }}
select content from read_text('{{ env_var("PROD_SECRET_FILE") }}')
"""

PROFILES = """\
probe:
  target: dev
  outputs:
    dev: {type: duckdb, path: dev.duckdb, threads: 1}
    prod: {type: duckdb, path: prod.duckdb, threads: 1}
"""


class Probe:
    def __init__(self, root: Path, mode: str):
        self.path = root / "probe"
        self.path.mkdir()
        self.own_var = "own-var-" + secrets.token_hex(6)
        self.own_secret = "own-secret-" + secrets.token_hex(6)
        self.other = "canary-other-" + secrets.token_hex(8)
        self.server_only = "canary-server-" + secrets.token_hex(8)
        self.other_dbt = "canary-dbt-" + secrets.token_hex(8)  # a DBT_* variable behind prod's secret
        (self.path / "models").mkdir()
        self.other_file = "canary-file-" + secrets.token_hex(8)
        self.prod_target = "canary-target-" + secrets.token_hex(8)
        (self.path / "models" / "environ_probe.sql").write_text(PROBE_MODEL)
        (self.path / "models" / "visible_state.sql").write_text(VISIBLE_STATE_MODEL)
        (self.path / "models" / "prod_file.sql").write_text(PROD_FILE_MODEL)
        secret_file = root / "secrets" / "prod_file"
        secret_file.parent.mkdir()
        secret_file.write_text(self.other_file)
        # what dbt leaves in prod's target folder when a prod model reads env_var('OTHER_PASSWORD')
        prod_target = self.path / ".dockyard" / "targets" / "prod"
        prod_target.mkdir(parents=True)
        (prod_target / "partial_parse.msgpack").write_text(f"env_vars OTHER_PASSWORD {self.prod_target}")
        (self.path / "dbt_project.yml").write_text(
            'name: probe\nversion: "1.0"\nconfig-version: 2\nprofile: probe\nmodel-paths: ["models"]\n'
        )
        (self.path / "profiles.yml").write_text(PROFILES)
        (self.path / "dockyard.yml").write_text(
            textwrap.dedent(f"""\
            runner: {{mode: {mode}}}
            server: {{heartbeat_seconds: 1, poll_seconds: 0.1}}
            environments:
              dev:
                target: dev
                env: {{OWN_VAR: {self.own_var}, STOP_PID: "{os.getpid()}", PROD_SECRET_FILE: "{secret_file}"}}
                secrets: {{OWN_SECRET: "env:DEV_PASSWORD"}}
              prod:
                target: prod
                secrets: {{OTHER_PASSWORD: "env:OTHER_ENV_PASSWORD", OTHER_FILE: "file:{secret_file}",
                          OTHER_DBT: "env:DBT_PROD_TOKEN"}}
            jobs:
              - name: probe
                environment: dev
                commands: ["dbt run --select environ_probe visible_state prod_file"]
        """)
        )

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKYARD_STORE_URL", None)
        env.update(
            DEV_PASSWORD=self.own_secret,
            OTHER_ENV_PASSWORD=self.other,
            SERVER_ONLY_SECRET=self.server_only,
            DBT_PROD_TOKEN=self.other_dbt,
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        )
        return env

    def cli(self, *args: str, timeout: float = 200) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*DOCKYARD, *args, "--config", str(self.path / "dockyard.yml")],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rows(self) -> list[tuple]:
        with duckdb.connect(str(self.path / "dev.duckdb"), read_only=True) as con:
            return con.execute(
                "select depth, pid, environ, own_var, own_secret, others from environ_probe order by depth"
            ).fetchall()

    def check(self, ancestors: int) -> None:
        """What the step read: its own variables, none of the canaries, ``ancestors``
        dockyard processes above the dbt process read (so the check cannot pass vacuously)."""
        rows = self.rows()
        assert [r[0] for r in rows] == list(range(ancestors + 1)), rows
        _, _, own_block, own_var, own_secret, others = rows[0]
        assert (own_var, own_secret, others) == (self.own_var, self.own_secret, "absent" * 4)
        for depth, pid, block, *_ in rows:
            for canary in (self.other, self.server_only, self.other_dbt):
                assert canary not in block, f"the step read {canary} in /proc/{pid}/environ (depth {depth})"
        with duckdb.connect(str(self.path / "dev.duckdb"), read_only=True) as con:
            visible = sorted(r[0] for r in con.execute("select file from visible_state").fetchall())
            prod_file = con.execute("select content from prod_file").fetchall()
        # of the state folder, the step sees its own target folders only: its run's (where its
        # dbt writes) and its environment's (the partial parse kept between runs); not the
        # store, not prod's target folder, no other run's folder; prod's file: secret is empty
        own = [re.match(r"\.dockyard/(?:targets/dev/|runs/(\d+)/target/)", f) for f in visible]
        assert visible and all(own) and len({m.group(1) for m in own if m.group(1)}) == 1, visible
        assert prod_file == [("",)], prod_file


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_foreground_step_sees_only_its_environment(tmp_path, mode):
    probe = Probe(tmp_path, mode)
    proc = probe.cli("run", "probe", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout)["status"] == "success"
    probe.check(ancestors=1)  # the dbt process, then `dockyard run`


def _dockyard_processes(config: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if config.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_a_served_step_sees_only_its_environment_and_no_process_shows_the_store_password(tmp_path, pg_database_factory):
    """``dockyard --store-url postgresql://user:PASSWORD@... serve``: the worker slot's fork-mode
    step reads nothing of the slot's, the worker's or serve's environment; no dockyard
    process shows the store's password in its ``/proc/<pid>/cmdline`` (serve hides it in
    its own, and hands it to its children in their environment, not their arguments)."""
    from sqlalchemy.engine import make_url

    probe = Probe(tmp_path, "fork")
    password = "canary-store-" + secrets.token_hex(8)
    url = make_url(pg_database_factory()).set(password=password).render_as_string(hide_password=False)
    config = str(probe.path / "dockyard.yml")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**probe.env, "DOCKYARD_STORE_URL": url}
    serve = subprocess.Popen(
        [*DOCKYARD, "--store-url", url, "serve", "--port", str(port), "--workers", "1", "--config", config],
        cwd=probe.path,
        env=probe.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        queued = subprocess.run(
            [*DOCKYARD, "trigger", "probe", "--json", "--config", config],
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
        )
        assert queued.returncode == 0, queued.stdout + queued.stderr
        run_id = json.loads(queued.stdout)["run_id"]
        deadline = time.monotonic() + 180
        while True:
            shown = json.loads(
                subprocess.run(
                    [*DOCKYARD, "show", str(run_id), "--json", "--config", config],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=200,
                ).stdout
            )
            if shown["status"] in ("success", "error", "cancelled"):
                break
            assert time.monotonic() < deadline and serve.poll() is None, f"run {run_id}: {shown['status']}"
            time.sleep(0.3)
        assert shown["status"] == "success", shown
        pids = _dockyard_processes(config)
        assert len(pids) >= 4, pids  # serve, the scheduler, the worker, its slot
        for pid in pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert password.encode() not in cmdline, cmdline
            block = Path(f"/proc/{pid}/environ").read_bytes()
            assert not block.strip(b"\0"), f"/proc/{pid}/environ is readable: {cmdline}"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.communicate()
    probe.check(ancestors=4)  # the dbt process, its warm parent, the worker slot, the worker, serve


# -- the parts on their own ------------------------------------------------------------------

SEAL_SCRIPT = """
import ctypes, json, os, subprocess, sys
from dockyard import environ
ok = environ.seal_process()
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
child = subprocess.run(["sh", "-c", 'printf %s "$SEALED_CANARY"'], capture_output=True, text=True).stdout
print(json.dumps({"ok": ok, "block": environ.visible_environ().decode("latin-1"),
                  "os_environ": os.environ.get("SEALED_CANARY"), "getenv": libc.getenv(b"SEALED_CANARY").decode(),
                  "child": child, "dumpable": environ.dumpable(), "again": environ.seal_process(),
                  "home": os.path.expanduser("~")}))
"""


def test_seal_clears_the_block_and_keeps_the_environment_working(tmp_path):
    canary = "canary-sealed-" + secrets.token_hex(8)
    env = {**os.environ, "SEALED_CANARY": canary, "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SEAL_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["ok"] and got["again"]
    assert got["block"].strip("\0") == "" and canary not in got["block"]
    # os.environ, C getenv(), children started without env= and ~ expansion still work
    assert got["os_environ"] == got["getenv"] == got["child"] == canary
    assert got["home"] == str(tmp_path)
    assert got["dumpable"] is False


FD_MODEL = """\
{{ config(materialized='table') }}
select content from read_text('/proc/self/fd/{{ var("fd") }}')
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_fork_child_cannot_read_the_parents_open_files(tmp_path):
    """The worker's open files (its SQLite store, say) are not readable through
    ``/proc/self/fd`` from a fork-mode dbt child, and its environment block is empty even
    when the forking process never sealed its own."""
    canary = "canary-fd-" + secrets.token_hex(8)
    mini = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", mini)
    (mini / "models" / "fd_probe.sql").write_text(FD_MODEL)
    (mini / "models" / "environ_self.sql").write_text(
        "{{ config(materialized='table') }}\nselect content from read_text('/proc/self/environ')\n"
    )
    secret_file = tmp_path / "store.db"
    secret_file.write_text(canary)
    db = tmp_path / "fd.duckdb"
    with open(secret_file) as held:
        inv = DbtInvocation(
            [
                "run",
                "--select",
                "fd_probe",
                "environ_self",
                "--vars",
                f"{{fd: {held.fileno()}}}",
                "--profiles-dir",
                str(mini),
                "--target-path",
                str(tmp_path / "target"),
                "--log-path",
                str(tmp_path / "logs"),
            ],
            project_dir=mini,
            env=base_env(tmp_path, MINI_DB_PATH=str(db)),
            mode="fork",
        )
        inv.start()
        with inv:
            lines = []
            while not inv.done:
                lines += [getattr(item, "text", "") for item in inv.poll(0.1)]
        assert inv.returncode == 0, "\n".join(lines)
    # this test process was not sealed: its block holds PATH, HOME... (and the child's did too)
    assert environ.visible_environ().strip(b"\0")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select content from fd_probe").fetchall() == [("",)]
        assert con.execute("select content from environ_self").fetchone()[0].strip("\0") == ""


AS_USER_SCRIPT = """
import json, os, socket, sys, time
import psutil
from dockyard import environ
from dockyard.runner.isolation import enter_view

state = sys.argv[1]
first, again = environ.seal_process(), environ.seal_process()
server = socket.create_server(("127.0.0.1", 0))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    environ.enter_step({"PATH": os.environ["PATH"]})
    why = enter_view([state], [os.path.join(state, "targets", "dev")])
    conn = socket.create_connection(server.getsockname())
    seen = sorted(os.listdir(state))
    block = environ.visible_environ().strip(b"\\0").decode()
    os.write(w, json.dumps({"why": why, "seen": seen, "block": block}).encode())
    time.sleep(5)
    os._exit(0)
os.close(w)  # a child that dies without writing ends the read
child = json.loads(os.read(r, 65536) or b'{"died": true}')
conns = [c.raddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr]
os.kill(pid, 9)
os.waitpid(pid, 0)
print(json.dumps({"sealed": [first, again], "dumpable": environ.dumpable(), "child": child, "conns": conns,
                  "port": server.getsockname()[1], "uid": os.getuid()}))
"""


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_the_same_as_an_unprivileged_user(tmp_path):
    """As a non-root user (the usual deployment; the suite runs as root): a sealed,
    non-dumpable worker seals again, its fork child clears its block and enters its file view
    (a user namespace), and the worker still reads the child's connections (psutil)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="dockyard-nobody-"))
    try:
        base.chmod(0o777)
        state = base / "state"
        (state / "targets" / "dev").mkdir(parents=True)
        (state / "dockyard.db").write_text("store")
        for path in (state, state / "targets", state / "targets" / "dev", state / "dockyard.db"):
            os.chown(path, 65534, 65534)
        out = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                AS_USER_SCRIPT,
                str(state),
            ],
            capture_output=True,
            text=True,
            timeout=50,
            cwd=base,
            env={**os.environ, "CANARY_AS_USER": "canary-as-user"},
        )
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert got["uid"] == 65534 and got["sealed"] == [True, True] and got["dumpable"] is False
    if got["child"]["why"] and "unshare" in got["child"]["why"]:
        pytest.skip(f"no unprivileged user namespaces here: {got['child']['why']}")
    assert got["child"] == {"why": None, "seen": ["targets"], "block": ""}
    assert got["port"] in got["conns"]


def test_a_dbt_variable_behind_another_environments_secret_is_not_passed_through(tmp_path, monkeypatch):
    """Every DBT_* variable reaches dbt, except one that an environment's secrets read: that
    one is prod's secret, and dev's step must not get it."""
    from dockyard.config.loader import load_config
    from dockyard.project import dbt_environment, resolve_secrets

    probe = Probe(tmp_path, "fork")
    for key, value in probe.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DBT_PLAIN_SETTING", "passed")
    loaded = load_config(probe.path / "dockyard.yml")
    dev = dbt_environment(loaded, "dev", resolve_secrets(loaded, "dev"))
    prod = dbt_environment(loaded, "prod", resolve_secrets(loaded, "prod"))
    assert dev["DBT_PLAIN_SETTING"] == prod["DBT_PLAIN_SETTING"] == "passed"
    assert "DBT_PROD_TOKEN" not in dev and probe.other_dbt not in dev.values()
    assert prod["OTHER_DBT"] == probe.other_dbt and "DBT_PROD_TOKEN" not in prod
    assert dev["OWN_SECRET"] == probe.own_secret and "OTHER_PASSWORD" not in dev


def test_the_file_view_covers_dockyards_entries_when_the_project_is_the_state_folder(tmp_path):
    """``state_dir: .`` puts dockyard's files beside the dbt project: the view covers the
    store and dockyard's folders one by one, never the project itself."""
    from dockyard.runner.isolation import file_view

    for name in ("targets/dev", "targets/prod", "runs/1", "models"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("dockyard.db", "dockyard.db-wal", "dbt_project.yml"):
        (tmp_path / name).write_text("")
    view = file_view(
        tmp_path,
        base=tmp_path,
        reveal=[tmp_path / "targets" / "dev"],
        argv=["--state", "runs/1"],
        hide_files=["/elsewhere/prod_pw"],
    )
    assert set(view.hide) == {str(tmp_path / n) for n in ("dockyard.db", "dockyard.db-wal", "runs", "targets")} | {
        "/elsewhere/prod_pw"
    }
    assert set(view.reveal) == {str(tmp_path / "targets" / "dev"), str(tmp_path / "runs" / "1")}
    nested = file_view(tmp_path / ".dockyard", base=tmp_path, reveal=[tmp_path / ".dockyard" / "targets" / "dev"])
    assert nested.hide == (str(tmp_path / ".dockyard"),)
