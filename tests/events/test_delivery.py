"""Delivering the outbox: the registry, the JSON-lines sink, one sink's delivery loop
(order, cursor, backoff, bounded calls), the scheduler's dispatch duty off the tick thread."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard import plugins
from dockyard.app import App
from dockyard.app.delivery import SinkDelivery, backoff_seconds
from dockyard.config.loader import load_config
from dockyard.errors import ConfigError
from dockyard.events import Event, RunEvent
from dockyard.plugins import Sink, SinkContext
from dockyard.server.scheduler import Scheduler
from dockyard.sinks.jsonl import JsonLinesSink
from dockyard.store import Store

CMDS = ["dbt parse"]


class Recording(Sink):
    """Keeps what it got; ``fail`` raises, ``hang`` blocks (a slow webhook)."""

    type = "recording"
    got: list[Event]

    def __init__(self, name, options, context):
        super().__init__(name, options, context)
        self.got, self.fail, self.hang = [], False, threading.Event()
        self.hang.set()
        self.calls = 0

    def deliver(self, event: Event) -> None:
        self.calls += 1
        self.hang.wait(30)
        if self.fail:
            raise ConnectionError("sink down")
        self.got.append(event)


@pytest.fixture
def job_id(store: Store) -> int:
    return store.jobs.sync_jobs([{"name": "a", "environment": "dev"}])["a"]


def queue_runs(store: Store, job_id: int, n: int) -> list[int]:
    return [store.queue.enqueue(job_id, "a", "dev", CMDS, trigger="manual", coalesce=False).run_id for _ in range(n)]


def recording(name: str = "rec") -> Recording:
    return Recording(name, {}, SinkContext(Path("."), Path(".")))


# -- the registry and the jsonl sink -------------------------------------------------------
def test_the_builtin_sink_is_registered_through_its_entry_point() -> None:
    assert "jsonl" in plugins.sink_types()
    assert plugins.sink_class("jsonl") is JsonLinesSink
    with pytest.raises(plugins.UnknownSinkError, match="known types: .*jsonl"):
        plugins.sink_class("carrier-pigeon")


def test_a_third_party_sink_is_one_module_and_one_entry_point_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "acme_sink-1.0.dist-info").mkdir(parents=True)
    (site / "acme_sink-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-sink\nVersion: 1.0\n")
    (site / "acme_sink-1.0.dist-info" / "entry_points.txt").write_text(
        "[dockyard.sinks]\nacme = acme_sink:AcmeSink\n"  # the one registry line
    )
    (site / "acme_sink.py").write_text(  # the one module
        textwrap.dedent(
            """
            from dockyard.plugins import Sink

            class AcmeSink(Sink):
                type = "acme"

                def deliver(self, event):
                    print("delivered", event.key)
            """
        )
    )
    code = textwrap.dedent(
        """
        from datetime import datetime, UTC
        from pathlib import Path
        from dockyard import plugins
        from dockyard.events import Event, RunEvent
        print(plugins.sink_types())
        sink = plugins.build_sink({"type": "acme", "name": "mine"}, plugins.SinkContext(Path("."), Path(".")))
        sink.deliver(Event(1, "run:1:final", RunEvent.SUCCEEDED, 1, datetime.now(UTC)))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "'acme'" in out.stdout and "delivered run:1:final" in out.stdout


def test_sink_config_errors_are_located(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yml"
    config.write_text(
        "environments:\n  dev: {target: dev}\nevents:\n  sinks:\n    - type: jsonl\n    - type: carrier-pigeon\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    text = info.value.render()
    assert "carrier-pigeon" in text and "known types: jsonl" in text and "dockyard.yml:6" in text
    config.write_text("environments:\n  dev: {target: dev}\nevents:\n  sinks:\n    - {type: jsonl, colour: red}\n")
    with pytest.raises(ConfigError, match="no option 'colour'"):
        load_config(config)
    config.write_text(
        "environments:\n  dev: {target: dev}\nevents:\n  sinks:\n    - {type: jsonl}\n    - {type: jsonl}\n"
    )
    with pytest.raises(ConfigError, match="distinct 'name'"):
        load_config(config)


def test_the_jsonl_sink_appends_private_lines(tmp_path: Path) -> None:
    sink = JsonLinesSink("log", {"path": "logs/events.jsonl", "fsync": True}, SinkContext(tmp_path, tmp_path / "s"))
    now = datetime.now(UTC)
    for i in (1, 2):
        sink.deliver(Event(i, f"run:{i}:final", RunEvent.FAILED, i, now, {"run_id": i, "reason": "worker_lost"}))
    path = tmp_path / "logs" / "events.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["key"], d["type"], d["payload"]["run_id"]) for d in lines] == [
        ("run:1:final", "run.failed", 1),
        ("run:2:final", "run.failed", 2),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    default = JsonLinesSink("log", {}, SinkContext(tmp_path, tmp_path / "state"))
    assert default.path == tmp_path / "state" / "events.jsonl"


# -- one sink's delivery -----------------------------------------------------------------------
def test_delivery_in_order_with_the_cursor(store: Store, job_id: int) -> None:
    queue_runs(store, job_id, 3)
    sink = recording()
    delivery = SinkDelivery(store, sink, "d1")
    result = delivery.run_pass()
    assert result.delivered == 3 and [e.id for e in sink.got] == [1, 2, 3]
    assert [e.key for e in sink.got] == [f"run:{i}:queued" for i in (1, 2, 3)]
    assert store.outbox.cursor("rec").last_id == 3
    assert delivery.run_pass().delivered == 0
    # a second dispatcher (another scheduler) does not deliver to the same sink meanwhile
    other = recording()
    assert SinkDelivery(store, other, "d2").run_pass().held and other.got == []


def test_a_failing_sink_backs_off_and_catches_up(store: Store, job_id: int) -> None:
    queue_runs(store, job_id, 2)
    sink = recording()
    sink.fail = True
    delivery = SinkDelivery(store, sink, "d1", max_backoff_s=4)
    first = delivery.run_pass()
    assert first.failed and sink.got == []
    cursor = store.outbox.cursor("rec")
    assert cursor.failures == 1 and "sink down" in cursor.last_error and cursor.last_id == 0
    assert cursor.next_attempt_at > datetime.now(UTC)
    assert delivery.run_pass().waiting and sink.calls == 1  # backing off: not called again
    assert delivery.run_pass(ignore_backoff=True).failed
    assert store.outbox.cursor("rec").failures == 2
    assert [backoff_seconds(n, 4) for n in (1, 2, 3, 4, 9)] == [1, 2, 4, 4, 4]
    sink.fail = False
    assert delivery.run_pass(ignore_backoff=True).delivered == 2
    assert store.outbox.cursor("rec").failures == 0 and store.outbox.cursor("rec").last_id == 2


def test_a_hanging_sink_is_bounded(store: Store, job_id: int) -> None:
    queue_runs(store, job_id, 1)
    sink = recording()
    sink.hang.clear()
    delivery = SinkDelivery(store, sink, "d1", timeout_s=0.3)
    started = time.monotonic()
    assert delivery.run_pass().failed
    assert time.monotonic() - started < 2
    assert "more than 0.3 s" in store.outbox.cursor("rec").last_error
    # while the overrun call is still stuck, no second call is started
    assert delivery.run_pass(ignore_backoff=True).failed and sink.calls == 1
    sink.hang.set()
    time.sleep(0.1)
    assert delivery.run_pass(ignore_backoff=True).delivered == 1


# -- the scheduler's dispatch duty ----------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1'\nprofile: p\n")
    return tmp_path


@pytest.fixture
def registered():
    plugins.register_sink("recording", Recording)
    yield
    plugins._registered.pop("recording", None)


def test_a_hanging_sink_does_not_hold_the_scheduler_or_the_other_sink(project, store, job_id, registered) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    (project / "dockyard.yml").write_text(
        "environments:\n  dev: {target: dev}\n"
        "jobs:\n  - {name: a, environment: dev, commands: ['dbt parse']}\n"
        "events:\n  delivery_timeout_seconds: 0.5\n  sinks:\n"
        "    - {type: recording, name: slow}\n    - {type: jsonl, path: events.jsonl}\n"
    )
    app = App.open(project / "dockyard.yml", url)
    try:
        app.sync()
        scheduler = Scheduler(app, "sched-1")
        timings = []
        started = time.monotonic()
        scheduler.tick()  # starts the sinks' threads
        timings.append(time.monotonic() - started)
        dispatch = scheduler.duties[-1]
        slow = next(t.delivery.sink for t in dispatch._threads if t.delivery.sink.name == "slow")
        slow.hang.clear()  # the slow sink now blocks in every delivery
        ids = queue_runs(app.store, app.sync()["a"], 3)
        for run_id in ids:
            app.store.leases.request_cancel(run_id)
        deadline = time.monotonic() + 20
        log = project / "events.jsonl"
        while time.monotonic() < deadline:
            started = time.monotonic()
            scheduler.tick()
            timings.append(time.monotonic() - started)
            slow_cursor = app.store.outbox.cursor("slow")  # None until its first delivery ends
            slow_failed = slow_cursor is not None and slow_cursor.failures
            if log.exists() and len(log.read_text().splitlines()) >= 6 and slow_failed:
                break
            time.sleep(0.1)
        keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
        assert {f"run:{i}:final" for i in ids} <= set(keys)
        assert max(timings) < 0.5, timings  # the tick never waits for a sink
        cursor = app.store.outbox.cursor("slow")
        assert cursor.failures >= 1 and "more than 0.5 s" in cursor.last_error
        slow.hang.set()
        scheduler.close()
    finally:
        app.close()
