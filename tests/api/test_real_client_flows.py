"""The orchestrators' own dbt Cloud integrations, run as the real libraries run them, against a
real ``dockyard serve`` (TLS, a test CA) on a copy of the shop:

- Airflow 3 (``dag.test()``): ``DbtCloudRunJobOperator`` by job name (project, environment,
  job), waiting and deferrable, ``reuse_existing_run`` (a run of the job in progress is
  reused), ``DbtCloudJobRunSensor`` (poke and deferrable), ``DbtCloudGetJobRunArtifactOperator``,
  and ``retry_from_failure``: the job's model fails, the test fixes it, the task's retry posts
  ``jobs/{id}/rerun/`` and the rerun (from the failed nodes only) succeeds;
- prefect-dbt: the ``run_dbt_cloud_job`` flow with ``targeted_retries``: the failed run's failed
  nodes are triggered again (``steps_override``) and the flow ends successful;
- dagster-dbt: ``DbtCloudWorkspace`` + ``@dbt_cloud_assets`` (one materialisation per model,
  dbt tests as asset checks) and ``build_dbt_cloud_polling_sensor`` evaluated after a
  ``dbt build`` job's run (not started by Dagster) finished.

The venvs are those of tests/api/test_real_clients.py (same package sets, one install serves
both), cached under ~/.cache/dockyard-test-clients; a library that cannot be installed is
skipped with the reason. ``DOCKYARD_SKIP_REAL_CLIENTS=1`` skips them all."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
import requests
from tests.api.served import client_python, copy_shop, run_client, start_server, stop_server

from dockyard.client import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DOCKYARD_SKIP_REAL_CLIENTS") == "1", reason="DOCKYARD_SKIP_REAL_CLIENTS=1"),
]
DBT = "dbt-core>=1.10,<1.12"  # as in test_real_clients.py: the same venvs
FLAKY = "Flaky build"
SENSED = "Sensed build"
JOBS = f"""
  - name: "{FLAKY}"
    environment: dev
    commands: ["dbt seed --select raw_customers",
               "dbt build --select stg_customers flaky_customers --indirect-selection cautious"]
  - name: "{SENSED}"
    environment: staging
    commands: ["dbt seed", "dbt build --select stg_customers --indirect-selection cautious"]
"""
BROKEN_SQL = "select * from no_such_relation_for_the_retry_test\n"
GOOD_SQL = "{{ config(materialized='table') }}\nselect * from {{ ref('stg_customers') }}\n"
FLAKY_YML = """version: 2
models:
  - name: flaky_customers
    columns:
      - name: customer_id
        data_tests: [not_null]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client-flows")
    shop = copy_shop(tmp)
    (shop / "models" / "flaky").mkdir()
    (shop / "models" / "flaky" / "flaky_customers.sql").write_text(GOOD_SQL)
    (shop / "models" / "flaky" / "_flaky.yml").write_text(FLAKY_YML)
    (shop / "dockyard.yml").write_text((shop / "dockyard.yml").read_text() + JOBS)
    server = start_server(shop, tmp)
    yield server
    stop_server(server)


def client(served) -> Client:
    return Client(served.url, served.token, verify=str(served.ca))


class Fixer(threading.Thread):
    """Breaks ``flaky_customers``; once a run of the flaky job after ``since`` failed, fixes it."""

    def __init__(self, served):
        super().__init__(daemon=True)
        self.served, self.model = served, served.shop / "models" / "flaky" / "flaky_customers.sql"
        self.model.write_text(BROKEN_SQL)
        with client(served) as dy:
            self.job = dy.job_id(FLAKY)
            self.since = max((r.id for r in dy.runs(limit=1)), default=0)
        self.failed_run: int | None = None
        self.stop = threading.Event()

    def run(self):
        with client(self.served) as dy:
            while not self.stop.is_set() and self.failed_run is None:
                for r in dy.runs(job_id=self.job, limit=5):
                    if r.id > self.since and r.status == "error":
                        self.model.write_text(GOOD_SQL)
                        self.failed_run = r.id
                self.stop.wait(0.3)

    def runs(self) -> list:
        """The flaky job's runs since the start, oldest first, with their steps and nodes."""
        with client(self.served) as dy:
            return sorted((dy.run(r.id) for r in dy.runs(job_id=self.job, limit=20) if r.id > self.since), key=by_id)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(timeout=5)
        self.model.write_text(GOOD_SQL)


def by_id(run):
    return run.id


def check(proc, *expected: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    for line in expected:
        assert line in proc.stdout, f"{line!r} not in:\n{proc.stdout[-3000:]}"


def lines(proc, prefix: str) -> list[list[str]]:
    return [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith(prefix + " ")]


def failed_nodes_only(retry) -> None:
    """The retry ran only the failed model and its test: no seed, no stg_customers."""
    ran = {n["unique_id"] for n in retry.nodes}
    assert "model.shop.flaky_customers" in ran and "test.shop.not_null_flaky_customers_customer_id" in {
        u.rsplit(".", 1)[0] for u in ran
    }, ran
    assert "seed.shop.raw_customers" not in ran, ran


# -- Airflow 3 ---------------------------------------------------------------------------------

AIRFLOW_DAG = """
import datetime as dt, json, os
from pathlib import Path
os.environ["AIRFLOW_CONN_DBT_CLOUD_DEFAULT"] = json.dumps({
    "conn_type": "dbt_cloud",
    "host": os.environ["DOCKYARD_HOST"], "login": "1", "password": os.environ["DOCKYARD_TOKEN"]
})
from airflow.providers.dbt.cloud.operators.dbt import DbtCloudGetJobRunArtifactOperator, DbtCloudRunJobOperator
from airflow.providers.dbt.cloud.sensors.dbt import DbtCloudJobRunSensor
from airflow.sdk import DAG, task

JOB, FLAKY = int(os.environ["DOCKYARD_JOB"]), int(os.environ["DOCKYARD_FLAKY_JOB"])
OUT = Path(os.environ["AIRFLOW_HOME"]) / "manifest.json"
WAIT = {"check_interval": 1, "timeout": 240}
SENSE = {"poke_interval": 1, "timeout": 240}

with DAG("dockyard_client_flows", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False,
         render_template_as_native_obj=True):
    started = DbtCloudRunJobOperator(task_id="started", job_id=JOB, wait_for_termination=False)
    reused = DbtCloudRunJobOperator(task_id="reused", job_id=JOB, reuse_existing_run=True, **WAIT)
    poked = DbtCloudJobRunSensor(task_id="poked", run_id="{{ ti.xcom_pull(task_ids='started') }}", **SENSE)
    by_name = DbtCloudRunJobOperator(task_id="by_name", project_name="shop", environment_name="dev",
                                     job_name="API smoke", **WAIT)
    artifact = DbtCloudGetJobRunArtifactOperator(task_id="artifact", run_id="{{ ti.xcom_pull(task_ids='by_name') }}",
                                                 path="manifest.json", output_file_name=str(OUT))
    deferred = DbtCloudRunJobOperator(task_id="deferred", project_name="shop", environment_name="dev",
                                      job_name="API smoke", deferrable=True, **WAIT)
    started_b = DbtCloudRunJobOperator(task_id="started_b", job_id=JOB, wait_for_termination=False)
    deferred_sensor = DbtCloudJobRunSensor(task_id="deferred_sensor", deferrable=True,
                                           run_id="{{ ti.xcom_pull(task_ids='started_b') }}", **SENSE)
    flaky = DbtCloudRunJobOperator(task_id="flaky", job_id=FLAKY, retry_from_failure=True, retries=1,
                                   retry_delay=dt.timedelta(seconds=2), **WAIT)

    @task
    def report(ti=None):
        for t in ("started", "reused", "by_name", "deferred", "started_b", "flaky"):
            print("XCOM", t, ti.xcom_pull(task_ids=t))
        print("MANIFEST", json.loads(OUT.read_text())["metadata"]["invocation_id"])

    (started >> reused >> poked >> by_name >> artifact >> deferred >> started_b >> deferred_sensor >> flaky
     >> report())
"""
AIRFLOW_RUN = """
import sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dr = bag.get_dag("dockyard_client_flows").test()
for ti in sorted(dr.get_task_instances(), key=lambda t: t.task_id):
    print("TI", ti.task_id, ti.state, ti.try_number)
print("DAGRUN", dr.state)
"""


@pytest.mark.timeout(900)  # a first install of Airflow takes minutes; the DAG itself ~40 s
def test_airflow_operators_sensor_artifact_reuse_and_retry_from_failure(served, tmp_path):
    python = client_python("airflow-dbt-cloud", ["apache-airflow-providers-dbt-cloud"], timeout=600)
    dags, home = tmp_path / "dags", tmp_path / "airflow"
    dags.mkdir()
    (dags / "dockyard_client_flows.py").write_text(AIRFLOW_DAG)
    with client(served) as dy:
        smoke_before = {r.id for r in dy.runs(job_id=served.smoke_job, limit=100)}
        flaky_job = dy.job_id(FLAKY)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "DOCKYARD_FLAKY_JOB": str(flaky_job),
    }
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        setup = subprocess.run(
            [str(python.with_name("airflow")), *command],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=300,
        )
        assert setup.returncode == 0, (setup.stdout + setup.stderr)[-3000:]
    started = time.monotonic()
    with Fixer(served) as fixer:
        proc = run_client(python, AIRFLOW_RUN.replace("sys.argv[1]", repr(str(dags))), served, env, timeout=400)
    elapsed = time.monotonic() - started
    (tmp_path / "airflow.log").write_text(proc.stdout + proc.stderr)
    check(proc, "DAGRUN success")
    states = {task: rest for task, *rest in lines(proc, "TI")}
    assert all(state == "success" for state, _ in states.values()), states
    assert states["flaky"] == ["success", "2"], states  # failed once, the retry succeeded
    xcom = {task: int(value) for task, value in lines(proc, "XCOM")}
    assert xcom["reused"] == xcom["started"]  # reuse_existing_run: the run in progress, no new one
    with client(served) as dy:
        smoke_new = sorted({r.id for r in dy.runs(job_id=served.smoke_job, limit=100)} - smoke_before)
    assert smoke_new == sorted(xcom[t] for t in ("started", "by_name", "deferred", "started_b")), smoke_new
    results = requests.get(  # the artifact of that run: its last dbt invocation's
        f"{served.url}/api/v2/accounts/1/runs/{xcom['by_name']}/artifacts/run_results.json",
        headers=served.headers(),
        verify=str(served.ca),
    ).json()
    assert lines(proc, "MANIFEST") == [[results["metadata"]["invocation_id"]]]
    out = proc.stdout + proc.stderr
    assert out.count("[DAG TEST] running trigger in line") >= 2, "deferrable operator and sensor both deferred"
    first, retry = fixer.runs()
    assert (first.id, first.status, retry.status) == (fixer.failed_run, "error", "success")
    assert retry.id == xcom["flaky"] and retry.raw["retry_of"] == first.id and retry.raw["trigger"] == "retry"
    assert retry.raw["cause"] == f"Rerun of run {first.id} from failure"  # POST jobs/{id}/rerun/
    failed_nodes_only(retry)
    print(f"airflow dag.test: {elapsed:.1f} s")


# -- prefect-dbt -------------------------------------------------------------------------------

PREFECT = """
import asyncio, os
from prefect_dbt.cloud import DbtCloudCredentials, DbtCloudJob
from prefect_dbt.cloud.jobs import run_dbt_cloud_job
creds = DbtCloudCredentials(api_key=os.environ["DOCKYARD_TOKEN"], account_id=1, domain=os.environ["DOCKYARD_HOST"])
job = DbtCloudJob(dbt_cloud_credentials=creds, job_id=int(os.environ["DOCKYARD_FLAKY_JOB"]), timeout_seconds=240,
                  interval_seconds=1)
state = asyncio.run(run_dbt_cloud_job(dbt_cloud_job=job, targeted_retries=3, return_state=True))
print("FLOW", state.type.value)
result = state.result(raise_on_failure=False)
print("RESULT", result["id"], result["status"], sorted(result["artifact_paths"])[:50])
"""


@pytest.mark.timeout(900)
def test_prefect_run_dbt_cloud_job_retries_only_the_failed_nodes(served, tmp_path):
    python = client_python("prefect-dbt", ["prefect-dbt", DBT])
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    started = time.monotonic()
    with Fixer(served) as fixer:
        env["DOCKYARD_FLAKY_JOB"] = str(fixer.job)
        proc = run_client(python, PREFECT, served, env, timeout=400)
    elapsed = time.monotonic() - started
    (tmp_path / "prefect.log").write_text(proc.stdout + proc.stderr)
    check(proc, "FLOW COMPLETED", "run_results.json")
    runs = fixer.runs()
    first, retries = runs[0], runs[1:]
    assert (first.id, first.status) == (fixer.failed_run, "error")
    assert retries and retries[-1].status == "success" and all(r.status == "error" for r in retries[:-1])
    assert lines(proc, "RESULT")[0][:2] == [str(retries[-1].id), "10"]
    # prefect-dbt rebuilt the failed step from run_steps and the step's run_results.json: the
    # seed step (a success) is not repeated, the build selects the failed nodes first
    (step,) = retries[0].raw["overrides"]["steps_override"]
    assert step.startswith("dbt build  --select flaky_customers not_null_flaky_customers_customer_id "), step
    assert "has 1 steps to retry" in proc.stdout + proc.stderr
    assert "seed.shop.raw_customers" not in {n["unique_id"] for n in retries[-1].nodes}
    print(f"prefect run_dbt_cloud_job: {elapsed:.1f} s")


# -- dagster-dbt -------------------------------------------------------------------------------

DAGSTER = """
import os
import dagster as dg
from dagster_dbt import build_dbt_cloud_polling_sensor, dbt_cloud_assets
from dagster_dbt.cloud_v2.resources import DbtCloudCredentials, DbtCloudWorkspace

TOKEN, URL = os.environ["DOCKYARD_TOKEN"], os.environ["DOCKYARD_URL"]
ws = DbtCloudWorkspace(
    credentials=DbtCloudCredentials(account_id=1, token=TOKEN, access_url=URL),
    project_id=1, environment_id=int(os.environ["DOCKYARD_ENV"]), request_max_retries=1, request_timeout=30)

@dbt_cloud_assets(workspace=ws, select="stg_customers stg_orders")
def staging(context: dg.AssetExecutionContext, dbt_cloud: DbtCloudWorkspace):
    yield from dbt_cloud.cli(args=["build"], context=context).wait()

sensor = build_dbt_cloud_polling_sensor(workspace=ws, minimum_interval_seconds=1)
defs = dg.Definitions(assets=[staging], sensors=[sensor], resources={"dbt_cloud": ws})
repo = defs.get_repository_def()
print("ASSETS", *sorted(k.to_user_string() for k in staging.keys))
print("CHECKS", len(staging.check_keys))
client = ws.get_client()
with dg.instance_for_test() as instance:
    # a run of a `dbt build` job in the workspace's environment, not Dagster's own ad hoc job
    run = client.trigger_job_run(job_id=int(os.environ["DOCKYARD_SENSED_JOB"]))
    print("SENSED_RUN", run["id"], client.poll_run(run["id"], poll_interval=1, poll_timeout=240)["status"])
    context = dg.build_sensor_context(instance=instance, repository_def=repo)
    for event in sensor(context).asset_events:
        print("SENSOR", type(event).__name__, event.asset_key.to_user_string(), event.metadata["unique_id"].value)
    again = sensor(dg.build_sensor_context(instance=instance, repository_def=repo, cursor=context.cursor))
    print("SENSOR_AGAIN", len(again.asset_events))
    result = dg.materialize([staging], resources={"dbt_cloud": ws}, instance=instance, raise_on_error=False)
    print("SUCCESS", result.success)
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        print("MAT", event.asset_key.to_user_string(), meta["unique_id"].value, "run_url" in meta)
    for key, name, passed in sorted({(e.asset_key.to_user_string(), e.check_name, e.passed)
                                     for e in result.get_asset_check_evaluations()}):
        print("CHECK", key, name, passed)
"""


@pytest.mark.timeout(900)
def test_dagster_workspace_assets_checks_and_polling_sensor(served, tmp_path):
    python = client_python("dagster-dbt", ["dagster-dbt", DBT, "python-dateutil"])
    with client(served) as dy:
        sensed = dy.job_id(SENSED)
    environments = requests.get(
        f"{served.url}/api/v3/accounts/1/projects/1/environments/", headers=served.headers(), verify=str(served.ca)
    ).json()["data"]
    staging = next(e["id"] for e in environments if e["name"] == "staging")  # no other test runs there
    env = {
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "DAGSTER_DBT_CLOUD_POLL_TIMEOUT": "600",  # dagster-dbt's default is 60 s
        "DOCKYARD_ENV": str(staging),
        "DOCKYARD_SENSED_JOB": str(sensed),
    }
    (tmp_path / "dagster").mkdir()
    started = time.monotonic()
    proc = run_client(python, DAGSTER, served, env, timeout=400)
    elapsed = time.monotonic() - started
    (tmp_path / "dagster.log").write_text(proc.stdout + proc.stderr)
    check(proc, "ASSETS stg_customers stg_orders", "SUCCESS True", "SENSOR_AGAIN 0")
    sensed_run = lines(proc, "SENSED_RUN")[0]
    assert sensed_run[1] == "10", sensed_run
    # the sensor reports the finished run's materialisation (dagster-dbt's sensor keeps only
    # AssetMaterialization events: it drops the tests' check evaluations itself)
    assert lines(proc, "SENSOR") == [["AssetMaterialization", "stg_customers", "model.shop.stg_customers"]]
    mats = {key: rest for key, *rest in lines(proc, "MAT")}
    assert mats == {
        "stg_customers": ["model.shop.stg_customers", "True"],
        "stg_orders": ["model.shop.stg_orders", "True"],
    }
    checks = {(key, name): passed for key, name, passed in lines(proc, "CHECK")}
    assert int(lines(proc, "CHECKS")[0][0]) == len(checks) >= 8, checks
    assert checks[("stg_customers", "unique_stg_customers_customer_id")] == "True"
    assert checks[("stg_orders", "relationships_stg_orders_customer_id__customer_id__ref_stg_customers_")] == "True"
    assert checks[("stg_customers", "warn_stg_customers_unknown_country_code")] == "False"  # warns by design
    with client(served) as dy:
        ran = dy.run(int(sensed_run[0]))
    assert ran.job_id == sensed and ran.succeeded
    print(f"dagster workspace + sensor: {elapsed:.1f} s")
