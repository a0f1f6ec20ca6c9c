"""End to end: a real ``dockyard serve`` over TLS (test CA) on a free loopback port, driven
the way teams' scripts drive dbt Cloud: trigger, then poll until data.status is 10."""

from __future__ import annotations

import os
import time

import pytest
import requests
from tests.api.served import copy_shop, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    server = start_server(copy_shop(tmp), tmp)
    yield server
    stop_server(server)


def poll(base: str, run_id: int, headers: dict, verify: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = requests.get(f"{base}/runs/{run_id}/", headers=headers, verify=verify, timeout=10).json()["data"]
        if data["status"] in (10, 20, 30):
            return data
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def test_plain_requests_script_triggers_and_polls_to_success(served):
    """The pattern of the script in dbt's docs, unchanged but for the URL and token."""
    api_base = served.url + "/"  # DBT_URL with a trailing slash gives //api/v2/...
    base = f"{api_base}/api/v2/accounts/1"
    headers = {"Authorization": f"Token {served.token}"}
    ca = str(served.ca)
    response = requests.post(
        f"{base}/jobs/{served.smoke_job}/run/",
        headers=headers,
        verify=ca,
        timeout=30,
        json={"cause": "Triggered by a script", "threads_override": 1},
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["data"]["id"]
    data = poll(base, run_id, headers, ca)
    assert data["status"] == 10 and data["status_humanized"] == "Success", data
    detail = requests.get(
        f"{base}/runs/{run_id}/",
        params={"include_related": "['run_steps','trigger']"},
        headers=headers,
        verify=ca,
        timeout=30,
    ).json()["data"]
    assert [s["index"] for s in detail["run_steps"]] == [1, 2, 3, 4, 5]
    assert detail["run_steps"][4]["name"] == "Invoke dbt with `dbt run --select stg_customers`"
    assert "1 threads" in detail["run_steps"][4]["logs"] or "Concurrency: 1" in detail["run_steps"][4]["logs"]
    names = requests.get(f"{base}/runs/{run_id}/artifacts/", headers=headers, verify=ca, timeout=30).json()["data"]
    assert "run_results.json" in names and "manifest.json" in names
    results = requests.get(
        f"{base}/runs/{run_id}/artifacts/run_results.json", headers=headers, verify=ca, timeout=30
    ).json()
    assert results["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(run_id)  # dagster-dbt needs it
    logs = requests.get(f"{served.url}/api/v1/runs/{run_id}/logs", headers=headers, verify=ca, timeout=30).text
    assert "stg_customers" in logs


def test_form_encoded_trigger_and_bearer_over_tls(served):
    base = f"{served.url}/api/v2/accounts/1"
    headers = {"Authorization": f"Bearer {served.token}"}
    response = requests.post(
        f"{base}/jobs/{served.smoke_job}/run/",
        headers=headers,
        verify=str(served.ca),
        data={"cause": "form", "steps_override": "dbt seed --select raw_customers"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    data = poll(base, response.json()["data"]["id"], headers, str(served.ca))
    assert data["status"] == 10


def test_tls_and_auth_are_enforced(served):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{served.url}/api/v1/health", timeout=10, verify=True)  # not a public CA
    base = f"{served.url}/api/v2/accounts/1"
    assert requests.get(f"{base}/runs/", verify=str(served.ca), timeout=10).status_code == 401
    read = {"Authorization": f"Token {served.read_token}"}
    denied = requests.post(f"{base}/jobs/{served.smoke_job}/run/", headers=read, verify=str(served.ca), timeout=10)
    assert denied.status_code == 403 and denied.json()["data"] is None
    root = requests.get(f"{served.url}/", headers=read, verify=str(served.ca), timeout=10)
    assert root.status_code == 200  # Airflow's "Test connection"
    log = served.shop.parent / "serve.log"
    if log.exists():
        assert served.token not in log.read_text()


def test_an_idle_tls_client_connection_does_not_hold_up_the_shutdown(tmp_path):
    """A client that keeps its TLS connection open (a response object still referenced)
    once held `dockyard serve`'s stop for asyncio's 30 s SSL shutdown timeout."""
    server = start_server(copy_shop(tmp_path), tmp_path, workers=0)
    try:
        held = requests.get(f"{server.url}/api/v1/runs", verify=str(server.ca), timeout=10)
        assert held.status_code == 401
        started = time.monotonic()
    finally:
        stop_server(server)
    assert time.monotonic() - started < 15
