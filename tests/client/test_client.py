"""dockyard.client against a real ``dockyard serve`` (TLS, a test CA, one worker) on a copy of
the shop: trigger by name with overrides, wait, stream, nodes, artifacts, cancel, rerun from
failure, the API's errors parsed, the async client; and the retries against a small real HTTP
server that answers 503 with Retry-After, then 200."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.api.served import copy_shop, free_port, start_server, stop_server

from dockyard.client import AsyncClient, Client, ClientError
from dockyard.errors import DockyardError

pytestmark = pytest.mark.slow
BROKEN = """
  - name: "Broken"
    environment: dev
    commands: ["dbt run --select broken"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    shop = copy_shop(tmp)
    (shop / "models" / "broken.sql").write_text("select * from no_such_table\n")
    (shop / "dockyard.yml").write_text((shop / "dockyard.yml").read_text() + BROKEN)
    server = start_server(shop, tmp)
    yield server
    stop_server(server)


@pytest.fixture
def dy(served):
    with Client(served.url, served.token, verify=str(served.ca), timeout=30) as client:
        yield client


def test_trigger_by_name_wait_nodes_and_artifacts(dy):
    run = dy.trigger("API smoke", cause="client test", threads_override=1)
    assert run.status == "queued" and run.job == "API smoke"
    assert run.raw["overrides"]["threads_override"] == 1
    final = dy.wait(run.id, poll=0.5, timeout=180)
    assert final.status == "success", final.raw
    assert final.node("model.shop.stg_customers")["status"] == "success"
    assert {n["unique_id"] for n in dy.nodes(run.id)} == {"seed.shop.raw_customers", "model.shop.stg_customers"}
    names = [a["path"] for a in dy.artifacts(run.id)]
    manifest = next(p for p in names if p.endswith("manifest.json"))
    assert "model.shop.fct_orders" in json.loads(dy.artifact(run.id, manifest))["nodes"]
    assert run.id in [r.id for r in dy.runs(job_id=run.job_id, limit=5)]
    env_run, data = dy.latest_manifest("dev")
    assert env_run >= run.id and json.loads(data)["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(env_run)


def test_stream_yields_status_changes_and_log_lines(dy):
    run = dy.trigger("API smoke")
    events = list(dy.stream(run.id, poll=0.3))
    statuses = [e.run.status for e in events if e.kind == "status"]
    assert statuses[-1] == "success" and len(set(statuses)) == len(statuses)
    lines = [e.line for e in events if e.kind == "log"]
    assert any("stg_customers" in line for line in lines), lines[-20:]
    assert all("\n" not in line for line in lines)


def test_rerun_from_failure_and_cancel(dy):
    failed = dy.wait(dy.trigger("Broken").id, poll=0.5, timeout=180)
    assert failed.status == "error"
    assert failed.node("model.shop.broken")["status"] == "error"
    again = dy.rerun(failed.id, idempotency_key=f"rerun-{failed.id}")
    assert again.raw["retry_of"] == failed.id
    assert dy.rerun(failed.id, idempotency_key=f"rerun-{failed.id}").id == again.id  # retried request: same run
    assert dy.wait(again.id, poll=0.5, timeout=180).status == "error"
    run = dy.trigger("API smoke")
    assert dy.cancel(run.id) in ("cancelled", "requested")
    assert dy.wait(run.id, poll=0.5, timeout=120).status == "cancelled"
    with pytest.raises(ClientError) as exc:
        dy.cancel(run.id)
    assert exc.value.http_status == 409 and "already ended" in exc.value.message


def test_errors_carry_the_api_message(served, dy):
    with pytest.raises(ClientError) as exc:
        dy.run(999999)
    assert exc.value.http_status == 404 and "999999" in exc.value.message
    assert isinstance(exc.value, DockyardError)
    with pytest.raises(ClientError) as exc:
        dy.trigger("No such job")
    assert exc.value.http_status == 404 and "API smoke" in exc.value.message
    with Client(served.url, served.read_token, verify=str(served.ca)) as reader:
        with pytest.raises(ClientError) as exc:
            reader.trigger(served.smoke_job)
        assert exc.value.http_status == 403
    with Client(served.url, "dky_wrong", verify=str(served.ca)) as wrong:
        with pytest.raises(ClientError) as exc:
            wrong.jobs()
        assert exc.value.http_status == 401
        assert "dky_wrong" not in str(exc.value)
    with pytest.raises(ClientError) as exc:
        dy.trigger(served.smoke_job, steps_override=["dbt run-operation x"])
    assert exc.value.http_status == 403 and "run-operation" in exc.value.message


def test_async_client(served):
    async def main():
        async with AsyncClient(served.url, served.token, verify=str(served.ca)) as dy:
            run = await dy.trigger("API smoke", cause="async")
            final = await dy.wait(run.id, poll=0.5, timeout=180)
            events = [e async for e in dy.stream(run.id)]
            arts = await dy.artifacts(run.id)
            body = await dy.artifact(
                run.id, max((a for a in arts if a["name"] == "run_results.json"), key=lambda a: a["step_index"])["path"]
            )
            with pytest.raises(ClientError) as exc:
                await dy.run(999999)
            return final, events, json.loads(body), exc.value

    # a loop of its own in a thread: a sync Playwright session of the UI tests may hold this thread's loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        final, events, results, error = pool.submit(asyncio.run, main()).result()
    assert final.status == "success" and events[-1].run.status == "success"
    assert {r["unique_id"] for r in results["results"]} == {"model.shop.stg_customers"}
    assert error.http_status == 404


class Flaky(BaseHTTPRequestHandler):
    """503 with Retry-After: 0 for the first two requests of a path, then the envelope."""

    seen: dict[str, int] = {}

    def do_GET(self):
        count = self.seen[self.path] = self.seen.get(self.path, 0) + 1
        if count <= 2:
            body = {"status": {"code": 503, "user_message": "store unavailable"}, "data": None}
            self._send(503, body, {"Retry-After": "0"})
        else:
            self._send(200, {"status": {"code": 200}, "data": [{"id": 1, "name": "job"}]})

    def _send(self, code, body, headers=None):
        raw = json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def test_retries_after_503_and_bounded_connection_errors():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with Client(url, "t", retries=3) as dy:
            assert dy.jobs() == [{"id": 1, "name": "job"}]
        Flaky.seen.clear()
        with Client(url, "t", retries=1) as dy:
            with pytest.raises(ClientError) as exc:
                dy.jobs()
            assert exc.value.http_status == 503 and exc.value.message == "store unavailable"
    finally:
        server.shutdown()
    with Client(f"http://127.0.0.1:{free_port()}", "t", retries=2) as dy:
        with pytest.raises(ClientError) as exc:
            dy.jobs()
        assert exc.value.http_status == 0 and "cannot reach" in exc.value.message
