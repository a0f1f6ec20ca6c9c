"""A Python client for dockyard's native API (``/api/v1``), sync and async, on httpx::

    from dockyard.client import Client

    with Client("https://dockyard:8580", token) as dy:
        run = dy.trigger("Daily Production Run", threads_override=8)
        final = dy.wait(run.id)
        print(final.status, [n["unique_id"] for n in final.nodes if n["status"] == "error"])

Only httpx is needed (no dbt, no server code): orchestrators import it.
"""

from dockyard.client.asynchronous import AsyncClient
from dockyard.client.common import FINAL, ClientError, Event, Run
from dockyard.client.sync import Client

__all__ = ["FINAL", "AsyncClient", "Client", "ClientError", "Event", "Run"]
