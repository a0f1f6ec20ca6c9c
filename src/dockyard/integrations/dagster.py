"""Dagster assets for the definitions ``dockyard export dagster`` writes (``pip install
"dockyard[dagster]"``): :func:`dockyard_assets` makes one multi-asset of the job's models
(``AssetSpec`` per model, with the dbt dependencies); materialising all of them triggers the
job, a subset (a selection, or a re-execution from failure) builds only those models
(``dbt build --select``). Each materialisation carries the run id, rows and seconds; failed
models fail the step with dbt's error. :class:`DockyardResource` holds the server.

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


def dockyard_assets(*, job: str | int, specs: list[dg.AssetSpec], name: str = "dockyard_assets"):
    """A multi-asset materialised by a run of ``job``."""

    @dg.multi_asset(specs=specs, name=name, can_subset=True, required_resource_keys={"dockyard"})
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
        if failures:
            raise dg.Failure(description="; ".join(failures))

    return _assets
