"""The REST client under the GitHub and GitLab reporters: retries, pagination, errors without the token.

A request that gets 5xx or 429 (or 403 with ``Retry-After``, GitHub's secondary rate limit),
or cannot connect, is retried at most :data:`RETRIES` times, waiting what ``Retry-After``
says (at most :data:`MAX_WAIT_S`) or else 0.5 s, 1 s, 2 s. Any other error status raises
:class:`ProviderError`: what failed (method, path, status, the provider's message), never the
token or a header.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from dockyard.errors import DockyardError

RETRIES = 3
MAX_WAIT_S = 30.0
TIMEOUT_S = 15.0
PAGES = 50  # at most this many pages of comments (100 each) are searched for the marker


class ProviderError(DockyardError):
    """GitHub or GitLab refused or failed a request (502: the upstream failed)."""

    status = 502


class Rest:
    """One provider's API at ``api_url`` with fixed auth headers (see the module doc)."""

    provider = "the git host"

    def __init__(self, api_url: str, headers: dict[str, str], *, client: httpx.Client | None = None, secret: str = ""):
        self.api_url = api_url.rstrip("/")
        self._headers = headers
        self._secret = secret
        self._client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
        self._owns = client is None
        self.sleep = time.sleep  # tests may make waits instant

    def close(self) -> None:
        if self._owns:
            self._client.close()

    def _clean(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def request(self, method: str, path_or_url: str, *, json: Any = None, params: dict | None = None) -> httpx.Response:
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.api_url + path_or_url
        shown = self._clean(httpx.URL(url).path)
        for attempt in range(RETRIES + 1):
            try:
                response = self._client.request(method, url, json=json, params=params, headers=self._headers)
            except httpx.HTTPError as exc:
                if attempt == RETRIES:
                    raise ProviderError(
                        f"{self.provider}: {method} {shown} failed: {type(exc).__name__}",
                        hint=f"check that {self.api_url} is reachable from here",
                    ) from None
                self.sleep(0.5 * 2**attempt)
                continue
            retry_after = response.headers.get("retry-after")
            transient = response.status_code >= 500 or response.status_code == 429
            if (transient or (response.status_code == 403 and retry_after)) and attempt < RETRIES:
                self.sleep(_wait(retry_after, attempt))
                continue
            if response.status_code >= 400:
                raise self._error(method, shown, response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, method: str, shown: str, response: httpx.Response) -> ProviderError:
        try:
            body = response.json()
            message = body.get("message") or body.get("error") or "" if isinstance(body, dict) else ""
        except ValueError:
            message = ""
        message = self._clean(str(message))[:300]
        hints = {
            401: "the token is missing, wrong or expired: check the token dockyard was given",
            403: "the token lacks a permission (GitHub: pull requests and statuses or checks: write; "
            "GitLab: the api scope, Developer role)",
            404: "check the repository/project name and that the token can see it",
        }
        return ProviderError(
            f"{self.provider}: {method} {shown} answered {response.status_code}" + (f" ({message})" if message else ""),
            hint=hints.get(response.status_code, "see the provider's status page, then retry"),
        )

    def pages(self, path: str, params: dict | None = None) -> Iterator[Any]:
        """Every item of a paginated list (``Link: rel="next"``, or GitLab's ``X-Next-Page``)."""
        url: str | None = path
        params = {"per_page": 100, **(params or {})}
        for _ in range(PAGES):
            if url is None:
                return
            response = self.request("GET", url, params=params)
            yield from response.json()
            nxt = response.links.get("next", {}).get("url")
            if nxt:
                url, params = nxt, None
            elif response.headers.get("x-next-page"):
                params = {**(params or {"per_page": 100}), "page": response.headers["x-next-page"]}
            else:
                url = None


def _wait(retry_after: str | None, attempt: int) -> float:
    if retry_after:
        try:
            return min(MAX_WAIT_S, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return 0.5 * 2**attempt
