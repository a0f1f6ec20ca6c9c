"""The asynchronous client of the native API: :class:`Client`'s methods, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from dockyard.client import common
from dockyard.client.common import ClientError, Event, Run


class AsyncClient:
    """As :class:`dockyard.client.Client`, on ``httpx.AsyncClient``."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url, token = common.settings(url, token)
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=common.headers(token),
            timeout=timeout,
            verify=common.tls(verify),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except common.RETRYABLE_ERRORS as exc:
                if attempt >= self.retries:
                    raise ClientError(
                        0, f"cannot reach {self.url}: {type(exc).__name__}", method=method, path=path
                    ) from None
                await asyncio.sleep(common.backoff(attempt))
                continue
            except httpx.HTTPError as exc:
                raise ClientError(0, f"{self.url}: {type(exc).__name__}", method=method, path=path) from None
            if response.status_code in common.RETRY_STATUSES and attempt < self.retries:
                await asyncio.sleep(common.retry_after(response) or common.backoff(attempt))
                continue
            if response.status_code >= 400:
                raise ClientError.from_response(response)
            return response
        raise AssertionError("unreachable")

    async def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        return common.data(await self.request(method, path, **kwargs))

    async def jobs(self) -> list[dict]:
        return await self._data("GET", "/api/v1/jobs")

    async def job_id(self, job: int | str) -> int:
        return common.job_id([] if isinstance(job, int) or job.isdigit() else await self.jobs(), job)

    async def trigger(self, job: int | str, *, idempotency_key: str | None = None, **overrides: Any) -> Run:
        path = f"/api/v1/jobs/{await self.job_id(job)}/trigger"
        body = common.trigger_body(overrides)
        return Run.of(await self._data("POST", path, json=body, headers=common.idempotency(idempotency_key)))

    async def run(self, run_id: int) -> Run:
        return Run.of(await self._data("GET", f"/api/v1/runs/{int(run_id)}"))

    async def runs(self, **filters: Any) -> list[Run]:
        return [Run.of(r) for r in await self._data("GET", "/api/v1/runs", params=filters)]

    async def nodes(self, run_id: int) -> list[dict]:
        return (await self.run(run_id)).nodes

    async def wait(self, run_id: int, poll: float = 2.0, timeout: float | None = None) -> Run:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = await self.run(run_id)
            if run.final:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise ClientError(408, f"run {run_id} is still {run.status} after {timeout:g} s")
            await asyncio.sleep(poll)

    async def stream(self, run_id: int, poll: float = 1.0) -> AsyncIterator[Event]:
        status, seen = None, 0
        while True:
            run = await self.run(run_id)
            text = (await self.request("GET", f"/api/v1/runs/{int(run_id)}/logs")).text
            lines, seen = common.new_lines(text, seen)
            for line in lines:
                yield Event("log", line=line)
            if run.status != status:
                status = run.status
                yield Event("status", run=run)
            if run.final:
                return
            await asyncio.sleep(poll)

    async def cancel(self, run_id: int) -> str:
        return (await self._data("POST", f"/api/v1/runs/{int(run_id)}/cancel"))["outcome"]

    async def rerun(self, run_id: int, from_failure: bool = True, *, idempotency_key: str | None = None) -> Run:
        body = {"from_failure": from_failure}
        path = f"/api/v1/runs/{int(run_id)}/rerun"
        return Run.of(await self._data("POST", path, json=body, headers=common.idempotency(idempotency_key)))

    async def artifacts(self, run_id: int) -> list[dict]:
        return await self._data("GET", f"/api/v1/runs/{int(run_id)}/artifacts")

    async def artifact(self, run_id: int, path: str) -> bytes:
        return (await self.request("GET", f"/api/v1/runs/{int(run_id)}/artifacts/{path.lstrip('/')}")).content
