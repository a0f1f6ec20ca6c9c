"""The generated files in the orchestrators' real libraries, against a real ``dockyard serve``
(TLS, a test CA) on a copy of the shop: ``dockyard export ... --server`` writes the file from
the server's last manifest, the orchestrator loads and runs it (Airflow: ``dag.test()``;
Prefect: the flow; Dagster: ``materialize``). ``fct_orders`` is broken first: its task fails
with dbt's error; the test fixes the model while the run goes on, and the task's retry (a
``dbt build --select fct_orders+``) succeeds, and so do its downstream tasks, from the retry's
results. Each library is installed by the test into a cached virtual environment
(~/.cache/dockyard-test-clients), skipped with the reason when it cannot be.
``DOCKYARD_SKIP_REAL_CLIENTS=1`` skips them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.api.served import client_python, copy_shop, start_server, stop_server

from dockyard.client import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DOCKYARD_SKIP_REAL_CLIENTS") == "1", reason="DOCKYARD_SKIP_REAL_CLIENTS=1"),
]
SRC = str(Path(__file__).resolve().parents[3] / "src")
ORCH_JOB = """
  - name: "Orch"
    environment: dev
    commands: ["dbt seed", "dbt run"]
  - name: "Orch build"
    environment: dev
    commands: ["dbt seed", "dbt build --exclude resource_type:seed"]
"""
BROKEN_SQL = "select * from no_such_table_for_the_retry_test\n"
AIRFLOW = """
import os, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag("dockyard_orch")
print("TASKS", sorted(dag.task_ids))
dr = dag.test()
for ti in sorted(dr.get_task_instances(), key=lambda t: t.task_id):
    print("TI", ti.task_id, ti.state, ti.try_number)
print("DAGRUN", dr.state)
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("orch")
    shop = copy_shop(tmp)
    (shop / "dockyard.yml").write_text((shop / "dockyard.yml").read_text() + ORCH_JOB)
    server = start_server(shop, tmp)
    try:
        with Client(server.url, server.token, verify=str(server.ca)) as dy:
            first = dy.wait(dy.trigger("Orch", cause="a first manifest").id, poll=0.5, timeout=300)
        assert first.succeeded, first.raw
        yield server
    finally:
        stop_server(server)


def export(served, target: str, dest: Path, job: str = "Orch") -> Path:
    env = {**served.env, "SSL_CERT_FILE": str(served.ca), "DOCKYARD_TOKEN": served.read_token}
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "export", target, job, "--server", served.url, "--out", str(dest)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return dest


class Fixer(threading.Thread):
    """Breaks ``fct_orders``; once a run after ``since`` recorded its error, puts it back."""

    def __init__(self, served):
        super().__init__(daemon=True)
        self.served, self.model = served, served.shop / "models" / "marts" / "fct_orders.sql"
        self.good = self.model.read_text()
        self.model.write_text(BROKEN_SQL)
        with Client(served.url, served.token, verify=str(served.ca)) as dy:
            self.since = max(r.id for r in dy.runs(limit=1))
        self.failed_run: int | None = None
        self.stop = threading.Event()

    def run(self):
        with Client(self.served.url, self.served.token, verify=str(self.served.ca)) as dy:
            while not self.stop.is_set() and self.failed_run is None:
                for r in dy.runs(limit=5):
                    node = dy.run(r.id).node("model.shop.fct_orders") if r.id > self.since else None
                    if node and node["status"] == "error":
                        self.model.write_text(self.good)
                        self.failed_run = r.id
                self.stop.wait(0.3)

    def __exit__(self, *exc):
        self.stop.set()
        self.model.write_text(self.good)

    def __enter__(self):
        self.start()
        return self


def orchestrate(python: Path, args: list[str], script: str, served, env: dict) -> subprocess.CompletedProcess:
    """``script`` in the orchestrator's venv, dockyard's client and integrations on its path."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "VIRTUAL_ENV"))}
    env = {**base, "PYTHONPATH": SRC, "SSL_CERT_FILE": str(served.ca), "DOCKYARD_TOKEN": served.token, **env}
    return subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, env=env, timeout=400)


def runs_after(served, since: int) -> list:
    with Client(served.url, served.token, verify=str(served.ca)) as dy:
        return [dy.run(r.id) for r in dy.runs(limit=20) if r.id > since]


@pytest.mark.parametrize("deferrable", [False, True], ids=["reschedule", "deferrable"])
def test_airflow_dag_per_model_tasks_fail_and_retry(served, tmp_path, deferrable):
    python = client_python("airflow-dbt-cloud", ["apache-airflow-providers-dbt-cloud"], timeout=600)
    dag = export(served, "airflow", tmp_path / "dags" / "dockyard_orch.py")
    text = dag.read_text()
    assert "retry_delay': timedelta(seconds=10)" in text
    dag.write_text(text.replace("timedelta(seconds=10)", "timedelta(seconds=1)"))
    home = tmp_path / "airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "PYTHONPATH": SRC,
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable).lower(),
    }
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        setup = subprocess.run(
            [str(python.with_name("airflow")), *command],
            capture_output=True,
            text=True,
            env={**os.environ, **env, "DOCKYARD_TOKEN": served.read_token},
            timeout=300,
        )
        assert setup.returncode == 0, setup.stderr[-3000:]
    started = time.monotonic()
    with Fixer(served) as fixer:
        proc = orchestrate(python, [str(dag.parent)], AIRFLOW, served, env)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    (tmp_path / "airflow.log").write_text(out)
    assert proc.returncode == 0, out[-6000:]
    states = {line.split()[1]: line.split()[2:] for line in proc.stdout.splitlines() if line.startswith("TI ")}
    assert states["trigger"] == ["success", "1"], out[-4000:]
    assert states["fct_orders"] == ["success", "2"], out[-6000:]
    for task in ("stg_customers", "stg_orders", "stg_order_items", "stg_products", "customer_ltv", "dim_customers"):
        assert states[task][0] == "success", (task, out[-4000:])
    assert "DAGRUN success" in proc.stdout
    assert fixer.failed_run is not None
    assert "model.shop.fct_orders error in run" in out  # the first try failed with dbt's error
    retries = [r for r in runs_after(served, fixer.since) if r.raw.get("cause", "").startswith("dockyard retry of run")]
    assert len(retries) == 1 and retries[0].succeeded
    assert retries[0].raw["cause"] == f"dockyard retry of run {fixer.failed_run}: fct_orders"
    assert {n["unique_id"] for n in retries[0].nodes} >= {"model.shop.fct_orders", "model.shop.dim_customers"}
    assert ("in the triggerer (DockyardNodeTrigger)" in out) == deferrable, out[-4000:]
    print(f"airflow dag.test ({'deferrable' if deferrable else 'reschedule'}): {elapsed:.1f} s")


PREFECT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("flows", sys.argv[1])
flows = importlib.util.module_from_spec(spec)
spec.loader.exec_module(flows)
state = flows.orch(poll=1.0, return_state=True)
print("FLOW", state.type.value)
for result in state.result():
    for node, found in result.items():
        print("NODE", node, found["status"], found["run_id"])
"""


def test_prefect_flow_per_model_tasks_fail_and_retry(served, tmp_path):
    python = client_python("prefect-dbt", ["prefect-dbt", "dbt-core>=1.10,<1.12"])
    flow = export(served, "prefect", tmp_path / "flows" / "dockyard_orch.py")
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    started = time.monotonic()
    with Fixer(served) as fixer:
        proc = orchestrate(python, [str(flow)], PREFECT, served, env)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    (tmp_path / "prefect.log").write_text(out)
    assert proc.returncode == 0, out[-6000:]
    assert "FLOW COMPLETED" in proc.stdout, out[-4000:]
    nodes = {line.split()[1]: line.split()[2:] for line in proc.stdout.splitlines() if line.startswith("NODE ")}
    assert len(nodes) == 7 and all(v[0] == "success" for v in nodes.values()), nodes
    retries = [r for r in runs_after(served, fixer.since) if r.raw.get("cause", "").startswith("dockyard retry of run")]
    assert len(retries) == 1 and retries[0].succeeded
    assert nodes["model.shop.fct_orders"][1] == nodes["model.shop.dim_customers"][1] == str(retries[0].id)
    assert nodes["model.shop.stg_orders"][1] == str(fixer.failed_run)
    assert "model.shop.fct_orders error in run" in out and "retry 2: dockyard run" in out
    print(f"prefect flow: {elapsed:.1f} s")


DAGSTER = """
import importlib.util, sys
import dagster as dg
spec = importlib.util.spec_from_file_location("defs", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
dg.Definitions.validate_loadable(mod.defs)
resources = {"dockyard": mod.DockyardResource(url=mod.SERVER, poll=1.0)}
selection = sys.argv[2].split(",") if len(sys.argv) > 2 else None
result = dg.materialize([mod.assets], resources=resources, selection=selection, raise_on_error=False)
print("SUCCESS", result.success)
for event in result.get_asset_materialization_events():
    meta = event.materialization.metadata
    print("MAT", event.asset_key.to_user_string(), meta["dockyard/run_id"].value, meta["dockyard/status"].value,
          meta["execution_time_s"].value)
for check in result.get_asset_check_evaluations():
    print("CHECK", check.asset_key.to_user_string(), check.check_name, check.passed, check.severity.value,
          check.metadata["dockyard/status"].value)
for event in result.all_events:
    if event.is_step_failure:
        print("FAILURE", event.step_failure_data.error.message.replace(chr(10), " "))
"""


def test_dagster_assets_per_model_fail_and_reexecute(served, tmp_path):
    python = client_python("dagster", ["dagster", "httpx"])
    defs = export(served, "dagster", tmp_path / "dockyard_orch.py", job="Orch build")
    env = {"DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    model = served.shop / "models" / "marts" / "fct_orders.sql"
    good = model.read_text()
    started = time.monotonic()
    try:
        model.write_text(BROKEN_SQL)
        first = orchestrate(python, [str(defs)], DAGSTER, served, env)
    finally:
        model.write_text(good)
    again = orchestrate(python, [str(defs), "fct_orders,customer_ltv,dim_customers"], DAGSTER, served, env)
    elapsed = time.monotonic() - started
    for proc in (first, again):
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    mats = {line.split()[1]: line.split()[2:] for line in first.stdout.splitlines() if line.startswith("MAT ")}
    assert "SUCCESS False" in first.stdout
    assert set(mats) == {"stg_customers", "stg_orders", "stg_order_items", "stg_products"}, first.stdout
    assert "model.shop.fct_orders error in run" in first.stdout
    assert "model.shop.dim_customers was not run" not in first.stdout  # dbt skipped it: a result
    # dbt tests are asset checks: the staging models' tests ran (a warn test is a failed check
    # of severity WARN, as in dagster-dbt); the failed model's tests were skipped, not reported
    checks = [line.split()[1:] for line in first.stdout.splitlines() if line.startswith("CHECK ")]
    assert ["stg_customers", "unique_stg_customers_customer_id", "True", "ERROR", "pass"] in checks, first.stdout
    assert ["stg_customers", "warn_stg_customers_unknown_country_code", "False", "WARN", "warn"] in checks
    assert not [c for c in checks if c[0] in ("fct_orders", "customer_ltv", "dim_customers")], checks
    mats = {line.split()[1]: line.split()[2:] for line in again.stdout.splitlines() if line.startswith("MAT ")}
    assert "SUCCESS True" in again.stdout and set(mats) == {"fct_orders", "customer_ltv", "dim_customers"}
    checks = [line.split()[1:] for line in again.stdout.splitlines() if line.startswith("CHECK ")]
    assert ["fct_orders", "unique_fct_orders_order_id", "True", "ERROR", "pass"] in checks, again.stdout
    assert {c[0] for c in checks} == {"fct_orders", "customer_ltv", "dim_customers"}
    with Client(served.url, served.token, verify=str(served.ca)) as dy:
        rerun = dy.run(int(mats["fct_orders"][0]))
    assert rerun.raw["overrides"]["steps_override"] == ["dbt build --select fct_orders customer_ltv dim_customers"]
    assert {n["unique_id"] for n in rerun.nodes if n["resource_type"] == "model"} == {
        "model.shop.fct_orders",
        "model.shop.customer_ltv",
        "model.shop.dim_customers",
    }
    print(f"dagster materialize twice: {elapsed:.1f} s")
