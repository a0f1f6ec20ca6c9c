"""The ``dockyard.openlineage`` consumer: each ended run's OpenLineage events, sent with
openlineage-python's client (docs/integrations.md#openlineage).

A consumer of the outbox like the others (its own cursor, after the run's final event): a run
never waits for it and never fails because of it. On a run's final event it reads the run's
artifacts, builds the events (:mod:`dockyard.app.lineage`) and emits them, one HTTP request
each with ``openlineage.timeout_seconds`` and ``openlineage.retries`` (connection errors,
5xx). The whole run is sent within 80 % of ``events.delivery_timeout_seconds``: an event that
might not fit in what is left is not started. When the endpoint is down (an event still fails
after its retries) the rest of the run's events are skipped with a warning, and a 4xx
rejects only that event; either way the cursor moves on (lineage is best effort: a run is not
sent twice because a collector was down, nor does one hold up the runs after it).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from dockyard.app.consumer import Consumer
from dockyard.errors import ConfigError
from dockyard.events import Event

log = logging.getLogger("dockyard.app.openlineage")
BUDGET_SHARE = 0.8


def client_for(config):
    """An ``OpenLineageClient``: an HTTP transport to ``openlineage.url`` when it is set,
    otherwise openlineage-python's own resolution (``OPENLINEAGE_URL``, ``openlineage.yml``,
    ``OPENLINEAGE__TRANSPORT__*``, else its console transport)."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

    from dockyard.secrets import read_reference

    retry = {
        "total": config.retries,
        "connect": config.retries,
        "read": config.retries,
        "backoff_factor": 0.2,
        "status_forcelist": [500, 502, 503, 504],
        "allowed_methods": ["POST"],
    }
    if config.url:
        auth = ApiKeyTokenProvider({"apiKey": read_reference(config.api_key)} if config.api_key else {})
        http = HttpConfig(
            url=config.url, endpoint=config.endpoint, timeout=config.timeout_seconds, auth=auth, retry=retry
        )
        return OpenLineageClient(transport=HttpTransport(http))
    return OpenLineageClient()


class OpenLineageConsumer(Consumer):
    def __init__(self, app):
        super().__init__(app, "openlineage")
        self.settings = app.config.openlineage
        self._client = None  # made on the first delivery (no I/O when sinks are built for a check)
        self.budget_s = BUDGET_SHARE * app.config.events.delivery_timeout_seconds

    @property
    def client(self):
        if self._client is None:
            self._client = client_for(self.settings)
        return self._client

    def _datasets(self, environment: str) -> str:
        """The warehouse namespace of the environment's target (``unknown`` when its
        profile cannot be read: the events still go out)."""
        from dockyard.app.lineage import dataset_namespace
        from dockyard.runner.sessions import render_output

        project = self.app.project
        try:
            env = self.app.config.environments[environment]
            output = project.output_in(project.profiles_dir(env), project.target_for(environment)) or {}
            rendered = render_output(output, {**os.environ, **(env.env or {})})
        except Exception as exc:  # noqa: BLE001 - a profile dbt itself reports on
            log.warning("openlineage: cannot read the target of environment %s: %s", environment, type(exc).__name__)
            return "unknown"
        return dataset_namespace(rendered, project.project_dir)

    def events(self, run_id: int) -> list[Any]:
        """The OpenLineage events of run ``run_id`` (typed openlineage-python objects)."""
        from dockyard.app.lineage import RunLineage, load_steps

        run = self.app.runs.summary(run_id, with_steps=False)
        steps = load_steps(self.app.runs.artifact_root(run), run.artifacts)
        return RunLineage(self.settings.namespace, self._datasets(run.environment)).events(run, steps)

    def deliver(self, event: Event) -> None:
        if not event.type.is_final:
            return
        started = time.monotonic()
        try:
            events = self.events(event.run_id)
        except Exception as exc:  # noqa: BLE001 - unreadable artifacts: logged, the cursor moves on
            log.warning("openlineage: run %s: no events (%s: %s)", event.run_id, type(exc).__name__, exc)
            return
        worst = self.settings.timeout_seconds * (self.settings.retries + 1) + 0.2 * self.settings.retries
        for done, ol_event in enumerate(events):
            if time.monotonic() - started + worst > self.budget_s:
                log.warning(
                    "openlineage: run %s: %d of %d events not sent within %.0f s (see events.delivery_timeout_seconds)",
                    event.run_id,
                    len(events) - done,
                    len(events),
                    self.budget_s,
                )
                return
            try:
                self.client.emit(ol_event)
            except Exception as exc:  # noqa: BLE001 - lineage never blocks the outbox
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status is not None and 400 <= status < 500:
                    log.warning("openlineage: run %s: an event was rejected (HTTP %s)", event.run_id, status)
                    continue
                log.warning(
                    "openlineage: run %s: endpoint unreachable after %d retries, %d of %d events skipped (%s)",
                    event.run_id,
                    self.settings.retries,
                    len(events) - done,
                    len(events),
                    type(exc).__name__,
                )
                return

    def close(self) -> None:
        if self._client is None:
            return
        try:
            self._client.close(timeout=1.0)
        except Exception:  # noqa: BLE001 - older clients have no close
            pass


def factory(app) -> OpenLineageConsumer | None:
    """The consumer when ``openlineage.enabled`` (a ConfigError when openlineage-python is
    missing: ``pip install "dockyard[openlineage]"``)."""
    if not app.config.openlineage.enabled:
        return None
    try:
        import openlineage.client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "openlineage.enabled needs openlineage-python", hint='pip install "dockyard[openlineage]"'
        ) from None
    return OpenLineageConsumer(app)
