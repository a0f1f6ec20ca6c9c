"""The API command policy (dockyard.policy): what trigger and admin tokens may make dockyard
run through steps_override, API-created jobs' execute_steps, environment,
target_name_override and reruns; and one end-to-end proof on real dbt / DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML
from tests.api.conftest import DAILY, job_id, seed_run

from dockyard import cloud_jobs, policy
from dockyard.api.app import create_app
from dockyard.config.loader import load_config
from dockyard.dbt.command import parse_command
from dockyard.domain import RunStatus, StepStatus
from dockyard.errors import ForbiddenError

V1, V2 = "/api/v1", "/api/v2/accounts/1"

# (command, status for a trigger token and a plain admin, status for an unrestricted admin)
REFUSED = [
    ("dbt show --inline \"select read_text('/etc/passwd')\"", 403, 200),
    ("dbt compile --inline 'select 1'", 403, 200),
    ('dbt run-operation grant --args \'{"role": "x"}\'', 403, 200),
    ("dbt deps", 403, 200),
    ("dbt clean", 403, 200),
    ("dbt debug", 403, 200),
    ("dbt retry", 403, 200),
    ("dbt clone --state prod-artifacts", 403, 200),
    ("dbt run --vars '{\"a\": 1}'", 403, 200),
    ("dbt run --select m --state target/", 403, 200),
    ("dbt build --defer --state prod", 403, 200),
    ("dbt build --favor-state", 403, 200),
    ("dbt run --profile other", 403, 200),
    ("dbt run -s stg_customers", 403, 200),
    ("dbt run -m stg_customers", 403, 200),
    ("dbt run -sstg_customers", 403, 200),
    ("dbt build -x", 403, 200),
    ("dbt run --full-refresh=1", 403, 200),
    ("dbt run stg_customers", 403, 200),  # a positional argument
    ("dbt run --select a -- --vars x", 403, 200),
    ("dbt source freshness --output /tmp/freshness.json", 403, 200),
    ("dbt source freshness -o /tmp/freshness.json", 403, 200),
    ("dbt docs generate --static", 403, 200),
    ("dbt docs generate --output-path /tmp/docs", 403, 200),
    ("dbt ls --output json", 403, 200),
    ("dbt run --threads 1000", 403, 200),
    ("dbt run --indirect-selection everything", 403, 200),
    ("dbt run --selector", 403, 200),
    # managed flags and shell syntax: never plain dbt commands, for nobody (400)
    ("dbt run --project-dir /tmp", 400, 400),
    ("dbt run --profiles-dir /tmp", 400, 400),
    ("dbt run --target-path /tmp", 400, 400),
    ("dbt run --log-path /tmp", 400, 400),
    ("dbt run -t prod", 400, 400),
    ("dbt run; touch /tmp/x", 400, 400),
]
ALLOWED = [
    "dbt build",
    "dbt run",
    "dbt test",
    "dbt seed",
    "dbt snapshot",
    "dbt source freshness",
    "dbt compile",
    "dbt docs generate",
    "dbt parse",
    "dbt ls",
    "dbt list",
    "dbt build --select tag:daily+ path:models/staging --exclude stg_orders --fail-fast",
    "dbt run --select=stg_customers --full-refresh --empty",
    "dbt run --models stg_customers --model stg_orders --no-fail-fast --no-empty",
    "dbt test --indirect-selection cautious --select stg_customers",
    "dbt test --indirect-selection=buildable",
    "dbt source freshness --select source:shop",
    "dbt ls --resource-type model --resource-types seed --exclude-resource-type test --select stg_customers",
    "dbt build --exclude-resource-types unit_test",
    "dbt run --selector nightly",
    "dbt run --selector=nightly",
    "dbt run --threads 8",
    "dbt run --threads=1",
]


@pytest.fixture
def api(app, tokens):
    return create_app(app, trigger_rate=100_000)  # these tests trigger hundreds of times


# -- the policy function, on argvs ---------------------------------------------------------


@pytest.mark.parametrize("text", ALLOWED)
def test_policy_allows_what_dbt_cloud_clients_send(text):
    policy.check_command(parse_command(text))


@pytest.mark.parametrize(
    "text, offending",
    [
        ("dbt show --inline 'select 1'", "'show'"),
        ("dbt run-operation grant", "'run-operation'"),
        ("dbt run --vars '{}'", "'--vars'"),
        ("dbt run -s m", "'-s'"),
        ("dbt run m", "'m'"),
        ("dbt run --select m --state x", "'--state'"),
        ("dbt source freshness --output x", "'--output'"),
        ("dbt run --threads 0", "'--threads 0'"),
        ("dbt run --empty=no", "'--empty=no'"),
    ],
)
def test_policy_refuses_with_the_offending_token(text, offending):
    with pytest.raises(ForbiddenError) as info:
        policy.check_command(parse_command(text))
    assert info.value.status == 403 and offending in info.value.what
    assert "dockyard.yml" in info.value.hint or "--select" in info.value.hint


def test_policy_is_applied_to_the_argv_not_the_string():
    # the same argv in other spellings is judged the same; a quoted value is one token
    policy.check_command(parse_command("dbt run --select 'stg_customers stg_orders'"))
    with pytest.raises(ForbiddenError):
        policy.check_command(parse_command("dbt run --select stg_customers '--vars' x"))
    with pytest.raises(ForbiddenError):
        policy.check_command(parse_command("dbt 'run-operation' x"))
    policy.check_commands(["dbt run-operation x"], free=True)  # unrestricted: only parse_command
    policy.check_commands(["dbt run-operation x"], free=False, trusted=["dbt run-operation x"])


# -- steps_override through the routes -----------------------------------------------------


@pytest.fixture
def unrestricted(app, monkeypatch):
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)


def _post(client, url, headers, steps, form=False):
    if form:
        return client.post(url, data={"steps_override": steps}, headers=headers)
    return client.post(url, json={"steps_override": [steps]}, headers=headers)


def _check_refusal(response, code, text):
    assert response.status_code == code, (text, response.text)
    body = response.json()
    assert body["data"] is None and body["status"]["code"] == code
    if code == 403:
        message = body["status"]["user_message"]
        assert "not allowed from the API" in message and policy.SETTING in message, message


@pytest.mark.parametrize("scope", ["trigger", "admin"])
def test_refused_commands_are_403_and_queue_nothing(client, app, tokens, scope):
    j = job_id(app)
    for i, (text, code, _) in enumerate(REFUSED):
        for url in (f"{V2}/jobs/{j}/run/", f"{V1}/jobs/{j}/trigger"):
            _check_refusal(_post(client, url, tokens.header(scope), text, form=i % 2 == 1), code, text)
    assert app.store.runs.count_runs() == 0


def test_an_unrestricted_admin_may_run_any_plain_dbt_command(client, app, tokens, unrestricted):
    j = job_id(app)
    for i, (text, _, code) in enumerate(REFUSED):
        response = _post(client, f"{V2}/jobs/{j}/run/", tokens.header("admin"), text, form=i % 2 == 1)
        assert response.status_code == code, (text, response.text)
        if code == 200:
            run = app.store.runs.get_run(response.json()["data"]["id"])
            assert run.steps[0].command == text
    # the setting is for admins: a trigger token is still held to the policy
    _check_refusal(_post(client, f"{V2}/jobs/{j}/run/", tokens.header("trigger"), REFUSED[0][0]), 403, "")


def test_allowed_commands_queue_for_a_trigger_token(client, app, tokens):
    j = job_id(app)
    for text in ALLOWED:
        response = _post(client, f"{V2}/jobs/{j}/run/", tokens.header("trigger"), text)
        assert response.status_code == 200, (text, response.text)
        assert app.store.runs.get_run(response.json()["data"]["id"]).steps[0].command == text
    listed = client.post(
        f"{V1}/jobs/{j}/trigger",
        headers=tokens.header("trigger"),
        json={"steps_override": ["dbt seed", "dbt run --select stg_customers"]},
    )
    assert listed.status_code == 200, listed.text


def test_a_json_list_in_a_form_field_is_checked_too(client, app, tokens):
    url = f"{V2}/jobs/{job_id(app)}/run/"
    steps = '["dbt seed", "dbt run-operation grant"]'
    _check_refusal(client.post(url, data={"steps_override": steps}, headers=tokens.header("trigger")), 403, steps)
    assert app.store.runs.count_runs() == 0


def test_without_tokens_callers_count_as_admins(shop, monkeypatch):
    from tests.api.conftest import make_app

    app = make_app(shop)  # no token in the store: the API answers anonymous callers on loopback
    try:
        with TestClient(create_app(app), base_url="https://testserver") as anon:
            url = f"{V2}/jobs/{job_id(app)}/run/"
            _check_refusal(anon.post(url, json={"steps_override": ["dbt run-operation grant"]}), 403, "anon")
            monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
            assert anon.post(url, json={"steps_override": ["dbt run-operation grant"]}).status_code == 200
    finally:
        app.close()


# -- jobs created through the API ----------------------------------------------------------


def _env_id(app, name="dev"):
    return next(e["id"] for e in app.store.jobs.list_environments() if e["name"] == name)


def test_api_job_execute_steps_follow_the_policy(client, app, tokens, monkeypatch):
    admin = tokens.header("admin")
    body = {"name": "adhoc", "environment_id": _env_id(app), "execute_steps": ["dbt run-operation grant"]}
    refused = client.post(f"{V2}/jobs/", json=body, headers=admin)
    _check_refusal(refused, 403, "create")
    assert "execute_steps" in refused.json()["status"]["user_message"]
    assert {j.name for j in app.jobs()} == {DAILY, "CI"}  # nothing stored
    made = client.post(
        f"{V2}/jobs/", json=dict(body, execute_steps=["dbt build --select stg_customers"]), headers=admin
    )
    assert made.status_code == 201, made.text
    j = made.json()["data"]["id"]
    for steps in (["dbt show --inline 'select 1'"], ["dbt build -s x"], ["dbt build --vars '{}'"]):
        _check_refusal(client.post(f"{V2}/jobs/{j}/", json={"execute_steps": steps}, headers=admin), 403, steps)
    assert app.store.jobs.get_job(j).definition["job"]["commands"] == ["dbt build --select stg_customers"]
    assert policy.TRUSTED not in app.store.jobs.get_job(j).definition
    assert client.post(f"{V2}/jobs/{j}/run/", headers=tokens.header("trigger")).status_code == 200
    # an unrestricted admin may store such a job, and trigger tokens may then run it...
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    free = client.post(f"{V2}/jobs/", json=dict(body, name="grants"), headers=admin)
    assert free.status_code == 201, free.text
    g = free.json()["data"]["id"]
    assert app.store.jobs.get_job(g).definition[policy.TRUSTED] is True
    assert client.post(f"{V2}/jobs/{g}/run/", headers=tokens.header("trigger")).status_code == 200
    # ...while the setting stays on
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", False)
    _check_refusal(client.post(f"{V2}/jobs/{g}/run/", headers=tokens.header("trigger")), 403, "off")


def test_api_jobs_stored_before_the_policy_are_checked_at_trigger_time(client, app, tokens, unrestricted, monkeypatch):
    cloud = cloud_jobs.merge_payload(
        {"name": "legacy", "environment_id": _env_id(app), "execute_steps": ["dbt run-operation drop_everything"]}
    )
    name, env, _ = cloud_jobs.validate(cloud, {_env_id(app): "dev"})
    j = app.store.jobs.create_api_job(name, env, cloud_jobs.definition(cloud, env)).id  # no policy mark
    before = app.store.runs.count_runs()
    for scope in ("trigger", "admin"):
        monkeypatch.setattr(app.config.server, "api_admin_unrestricted", scope == "trigger")
        for url in (f"{V2}/jobs/{j}/run/", f"{V1}/jobs/{j}/trigger", f"{V2}/jobs/{j}/rerun/"):
            response = client.post(url, headers=tokens.header(scope))
            _check_refusal(response, 403, url)
            assert "run-operation" in response.json()["status"]["user_message"]
    assert app.store.runs.count_runs() == before
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    assert client.post(f"{V2}/jobs/{j}/run/", headers=tokens.header("admin")).status_code == 200
    # a steps_override within the policy replaces the job's commands: allowed
    ok = client.post(f"{V2}/jobs/{j}/run/", headers=tokens.header("trigger"), json={"steps_override": ["dbt run"]})
    assert ok.status_code == 200, ok.text


def test_dockyard_yml_jobs_run_their_own_commands(client, app, tokens, shop):
    old = (shop / "dockyard.yml").read_text()
    text = old.replace('commands: ["dbt seed", "dbt build', 'commands: ["dbt run-operation refresh_grants", "dbt build')
    assert text != old  # the CI job's commands line of the shop
    (shop / "dockyard.yml").write_text(text)
    app.reload(load_config(shop / "dockyard.yml"))
    ci = job_id(app, "CI")
    assert client.post(f"{V2}/jobs/{ci}/run/", headers=tokens.header("trigger")).status_code == 200
    own = client.post(
        f"{V2}/jobs/{ci}/run/",
        headers=tokens.header("trigger"),
        json={"steps_override": ["dbt run-operation refresh_grants"]},
    )
    assert own.status_code == 200, own.text  # the job's own command, nothing new
    other = client.post(
        f"{V2}/jobs/{ci}/run/",
        headers=tokens.header("trigger"),
        json={"steps_override": ["dbt run-operation other_macro"]},
    )
    _check_refusal(other, 403, "other")


# -- environment and target_name_override --------------------------------------------------


def test_environment_override_is_for_unrestricted_admins(client, app, tokens, monkeypatch):
    j = job_id(app)  # runs in prod
    for scope in ("trigger", "admin"):
        response = client.post(f"{V1}/jobs/{j}/trigger", json={"environment": "dev"}, headers=tokens.header(scope))
        _check_refusal(response, 403, scope)
        assert "'dev'" in response.json()["status"]["user_message"]
        form = client.post(f"{V1}/jobs/{j}/trigger", data={"environment": "dev"}, headers=tokens.header(scope))
        _check_refusal(form, 403, scope)
    assert app.store.runs.count_runs() == 0
    same = client.post(f"{V1}/jobs/{j}/trigger", json={"environment": "prod"}, headers=tokens.header("trigger"))
    assert same.status_code == 200 and same.json()["data"]["environment"] == "prod"
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    moved = client.post(f"{V1}/jobs/{j}/trigger", json={"environment": "dev"}, headers=tokens.header("admin"))
    assert moved.status_code == 200 and moved.json()["data"]["environment"] == "dev"


def _plan_argv(app, run_id, env="prod"):
    record, job = app.job(job_id(app))
    run = app.store.runs.get_run(run_id)
    plan = app.execution.plan(
        run.id, env, env, job, ["dbt run"], {}, app.state_dir / "runs" / str(run.id), job_id=record.id, run=run
    )
    argv = plan.steps[0].argv
    return argv[argv.index("--target") + 1], argv[argv.index("--profiles-dir") + 1]


def test_target_name_override_renames_the_environments_output(client, app, tokens, shop, monkeypatch):
    j = job_id(app)  # prod; "dev" is another output of the profile (another DuckDB file)
    body = {"target_name_override": "dev", "target_switch": True}  # the flag is not a trigger field
    run = client.post(f"{V2}/jobs/{j}/run/", json=body, headers=tokens.header("trigger")).json()["data"]
    assert run["trigger"]["target_name_override"] == "dev"
    assert policy_key_absent(app, run["id"])
    target, profiles = _plan_argv(app, run["id"])
    assert target == "dev" and "/profiles/prod/run-" in profiles  # target.name is dev...
    output = YAML(typ="safe").load(open(f"{profiles}/profiles.yml"))["shop"]["outputs"]["dev"]
    assert output["path"].endswith("/shop_prod.duckdb") and output["schema"] == "analytics"  # ...on prod's data
    # an unrestricted admin switches to that output
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    run = client.post(
        f"{V2}/jobs/{j}/run/", json={"target_name_override": "dev"}, headers=tokens.header("admin")
    ).json()["data"]
    target, profiles = _plan_argv(app, run["id"])
    assert target == "dev" and profiles == str(shop)


def policy_key_absent(app, run_id):
    return "target_switch" not in (app.store.runs.get_run(run_id).overrides or {})  # overrides.TARGET_SWITCH


def test_api_job_target_name_never_switches_outputs_unless_trusted(client, app, tokens, monkeypatch):
    body = {"name": "on prod", "environment_id": _env_id(app, "prod"), "settings": {"target_name": "dev"}}
    plain = client.post(f"{V2}/jobs/", json=body, headers=tokens.header("admin")).json()["data"]["id"]
    record, job = app.job(plain)
    assert app.job_target(record, job, "prod") is None  # prod's own output
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    trusted = client.post(f"{V2}/jobs/", json=dict(body, name="on dev"), headers=tokens.header("admin")).json()["data"][
        "id"
    ]
    record, job = app.job(trusted)
    assert app.job_target(record, job, "prod") == "dev"


# -- reruns ----------------------------------------------------------------------------------


def _failed_run(app, commands, environment="prod", overrides=None):
    record, _ = app.job(DAILY)
    store = app.store
    run_id = store.runs.create_run(record.id, record.name, environment, commands, trigger="api", overrides=overrides)
    now = datetime.now(UTC)
    store.runs.transition_run(run_id, RunStatus.STARTING, worker_id="test:1")
    store.runs.transition_run(run_id, RunStatus.RUNNING, started_at=now)
    store.runs.start_step(run_id, 1, now)
    store.runs.finish_step(run_id, 1, StepStatus.ERROR, 2, now)
    store.runs.skip_steps(run_id, 2)
    store.runs.transition_run(run_id, RunStatus.ERROR, reason="step_failed", finished_at=now)
    return run_id


def test_reruns_cannot_repeat_what_the_caller_could_not_ask_for(client, app, tokens, monkeypatch):
    trigger = tokens.header("trigger")
    own = seed_run(app, status=RunStatus.ERROR, failed_step=4)
    assert client.post(f"{V1}/runs/{own}/rerun", headers=trigger).status_code == 200  # the job's own commands
    cases = [
        _failed_run(app, ["dbt show --inline \"select read_text('/etc/passwd')\""]),
        _failed_run(app, ["dbt run"], environment="dev"),
        _failed_run(app, ["dbt run"], overrides={"target_name_override": "dev", "target_switch": True}),
    ]
    before = app.store.runs.count_runs()
    for run_id in cases:
        for body in ({}, {"from_failure": False}):
            _check_refusal(client.post(f"{V1}/runs/{run_id}/rerun", json=body, headers=trigger), 403, run_id)
    _check_refusal(client.post(f"{V2}/jobs/{job_id(app)}/rerun/", headers=trigger), 403, "R12")
    assert app.store.runs.count_runs() == before
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    assert client.post(f"{V1}/runs/{cases[0]}/rerun", headers=tokens.header("admin")).status_code == 200


# -- end to end: real dbt on DuckDB ----------------------------------------------------------


@pytest.mark.slow
def test_a_trigger_token_cannot_read_host_files_through_dbt_show(shop, tmp_path):
    """Before the policy, a trigger token ran ``dbt show --inline "select read_text(...)"`` and
    any read token read the file back from the logs route. The same request is now a 403 and
    creates no run; run by an unrestricted admin it does read the file (the vector is real)."""
    from tests.api.conftest import make_app

    from dockyard.server.worker import Worker

    secret = tmp_path / "host-secret.txt"
    secret.write_text("host-canary-7f3a")
    attack = {"steps_override": [f"dbt show --inline \"select content from read_text('{secret}')\""]}
    app = make_app(shop)
    try:
        _, trigger = app.store.tokens.create_token("airflow", "trigger")
        _, admin = app.store.tokens.create_token("ops", "admin")
        with TestClient(create_app(app), base_url="https://testserver") as c:
            url = f"{V2}/jobs/{job_id(app, 'CI')}/run/"
            refused = c.post(url, json=attack, headers={"Authorization": f"Token {trigger}"})
            assert refused.status_code == 403, refused.text
            assert app.store.runs.count_runs() == 0
            assert Worker(app, worker_id="test-worker").run_once() is None  # nothing queued
            app.config.server.api_admin_unrestricted = True
            run = c.post(url, json=attack, headers={"Authorization": f"Token {admin}"}).json()["data"]
            assert Worker(app, worker_id="test-worker").run_once() == run["id"]
            logs = c.get(f"{V1}/runs/{run['id']}/logs", headers={"Authorization": f"Token {admin}"}).text
            assert "host-canary-7f3a" in logs, logs[-2000:]
    finally:
        app.close()


@pytest.mark.slow
def test_a_foreground_run_of_an_api_job_uses_the_target_the_run_uses(client, app, tokens):
    """dbt Cloud clients send ``settings.target_name: default``: it only names target.name, so a
    foreground ``dockyard run`` of such a job must not refuse it as a missing profile output."""
    body = {
        "name": "cloud default",
        "environment_id": _env_id(app),
        "execute_steps": ["dbt parse"],
        "settings": {"target_name": "default", "threads": 2},
    }
    made = client.post(f"{V2}/jobs/", json=body, headers=tokens.header("admin"))
    assert made.status_code == 201, made.text
    run = app.run_job(made.json()["data"]["id"])
    assert run.status is RunStatus.SUCCESS, (run.status, run.reason)
