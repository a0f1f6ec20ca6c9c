"""Issue 7 items 7, 8 and 10 on the API: bodies nested too deeply, numbers that are not JSON,
NUL bytes and lone surrogates anywhere in a request, and control characters in displayed
names are each a 400 in the one error shape, the same on SQLite and PostgreSQL; routes are
enumerated from the app so none is missed."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import job_id, make_app, seed_run

from dockyard.api.app import SIGNED_PATHS, api_routes, create_app
from dockyard.domain import NodeResult
from dockyard.errors import NotFoundError, StoreError, ValueRefusedError
from dockyard.payload import MAX_DEPTH

V2 = "/api/v2/accounts/1"
JSON = {"Content-Type": "application/json"}


def _paths(api, app, method: str) -> list[tuple[str, object]]:
    job, run = job_id(app), seed_run(app)
    values = {
        "account_id": 1,
        "job_id": job,
        "run_id": run,
        "project_id": 1,
        "environment_id": 1,
        "path:path": "step-1/run_results.json",
    }
    out = []
    for path, methods, route in api_routes(api):
        if method in methods:
            for name, value in values.items():
                path = path.replace("{" + name + "}", str(value))
            out.append((path, route))
    return out


def _is_error(answer, code: int = 400) -> str:
    assert answer.status_code == code, (answer.request.method, answer.request.url, answer.status_code, answer.text)
    body = answer.json()
    assert body["data"] is None and body["status"]["is_success"] is False and body["status"]["code"] == code
    return body["status"]["user_message"]


def _nested(depth: int) -> str:
    return '{"cause": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def check_deep_bodies(client, api, app) -> None:
    for path, route in _paths(api, app, "POST"):
        # the webhook routes check the signature before they read the body: unsigned, a body is
        # never parsed (401, or 404 with no secret set); signed deep bodies are tests/webhooks'
        takes_body = "requestBody" in (route.openapi_extra or {}) and path not in SIGNED_PATHS
        for depth in (1000, 5000, MAX_DEPTH + 1):
            answer = client.post(path, content=_nested(depth), headers=JSON)
            assert answer.status_code != 500, (path, depth, answer.text)
            if takes_body:
                assert "nested too deeply" in _is_error(answer), path
        form = client.post(
            path,
            content="steps_override=" + "[" * 2000 + "]" * 2000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code != 500, (path, form.text)
        if path in SIGNED_PATHS:
            assert answer.status_code in (401, 404) and form.status_code in (401, 404), (path, answer.text)
        if path.endswith(("/trigger", "/run")):  # the trigger routes take form bodies too
            assert "nested too deeply" in _is_error(form), path
    # the bound itself: MAX_DEPTH levels are fine
    fine = {
        "name": "deep but fine",
        "environment_id": app.store.jobs.list_environments()[0]["id"],
        "description": "",
        "custom": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)),
    }
    assert client.post(f"{V2}/jobs/", json=fine).status_code == 201


def _post(client, path: str, body: dict):
    """POST ``body`` as JSON text the way any client writes it: ``json.dumps`` escapes NUL as
    ``\\u0000`` and a lone surrogate as ``\\ud800``, and writes NaN/Infinity bare."""
    return client.post(path, content=json.dumps(body), headers=JSON)


def check_numbers(client, app) -> None:
    env, job = app.store.jobs.list_environments()[0]["id"], job_id(app)
    base = {"name": "n", "environment_id": env}
    for extra in (
        {"dbt_version": float("nan")},
        {"settings": {"threads": float("inf")}},
        {"description": float("-inf")},
    ):
        assert "number" in _is_error(_post(client, f"{V2}/jobs/", {**base, **extra})), extra
    too_big = json.dumps(base)[:-1] + ', "custom": 1e400}'
    assert "number" in _is_error(client.post(f"{V2}/jobs/", content=too_big, headers=JSON))
    _is_error(_post(client, f"{V2}/jobs/{job}/run/", {"threads_override": float("nan")}))
    _is_error(client.post(f"{V2}/jobs/{job}/run/", content='{"timeout_seconds_override": 1e999}', headers=JSON))
    huge = '{"threads_override": ' + "9" * 5000 + "}"
    _is_error(client.post(f"{V2}/jobs/{job}/run/", content=huge, headers=JSON))
    for query in (
        "limit=-5&offset=-1",
        "offset=99999999999999999999",
        "limit=NaN",
        "limit=1e400",
        "job_definition_id=-1",
        "id=99999999999999999999",
    ):
        answer = client.get(f"{V2}/runs/?{query}")
        assert answer.status_code in (200, 400), (query, answer.text)


UNSTORABLE = ["a\x00b", "\x00", "a\ud800b", "\udfff"]


def check_unstorable_bodies(client, app) -> None:
    job, env = job_id(app), app.store.jobs.list_environments()[0]["id"]
    runs, jobs = app.store.runs.count_runs(), len(app.store.jobs.job_rows(active_only=False))
    for value in UNSTORABLE:
        for field in ("cause", "git_branch", "git_sha", "schema_override", "target_name_override"):
            for path in (f"{V2}/jobs/{job}/run/", f"/api/v1/jobs/{job}/trigger"):
                assert field in _is_error(_post(client, path, {field: value})), (path, field, value)
        body = {"steps_override": [f"dbt run --select {value}"]}
        assert "steps_override" in _is_error(_post(client, f"{V2}/jobs/{job}/run/", body))
        assert "environment" in _is_error(_post(client, f"/api/v1/jobs/{job}/trigger", {"environment": value}))
        for extra in (
            {"name": value},
            {"description": value},
            {"dbt_version": value},
            {"schedule": {"cron": value}},
            {"settings": {value: 1}},
        ):
            field = next(iter(extra))
            body = {"name": "ok", "environment_id": env, **extra}
            assert field in _is_error(_post(client, f"{V2}/jobs/", body)), (extra, value)
    for raw in (b'{"cause": "a\xed\xa0\x80"}', '{"cause": "\\u0000"}'.encode("utf-16")):  # raw surrogate; UTF-16
        assert "cause" in _is_error(client.post(f"{V2}/jobs/{job}/run/", content=raw, headers=JSON)), raw
    form = client.post(
        f"{V2}/jobs/{job}/run/", content="cause=a%00b", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "cause" in _is_error(form)
    assert app.store.runs.count_runs() == runs and len(app.store.jobs.job_rows(active_only=False)) == jobs


FILTERS = [
    "status",
    "status__in",
    "job_definition_id",
    "job_definition_id__in",
    "environment_id",
    "order_by",
    "name__icontains",
    "search",
    "job",
    "environment",
    "trigger",
    "git_branch",
    "cause",
    "created_at__range",
    "include_related",
    "limit",
    "offset",
    "cursor",
    "project_id",
    "state",
]


def check_unstorable_queries(client, api, app) -> None:
    gets = _paths(api, app, "GET")
    every = [(p, name) for p in (f"{V2}/runs/", "/api/v1/runs", f"{V2}/jobs/") for name in FILTERS]
    for path, name in every + [(p, FILTERS[i % len(FILTERS)]) for i, (p, _r) in enumerate(gets)]:
        message = _is_error(client.get(path, params={name: "a\x00b"}))
        assert "NUL" in message and name in message, (path, name)
    for path, _route in gets[::3]:
        assert "NUL" in _is_error(client.get(path, params={"x\x00": "1"}))
    for method in ("POST", "DELETE"):
        for path, _route in _paths(api, app, method):
            assert "NUL" in _is_error(client.request(method, path, params={"cause": "\x00"})), path
    assert "longer than" in _is_error(client.get(f"{V2}/runs/", params={"search": "x" * 9000}))
    long_filter = client.get(f"{V2}/jobs/", params={"name__icontains": "x" * 5000})
    assert long_filter.status_code == 200 and long_filter.json()["data"] == []


def check_control_characters(client, app) -> None:
    env, job = app.store.jobs.list_environments()[0]["id"], job_id(app)
    jobs = len(app.store.jobs.job_rows(active_only=False))
    for bad in (
        "evil\x1b[2J",
        "tab\tname",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "bidi\u202eevil",
        "iso\u2066x",
        "bell\x07",
    ):
        message = _is_error(client.post(f"{V2}/jobs/", json={"name": bad, "environment_id": env}))
        assert "name must not contain control characters" in message, bad
        assert "control characters" in _is_error(client.post(f"{V2}/jobs/{job}/run/", json={"cause": bad}))
    assert len(app.store.jobs.job_rows(active_only=False)) == jobs
    made = client.post(f"{V2}/jobs/", json={"name": "Nightly [bold]run[/bold] – café", "environment_id": env})
    assert made.status_code == 201, made.text  # markup-like brackets and non-ASCII text are fine
    update = client.post(f"{V2}/jobs/{made.json()['data']['id']}/", json={"name": "x\x1b]0;pwned\x07"})
    assert "control characters" in _is_error(update)


def test_deep_bodies_are_400_on_every_body_route(client, api, app):
    check_deep_bodies(client, api, app)


def test_numbers_that_are_not_json_are_400(client, app):
    check_numbers(client, app)


def test_nul_and_lone_surrogates_in_bodies_are_400_with_the_field(client, app):
    check_unstorable_bodies(client, app)


def test_nul_in_any_query_parameter_is_400_on_every_route(client, api, app):
    check_unstorable_queries(client, api, app)


def test_control_characters_in_displayed_names_are_400(client, app):
    check_control_characters(client, app)


def test_a_value_the_store_cannot_hold_is_a_400_class_error(app):
    env = app.store.jobs.list_environments()[0]["name"]
    with pytest.raises(ValueRefusedError) as err:
        app.store.jobs.create_api_job("bad\ud800", env, {"source": "api", "job": {}, "cloud": {}})
    assert err.value.status == 400 and not isinstance(err.value, StoreError)


def test_times_out_of_range_are_400(client):
    for query in ({"created_after": "0001-01-01T00:00:00+14:00"}, {"finished_before": "9999-12-31T23:59:59-14:00"}):
        assert "out of range" in _is_error(client.get("/api/v1/runs", params=query)), query
    answer = client.get(f"{V2}/runs/", params={"created_at__range": '["0001-01-01T00:00:00+14:00", null]'})
    assert "out of range" in _is_error(answer)


def test_digits_that_are_not_ascii_are_not_numbers(client, app):
    """``"²".isdigit()`` is true but ``int("²")`` raises: such values are refused, not 500."""
    assert "cursor" in _is_error(client.get("/api/v1/runs", params={"cursor": "\u00b2"}))
    env = app.store.jobs.list_environments()[0]["id"]
    made = client.post(
        f"{V2}/jobs/", json={"name": "sup", "environment_id": env, "execute_steps": ["dbt run --threads \u00b2"]}
    )
    assert made.status_code in (400, 403), made.text
    ran = client.post(f"{V2}/jobs/{job_id(app)}/run/", json={"steps_override": ["dbt run --threads \u00b2"]})
    assert ran.status_code in (400, 403), ran.text
    with pytest.raises(NotFoundError):
        app.store.jobs.get_job("\u00b2")
    with pytest.raises(NotFoundError):
        app.store.tokens.revoke_token("\u00b2")


def check_dbt_text_is_stored(app) -> None:
    """What dbt reports (node messages, adapter responses) may hold NUL bytes or lone
    surrogates (a warehouse error quoting data): recorded with U+FFFD, never a failed write."""
    run = seed_run(app)
    app.store.runs.upsert_nodes(
        run,
        1,
        [
            NodeResult(
                unique_id="model.shop.nul\x00",
                name="n\ud800",
                status="error",
                message="bad \x00 value \udcff",
                adapter_response={"msg\x00": ["x\x00"]},
            )
        ],
    )
    node = next(n for n in app.store.runs.get_run(run).nodes if n.unique_id.startswith("model.shop.nul"))
    assert node.message == "bad \ufffd value \ufffd" and node.name == "n\ufffd"
    assert node.adapter_response == {"msg\ufffd": ["x\ufffd"]}


def test_dbt_text_no_store_can_hold_is_replaced(app):
    check_dbt_text_is_stored(app)


@pytest.fixture
def pg_app(shop, pg_database_factory):
    app = make_app(shop, pg_database_factory())
    yield app
    app.close()


@pytest.mark.postgres
def test_the_same_answers_on_postgresql(pg_app):
    api = create_app(pg_app)
    with TestClient(api, base_url="https://testserver") as client:
        check_unstorable_bodies(client, pg_app)
        check_unstorable_queries(client, api, pg_app)
        check_numbers(client, pg_app)  # (depth and control characters do not depend on the store)
        assert client.get("/api/v1/health").status_code == 200
    env = pg_app.store.jobs.list_environments()[0]["name"]
    for name in ("bad\x00", "bad\ud800", "x" * 300):  # below the API's checks: the store's own answer
        with pytest.raises(ValueRefusedError) as err:
            pg_app.store.jobs.create_api_job(name, env, {"source": "api", "job": {}, "cloud": {}})
        assert err.value.status == 400 and "unavailable" not in err.value.render()
    with pytest.raises(ValueRefusedError):
        pg_app.store.runs.count_runs(job="a\x00b")
    check_dbt_text_is_stored(pg_app)


def test_config_names_longer_than_the_store_columns_are_located_errors(shop):
    """Same class in dockyard.yml: a value PostgreSQL's columns cannot hold is a config error
    at its key, not a store error on every command."""
    from dockyard.config.loader import load_config
    from dockyard.errors import ConfigErrors

    config = shop / "dockyard.yml"
    text = config.read_text()
    for old, new, key in (
        ("  staging:\n", f"  {'s' * 201}:\n", "key environments"),
        ("target: staging", f"target: {'t' * 201}", "key environments.staging.target"),
    ):
        config.write_text(text.replace(old, new, 1))
        with pytest.raises(ConfigErrors) as err:
            load_config(config)
        assert key in err.value.render() and "200" in err.value.render(), err.value.render()
