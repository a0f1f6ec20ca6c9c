"""The synchronous client of the native API (``/api/v1``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from dockyard.client import common
from dockyard.client.common import ClientError, Event, Run


class Client:
    """``Client(url, token)`` (or ``DOCKYARD_URL`` / ``DOCKYARD_TOKEN``). Requests that get
    429 or 503 are retried after their ``Retry-After``, connection errors with a backoff,
    ``retries`` times at most; POSTs that queue runs carry an ``Idempotency-Key``, so a
    retry never queues a second run. Errors are :class:`ClientError`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url, token = common.settings(url, token)
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.url,
            headers=common.headers(token),
            timeout=timeout,
            verify=common.tls(verify),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried as the class says; an answer >= 400 raises ClientError."""
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except common.RETRYABLE_ERRORS as exc:
                if attempt >= self.retries:
                    raise ClientError(
                        0, f"cannot reach {self.url}: {type(exc).__name__}", method=method, path=path
                    ) from None
                time.sleep(common.backoff(attempt))
                continue
            except httpx.HTTPError as exc:
                raise ClientError(0, f"{self.url}: {type(exc).__name__}", method=method, path=path) from None
            if response.status_code in common.RETRY_STATUSES and attempt < self.retries:
                time.sleep(common.retry_after(response) or common.backoff(attempt))
                continue
            if response.status_code >= 400:
                raise ClientError.from_response(response)
            return response
        raise AssertionError("unreachable")

    def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        return common.data(self.request(method, path, **kwargs))

    # -- jobs and runs ---------------------------------------------------------------------
    def jobs(self) -> list[dict]:
        return self._data("GET", "/api/v1/jobs")

    def job_id(self, job: int | str) -> int:
        """The id of a job given by id or by name."""
        return common.job_id([] if isinstance(job, int) or job.isdigit() else self.jobs(), job)

    def trigger(self, job: int | str, *, idempotency_key: str | None = None, **overrides: Any) -> Run:
        """Queue a run of ``job`` (id or name); ``overrides`` are the trigger fields
        (``cause``, ``steps_override``, ``threads_override``, ``schema_override``, ...)."""
        path = f"/api/v1/jobs/{self.job_id(job)}/trigger"
        body = common.trigger_body(overrides)
        return Run.of(self._data("POST", path, json=body, headers=common.idempotency(idempotency_key)))

    def run(self, run_id: int) -> Run:
        return Run.of(self._data("GET", f"/api/v1/runs/{int(run_id)}"))

    def runs(self, **filters: Any) -> list[Run]:
        """Runs, newest first (``job_id``, ``status``, ``environment``, ``limit``, ...)."""
        return [Run.of(r) for r in self._data("GET", "/api/v1/runs", params=filters)]

    def nodes(self, run_id: int) -> list[dict]:
        return self.run(run_id).nodes

    def wait(self, run_id: int, poll: float = 2.0, timeout: float | None = None) -> Run:
        """The run once it is final; ClientError (408) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run.final:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise ClientError(408, f"run {run_id} is still {run.status} after {timeout:g} s")
            time.sleep(poll)

    def stream(self, run_id: int, poll: float = 1.0) -> Iterator[Event]:
        """Status changes and new log lines until the run is final (the last event is the
        final status)."""
        status, seen = None, 0
        while True:
            run = self.run(run_id)
            text = self.request("GET", f"/api/v1/runs/{int(run_id)}/logs").text
            lines, seen = common.new_lines(text, seen)
            for line in lines:
                yield Event("log", line=line)
            if run.status != status:
                status = run.status
                yield Event("status", run=run)
            if run.final:
                return
            time.sleep(poll)

    def cancel(self, run_id: int) -> str:
        """``cancelled`` (it was queued) or ``requested`` (its worker stops it)."""
        return self._data("POST", f"/api/v1/runs/{int(run_id)}/cancel")["outcome"]

    def rerun(self, run_id: int, from_failure: bool = True, *, idempotency_key: str | None = None) -> Run:
        body = {"from_failure": from_failure}
        path = f"/api/v1/runs/{int(run_id)}/rerun"
        return Run.of(self._data("POST", path, json=body, headers=common.idempotency(idempotency_key)))

    def artifacts(self, run_id: int) -> list[dict]:
        return self._data("GET", f"/api/v1/runs/{int(run_id)}/artifacts")

    def artifact(self, run_id: int, path: str) -> bytes:
        return self.request("GET", f"/api/v1/runs/{int(run_id)}/artifacts/{path.lstrip('/')}").content

    def latest_manifest(self, environment: str) -> tuple[int, bytes] | None:
        """The last ``manifest.json`` of the newest successful run of ``environment`` that
        has one: ``(run id, bytes)``, or None."""
        for run in self.runs(environment=environment, status="success", limit=20):
            names = [a for a in self.artifacts(run.id) if a.get("name") == "manifest.json"]
            if names:
                last = max(names, key=lambda a: a.get("step_index") or 0)
                return run.id, self.artifact(run.id, last["path"])
        return None
