"""Dagster assets for the definitions ``dockyard export dagster`` writes (``pip install
"dockyard[dagster]"``): :func:`dockyard_assets` makes one multi-asset of the job's models
(``AssetSpec`` per model, with the dbt dependencies); materialising all of them triggers the
job, a subset (a selection, or a re-execution from failure) builds only those models
(``dbt build --select``). Each materialisation carries the run id, rows and seconds; failed
models fail the step with dbt's error. When the job runs dbt tests, each model's tests are
asset checks on its asset, with the tests' results. :class:`DockyardResource` holds the server.

(No ``from __future__ import annotations``: Dagster reads the ``context`` annotation.)"""

from typing import Any

import dagster as dg

from dockyard.client import Client
from dockyard.integrations import nodes as results


class DockyardResource(dg.ConfigurableResource):
    """The dockyard server: ``url`` (or ``DOCKYARD_URL``), ``token`` (or ``DOCKYARD_TOKEN``;
    give ``dg.EnvVar("DOCKYARD_TOKEN")``), the poll interval and an optional timeout."""

    url: str | None = None
    token: str | None = None
    poll: float = 5.0
    timeout: float | None = None

    def client(self) -> Client:
        return Client(self.url, self.token)


def _meta(spec: dg.AssetSpec, key: str) -> list[str]:
    value = spec.metadata.get(key)
    return list(getattr(value, "value", value) or [])


def check_specs(specs: list[dg.AssetSpec], checks: dict[str, dict[str, str]]) -> dict[dg.AssetCheckKey, str]:
    """The asset check of each dbt test (``checks``: asset -> test name -> unique id), keyed
    to its test's unique id."""
    out = {}
    for spec in specs:
        for test_name, test in sorted((checks.get(spec.key.to_user_string()) or {}).items()):
            out[dg.AssetCheckKey(spec.key, test_name)] = test
    return out


def check_result(key: dg.AssetCheckKey, test: str, run) -> dg.AssetCheckResult:
    """A dbt test's result as an asset check result: passed when it passed; a warning is a
    failed check of severity WARN (as dagster-dbt reports it); a test the run did not run
    fails with WARN and says so."""
    found = run.node(test) or {}
    status = str(found.get("status") or "not run")
    severity = dg.AssetCheckSeverity.WARN if status in ("warn", "not run") else dg.AssetCheckSeverity.ERROR
    metadata = {"dockyard/run_id": run.id, "dockyard/status": status, "dbt/unique_id": test}
    if found.get("message"):
        metadata["dockyard/message"] = str(found["message"])[:2000]
    if found.get("failures") is not None:
        metadata["dbt/failures"] = found["failures"]
    return dg.AssetCheckResult(
        asset_key=key.asset_key, check_name=key.name, passed=status == "pass", severity=severity, metadata=metadata
    )


def dockyard_assets(
    *,
    job: str | int,
    specs: list[dg.AssetSpec],
    checks: dict[str, dict[str, str]] | None = None,
    name: str = "dockyard_assets",
):
    """A multi-asset materialised by a run of ``job``; ``checks`` (asset -> dbt test name ->
    unique id) become asset checks with the tests' results."""
    tests = check_specs(specs, checks or {})
    check_defs = [
        dg.AssetCheckSpec(key.name, asset=key.asset_key, description=f"dbt test {t}") for key, t in tests.items()
    ]

    @dg.multi_asset(
        specs=specs, check_specs=check_defs, name=name, can_subset=True, required_resource_keys={"dockyard"}
    )
    def _assets(context: dg.AssetExecutionContext):
        dockyard: DockyardResource = context.resources.dockyard
        chosen = [s for s in specs if s.key in context.selected_asset_keys]
        overrides: dict[str, Any] = {"cause": f"Dagster run {context.run_id}"}
        if len(chosen) < len(specs):
            models = [m for s in chosen for m in _meta(s, "dockyard/select")]
            overrides["steps_override"] = ["dbt build --select " + " ".join(models)]
        with dockyard.client() as client:
            run = client.trigger(job, idempotency_key=f"dagster-{context.run_id}-{context.retry_number}", **overrides)
            context.log.info(f"dockyard run {run.id} queued: {client.url}/api/v1/runs/{run.id}")
            final = client.wait(run.id, poll=dockyard.poll, timeout=dockyard.timeout)
        failures = []
        for spec in chosen:
            outcome = results.decide([final], _meta(spec, "dockyard/nodes"))
            if outcome.failures:
                failures += outcome.failures
                continue
            found = list(outcome.results.values())
            metadata = {
                "dockyard/run_id": run.id,
                "dockyard/status": ", ".join(sorted({str(r.get("status")) for r in found})),
                "rows_affected": sum(r.get("rows_affected") or 0 for r in found),
                "execution_time_s": round(sum(r.get("execution_time_s") or 0.0 for r in found), 3),
            }
            yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)
            for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
                if key.asset_key == spec.key and key in tests:
                    yield check_result(key, tests[key], final)
        if failures:
            raise dg.Failure(description="; ".join(failures))

    return _assets
