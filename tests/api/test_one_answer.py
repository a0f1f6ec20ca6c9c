"""Every front-end answers the same for the same thing (issue 8, defects 3 and 5).

Defect 3: a run whose foreground process died is ``error``/``worker_lost`` whichever front-end
reads it first (the native API, the dbt Cloud API, ``dockyard show --json``); the API used
to read the store directly and report it running.

Defect 5: one condition, one error class, one HTTP status and one message, on every path:
the native API, the dbt Cloud API and the CLI (run in-process with ``DOCKYARD_DEBUG`` so the
exception itself is seen, and once more without it for the user's ``Error:`` line).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
from tests.api.conftest import DAILY, job_id, seed_run
from typer.testing import CliRunner

from dockyard import errors
from dockyard.cli.main import cli
from dockyard.domain import RunStatus

V1 = "/api/v1"
V2 = "/api/v2/accounts/1"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _lost_run(app) -> int:
    """A run left ``running`` by a foreground ``dockyard run`` of this host that died
    (SIGKILL): its owner ``host:pid`` is a process that no longer exists."""
    record, config = app.job(DAILY)
    store = app.store
    run_id = store.runs.create_run(record.id, record.name, config.environment, config.all_commands, trigger="manual")
    store.runs.transition_run(run_id, RunStatus.STARTING, worker_id=f"{socket.gethostname()}:{_dead_pid()}")
    store.runs.transition_run(run_id, RunStatus.RUNNING)
    store.runs.start_step(run_id, 1, store.runs.get_run(run_id).created_at)
    return run_id


def _cli(app, *args: str, debug: bool = True, monkeypatch=None):
    if monkeypatch is not None:  # a foreground run seals the process: not the test runner's
        monkeypatch.setattr("dockyard.environ.seal_process", lambda: True)
    env = {"DOCKYARD_DEBUG": "1"} if debug else {"DOCKYARD_DEBUG": ""}
    return CliRunner().invoke(cli, ["--config", str(app.loaded.path), *args], env=env)


@pytest.mark.parametrize("path", ["native", "native list", "dbt Cloud", "cli show"])
def test_a_lost_foreground_run_reads_the_same_everywhere(app, client, path):
    run_id = _lost_run(app)
    assert app.store.runs.get_run(run_id).status == RunStatus.RUNNING  # nobody has looked at it yet
    if path == "native":
        data = client.get(f"{V1}/runs/{run_id}").json()["data"]
        status, reason = data["status"], data["reason"]
    elif path == "native list":
        data = client.get(f"{V1}/runs", params={"job_id": job_id(app)}).json()["data"]
        found = next(r for r in data if r["id"] == run_id)
        status, reason = found["status"], found["reason"]
    elif path == "dbt Cloud":
        data = client.get(f"{V2}/runs/{run_id}/").json()["data"]
        status, reason = {20: "error"}.get(data["status"], data["status"]), data["reason"]
        assert data["is_error"] and not data["in_progress"]
    else:
        result = _cli(app, "show", str(run_id), "--json", debug=False)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        status, reason = data["status"], data["reason"]
    assert (status, reason) == ("error", "worker_lost")
    # and whichever read it first, the others agree
    assert client.get(f"{V1}/runs/{run_id}").json()["data"]["status"] == "error"
    assert client.get(f"{V2}/runs/{run_id}/").json()["data"]["status"] == 20
    assert json.loads(_cli(app, "show", str(run_id), "--json", debug=False).stdout)["status"] == "error"


def _full_queue(app) -> int:
    record, config = app.job(DAILY)
    for _ in range(100):
        app.store.queue.enqueue(record.id, record.name, config.environment, ["dbt run"], trigger="api", coalesce=False)
    return record.id


# condition -> (error class name, HTTP status, setup(app) -> context, paths)
# a path is ("native"|"cloud", method, url template, json body) or ("cli", args...)
CONDITIONS = {
    "unknown run": (
        "UnknownRunError",
        404,
        lambda app: {"run": 99999},
        [
            ("native", "GET", "/runs/{run}", None),
            ("native", "POST", "/runs/{run}/cancel", None),
            ("native", "POST", "/runs/{run}/rerun", None),
            ("cloud", "GET", "/runs/{run}/", None),
            ("cloud", "POST", "/runs/{run}/cancel/", None),
            ("cli", "show", "{run}"),
            ("cli", "cancel", "{run}"),
            ("cli", "logs", "{run}"),
            ("cli", "rerun", "{run}"),
        ],
    ),
    "unknown job": (
        "UnknownJobError",
        404,
        lambda app: {"job": 999},
        [
            ("native", "GET", "/jobs/{job}", None),
            ("native", "POST", "/jobs/{job}/trigger", {}),
            ("cloud", "GET", "/jobs/{job}/", None),
            ("cloud", "POST", "/jobs/{job}/run/", {}),
            ("cli", "run", "{job}"),
            ("cli", "trigger", "{job}"),
            ("cli", "runs", "--job", "{job}"),
        ],
    ),
    "unknown environment": (
        "UnknownEnvironmentError",
        400,
        lambda app: {"job": job_id(app)},
        [
            ("native", "POST", "/jobs/{job}/trigger", {"environment": "nope"}),
            ("cloud", "POST", "/jobs/", {"name": "x", "environment_id": 999, "execute_steps": ["dbt run"]}),
            ("cli", "run", "{job}", "--env", "nope"),
            ("cli", "trigger", "{job}", "--env", "nope"),
        ],
    ),
    "run still active": (
        "RunActiveError",
        409,
        lambda app: {"run": seed_run(app, status=RunStatus.QUEUED)},
        [
            ("native", "POST", "/runs/{run}/rerun", None),
            ("cli", "rerun", "{run}"),
        ],
    ),
    "run not rerunnable": (
        "NotRerunnableError",
        409,
        lambda app: {"run": seed_run(app)},
        [
            ("native", "POST", "/runs/{run}/rerun", None),
            ("cli", "rerun", "{run}"),
        ],
    ),
    "run already final": (
        "RunFinalError",
        409,
        lambda app: {"run": seed_run(app, status=RunStatus.ERROR, failed_step=2)},
        [
            ("native", "POST", "/runs/{run}/cancel", None),
            ("cli", "cancel", "{run}"),
        ],
    ),
    "queue full": (
        "QueueFullError",
        429,
        lambda app: {"job": _full_queue(app)},
        [
            ("native", "POST", "/jobs/{job}/trigger", {}),
            ("cloud", "POST", "/jobs/{job}/run/", {}),
            ("cli", "trigger", "{job}"),
        ],
    ),
    "unknown step": (
        "NotFoundError",
        404,
        lambda app: {"run": seed_run(app)},
        [
            ("native", "GET", "/runs/{run}/logs?step=42", None),
            ("cli", "logs", "{run}", "--step", "42"),
        ],
    ),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_one_condition_one_error_on_every_path(app, client, monkeypatch, condition):
    name, status, setup, paths = CONDITIONS[condition]
    cls = getattr(errors, name, None)
    assert cls is not None and issubclass(cls, errors.DockyardError), f"no error class {name} in dockyard.errors"
    assert cls.status == status
    ctx = {k: str(v) for k, v in setup(app).items()}
    messages = {}
    for path in paths:
        where = " ".join(str(p) for p in path if p is not None)
        if path[0] in ("native", "cloud"):
            _, method, url, body = path
            url = (V1 if path[0] == "native" else V2) + url.format(**ctx)
            response = client.request(method, url, json=body)
            assert response.status_code == status, (where, response.status_code, response.text)
            message = response.json()["status"]["user_message"]
        else:
            args = [a.format(**ctx) for a in path[1:]]
            result = _cli(app, *args, monkeypatch=monkeypatch)
            assert type(result.exception) is cls, (where, repr(result.exception), result.output)
            assert result.exception.status == status
            message = result.exception.render()
            plain = _cli(app, *args, debug=False, monkeypatch=monkeypatch)  # what the user sees
            assert plain.exit_code == 1 and plain.stderr.startswith("Error: "), (where, plain.output)
            assert "Traceback" not in plain.output
        messages[where] = message
    # one message per condition and thing (the job's id and name may both name it)
    print(condition, json.dumps(messages, indent=1))
    assert len({m.replace(f"'{DAILY}'", ctx.get("job", "")) for m in messages.values()}) <= 2, messages


def test_no_store_import_in_the_front_ends():
    """The CLI and the API reach the store only through the App (also an import-linter contract)."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "src", "dockyard")
    for front in ("api", "cli"):
        for folder, _, names in os.walk(os.path.join(root, front)):
            for name in names:
                if name.endswith(".py"):
                    text = open(os.path.join(folder, name), encoding="utf-8").read()
                    assert "dockyard.store" not in text, (front, name)
                    assert ".store." not in text.replace("app.store_url", ""), (front, name)
