"""Built-in consumers of the run events: what dockyard itself does when runs change.

Alerts, source freshness history, data monitors after their jobs, slowdown detection and
the warehouse history are event consumers like any sink of ``events.sinks``: each has its own
cursor in the outbox (named ``dockyard.<name>``), is delivered at least once and in order by
the scheduler's ``DispatchEvents`` duty (and by a foreground ``dockyard run`` before it
exits), and a failing consumer holds up only itself. Nothing here is called by the executor.

A consumer is a :class:`Consumer` (a :class:`dockyard.plugins.Sink` that is given the
:class:`dockyard.app.App`); :data:`BUILTIN` lists their factories. A factory returns None when
its feature is not configured (no consumer, no cursor). ``deliver`` must be idempotent on
``event.key`` and quick: slow work (sending a message, querying the warehouse) is queued in
the store and done by a duty of its own, so a hanging channel never delays another consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dockyard.app.consumer import PREFIX, Consumer  # noqa: F401  (the base, in a module of its own)
from dockyard.plugins import Sink

log = logging.getLogger("dockyard.app.consumers")

Factory = Callable[[Any], "Consumer | None"]


def _factories() -> list[Factory]:
    """The built-in consumers' factories, in delivery order (imported here, late: they are
    app services that import this module's base class)."""
    factories: list[Factory] = []
    from dockyard.app.run_alerts import factory as run_alerts_factory

    factories.append(run_alerts_factory)  # ALERTS: run events to alerts (docs/alerts.md)
    from dockyard.app.freshness import factory as freshness_factory

    factories.append(freshness_factory)
    from dockyard.app.metrics import factory as metrics_factory  # METRICS: the model duration histogram

    factories.append(metrics_factory)
    from dockyard.app.slowdown import factory as slowdown_factory  # METRICS

    factories.append(slowdown_factory)
    from dockyard.app.history import factory as history_factory  # METRICS

    factories.append(history_factory)
    from dockyard.app.monitor_checks import factory as monitors_factory  # MONITORS: checks after jobs

    factories.append(monitors_factory)
    from dockyard.app.openlineage import factory as openlineage_factory  # INTEGRATIONS: lineage events

    factories.append(openlineage_factory)
    return factories


def builtin_sinks(app) -> list[Sink]:
    """The built-in consumers configured for ``app`` (see :data:`_factories`)."""
    sinks: list[Sink] = []
    for factory in _factories():
        try:
            consumer = factory(app)
        except Exception:  # noqa: BLE001 - a broken consumer must not stop the others
            log.exception("built-in event consumer %s not started", getattr(factory, "__name__", factory))
            continue
        if consumer is not None:
            sinks.append(consumer)
    return sinks


def signature(app) -> tuple:
    """What the set of sinks depends on: when it changes (a config reload), the dispatcher
    restarts its threads."""
    config = app.config
    return (
        config.events,
        tuple(
            repr(getattr(config, key, None))
            for key in ("notifications", "alerts", "monitors", "metrics", "openlineage")
        ),
        tuple(repr(job.notifications) for job in config.jobs),
    )
