"""The dashboard, jobs, job, environments and workers pages over a real SQLite store with
runs recorded as a worker records them: what they show equals the store's, empty states,
escaping of what users and dbt write, the CSP on every page, ``/`` for browsers and API
clients, and triggering a run from the job page."""

from __future__ import annotations

import html
import re

from tests.ui.conftest import DAILY, csrf_of, seed_run

from dockyard.domain import RunStatus
from dockyard.ui.site import CSP
from dockyard.ui.templating import duration

PAGES = ("/", "/jobs", "/environments", "/workers", "/login")


def test_root_is_the_dashboard_for_browsers_and_json_for_api_clients(client, ui_app):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Dashboard</h1>" in page.text
    api = client.get("/", headers={"Accept": "application/json"})
    assert api.headers["content-type"].startswith("application/json")
    assert api.json()["data"]["name"] == "dockyard"
    # Airflow's connection test: a token and any Accept gets the API's JSON root
    _, token = ui_app.tokens.create("airflow", "read")
    airflow = client.get("/", headers={"Accept": "text/html", "Authorization": f"Token {token}"})
    assert airflow.json()["data"]["version"] and airflow.headers["content-type"].startswith("application/json")


def test_every_page_has_the_security_headers(client):
    for path in (*PAGES, "/static/dockyard.css", "/no/such/page"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
    assert client.get("/no/such/page").status_code == 404
    for path in PAGES:  # no inline script or style anywhere (the CSP would block them)
        text = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", text), path
        assert " style=" not in text and "<style" not in text, path


def test_empty_states_when_nothing_ran(client, ui_app):
    board = client.get("/").text
    assert "Nothing is running." in board and "The queue is empty." in board
    assert "never ran" in board
    job_id = ui_app.job(DAILY)[0].id
    job = client.get(f"/jobs/{job_id}").text
    assert "This job never ran." in job and "No finished runs yet." in job
    envs = client.get("/environments").text
    assert "none yet" in envs and "no runs yet" in envs
    assert "No scheduler or worker has run yet" in client.get("/workers").text


def test_dashboard_and_jobs_show_the_stores_numbers(client, ui_app):
    ok = seed_run(ui_app, status=RunStatus.SUCCESS)
    bad = seed_run(ui_app, status=RunStatus.ERROR, failed_step=1)
    running = seed_run(ui_app, status=RunStatus.RUNNING)
    queued = seed_run(ui_app, status=RunStatus.QUEUED)
    store = ui_app.store.reader.runs
    last = store.get_run(bad)
    board = client.get("/").text
    assert f'href="/runs/{running}"' in board and f'href="/runs/{queued}"' in board
    jobs = client.get("/jobs").text
    row = jobs[jobs.index(f"/jobs/{last.job_id}") :]
    row = row[: row.index("</tr>")]
    # the job's newest run is the queued one; its last finished duration is the error's
    assert "st-queued" in row
    assert '<svg class="spark"' in row  # two finished runs: a sparkline
    live = client.get("/live/dashboard", headers={"Accept": "application/json"}).json()
    assert [r["id"] for r in live["running"]] == [running]
    full = store.get_run(running)
    done = sum(1 for n in full.executed_nodes if n.finished_at is not None)
    assert live["running"][0]["nodes_done"] == done and live["running"][0]["nodes_total"] == len(full.executed_nodes)
    assert live["queued"] == 1
    job = client.get(f"/jobs/{last.job_id}").text
    for run_id in (ok, bad, running, queued):
        assert f'href="/runs/{run_id}"' in job
    assert duration(store.get_run(ok).duration_s) in job
    assert '<svg class="trend"' in job
    assert 'action="/runs"' in job and f'name="job" value="{last.job_id}"' in job


def test_environments_show_target_schema_and_latest_success(client, ui_app):
    ok = seed_run(ui_app, status=RunStatus.SUCCESS)
    ui_app.store.engine.dispose()
    text = client.get("/environments").text
    env = ui_app.job(DAILY)[1].environment
    target = ui_app.config.environments[env].target
    row = text[text.index(f"<td>{env}</td>") :]
    row = row[: row.index("</tr>")]
    assert f"<td>{target}</td>" in row and f'href="/runs/{ok}"' in row


def test_user_text_is_escaped(client, ui_app):
    evil = "<script>alert(1)</script>"
    run_id = seed_run(ui_app, status=RunStatus.ERROR, failed_step=1)
    ui_app.store.runs.set_run_fields(run_id, reason=evil)
    env_id = ui_app.jobs.env_id("dev")
    job = ui_app.jobs.save({"name": f"api {evil}", "environment_id": env_id, "execute_steps": ["dbt run"]})
    for path in ("/", "/jobs", f"/jobs/{job.id}", f"/jobs/{ui_app.job(DAILY)[0].id}"):
        text = client.get(path).text
        assert evil not in text, path
    assert html.escape(f"api {evil}", quote=False) in client.get("/jobs").text


def test_triggering_from_the_job_page_queues_a_run(client, ui_app):
    job_id = ui_app.job(DAILY)[0].id
    page = client.get(f"/jobs/{job_id}")
    assert "Trigger run" in page.text  # an anonymous admin may trigger
    token = csrf_of(page.text)
    form = {"csrf_token": token, "threads_override": "3", "cause": "from the test", "steps_override": "dbt run\n"}
    response = client.post(f"/jobs/{job_id}/trigger", data=form)
    assert response.status_code == 303
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    run = ui_app.store.reader.runs.get_run(run_id)
    assert run.status is RunStatus.QUEUED and run.trigger == "manual" and run.cause == "from the test"
    assert run.job_id == job_id
    assert run.overrides == {"threads_override": 3, "steps_override": ["dbt run"]}
    assert [s.command for s in run.steps] == ["dbt run"]


def test_a_trigger_without_the_csrf_token_queues_nothing(client, ui_app):
    job_id = ui_app.job(DAILY)[0].id
    client.get(f"/jobs/{job_id}")  # the CSRF cookie
    before = ui_app.store.reader.runs.count_runs()
    for form in ({}, {"csrf_token": "x" * 43}):
        response = client.post(f"/jobs/{job_id}/trigger", data=form)
        assert response.status_code == 403 and "expired" in response.text
    token = csrf_of(client.get(f"/jobs/{job_id}").text)
    other_site = client.post(
        f"/jobs/{job_id}/trigger", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert other_site.status_code == 403 and "another site" in other_site.text
    assert ui_app.store.reader.runs.count_runs() == before


def test_workers_page_shows_the_processes(client, ui_app):
    leases = ui_app.store.leases
    leases.register_process("box:41:aaaa", "scheduler", "box", 41)
    leases.register_process("box:42:bbbb", "worker", "box", 42, concurrency=3)
    leases.stop_process("box:41:aaaa")
    text = client.get("/workers").text
    for proc in ui_app.state.summary()["processes"]:
        row = text[text.index(f"<code>{proc['id']}</code>") :]
        row = row[: row.index("</tr>")]
        assert proc["kind"] in row
        assert ("alive" if proc["alive"] else "stopped") in row
    assert "Queue" in text and "Next fires" in text and "Daily Production Run" in text


def test_every_ui_route_is_documented(site):
    """Each page and endpoint of the UI (every router of PAGES) appears in docs/*.md."""
    from pathlib import Path

    from dockyard.api.app import api_routes

    docs = Path(__file__).resolve().parents[2] / "docs"
    text = "\n".join(p.read_text() for p in docs.glob("*.md"))
    normal = {
        re.sub(r"\{[^}]*\}", "{}", m).rstrip("/") or "/" for m in re.findall(r"(?<![\w.])/[A-Za-z0-9_./{}:-]*", text)
    }
    missing = sorted(
        path
        for path, _, _ in api_routes(site)
        if not path.startswith("/api/") and path != "/metrics" and re.sub(r"\{[^}]*\}", "{}", path) not in normal
    )
    assert not missing, f"UI routes not documented in docs/*.md: {missing}"


def test_filters_format_and_escape():
    from datetime import UTC, datetime

    from dockyard.ui.templating import number, status, when

    assert [duration(s) for s in (None, 0.25, 4.2, 42, 63, 3600 * 2 + 300, 86400 * 3)] == [
        "-",
        "250 ms",
        "4.2s",
        "42s",
        "1m 03s",
        "2h 05m",
        "3d 00h",
    ]
    stamp = when(datetime(2024, 5, 1, 2, 3, 4, tzinfo=UTC))
    assert (
        stamp == '<time datetime="2024-05-01T02:03:04Z" title="2024-05-01 02:03:04 UTC">2024-05-01 02:03:04 UTC</time>'
    )
    assert "never" in when(None)
    badge = status(RunStatus.ERROR)
    assert 'class="badge st-error"' in badge and "✗" in badge and "error" in badge
    evil = status('"><script>x</script>')
    assert "<script>" not in evil and "&lt;script&gt;" in evil
    assert number(1234567) == "1,234,567" and number(None) == "-"
