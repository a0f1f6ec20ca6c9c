"""A small real HTTP server on 127.0.0.1 speaking the parts of GitHub's and GitLab's REST APIs
that dockyard reports through (dockyard.ci.github, dockyard.ci.gitlab).

GitHub at ``host.github_url`` (``/repos/{owner}/{repo}/...``): issue comments (list, paginated
with ``Link``; create; update), commit statuses, check runs (list by commit, create, update).
GitLab at ``host.gitlab_url`` (``/api/v4/projects/{id}/...``, ``{id}`` URL-encoded): MR notes
(list, paginated with ``X-Next-Page``; create; update), commit statuses.

State: ``comments[(repo, pr)]``, ``notes[(project, mr)]``, ``statuses[sha]`` (GitHub, in
order), ``gitlab_statuses[sha]``, ``check_runs`` (by id). Every request is recorded in
``requests`` (method, path, headers, json). Auth: ``Authorization: Bearer <token>`` (GitHub)
and ``PRIVATE-TOKEN`` (GitLab) must equal ``token``, else 401. ``fail_next(n, status,
retry_after)`` makes the next ``n`` requests fail (5xx/429 retries). ``page_size`` bounds a
list page (to exercise pagination).

    with FakeGitHost(token="t0ken") as host:
        GitHub(host.github_url, "o/r", "t0ken").upsert_comment(1, "hi", "<!-- m -->")
        assert host.comments[("o/r", 1)][0]["body"].endswith("hi")
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    query: dict[str, str] = field(default_factory=dict)


class FakeGitHost:
    def __init__(self, token: str = "fake-token", page_size: int = 100):
        self.token = token
        self.page_size = page_size
        self.comments: dict[tuple[str, int], list[dict]] = {}
        self.notes: dict[tuple[str, int], list[dict]] = {}
        self.statuses: dict[str, list[dict]] = {}
        self.gitlab_statuses: dict[str, list[dict]] = {}
        self.check_runs: dict[int, dict] = {}
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1001)
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                host._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.github_url = self.url
        self.gitlab_url = f"{self.url}/api/v4"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-git-host", daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeGitHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGitHost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, n: int = 1, status: int = 503, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures += [(status, retry_after)] * n

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    # -- dispatch -------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._send(h, 400, {"message": "Problems parsing JSON"})
        segs = [unquote(s) for s in parts.path.split("/")[1:]]
        with self._lock:
            self.requests.append(Recorded(h.command, parts.path, dict(h.headers.items()), body, query))
            failure = self._failures.pop(0) if self._failures else None
        if failure:
            status, retry_after = failure
            return self._send(h, status, {"message": "try again"}, {"Retry-After": retry_after} if retry_after else {})
        if segs[:2] == ["api", "v4"]:
            if h.headers.get("PRIVATE-TOKEN") != self.token:
                return self._send(h, 401, {"message": "401 Unauthorized"})
            return self._gitlab(h, segs[2:], query, body)
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(h, 401, {"message": "Bad credentials"})
        if h.headers.get("Accept") != "application/vnd.github+json" or not h.headers.get("X-GitHub-Api-Version"):
            return self._send(h, 415, {"message": "missing the GitHub media type or API version"})
        return self._github(h, segs, query, body)

    def _send(self, h, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _page(self, items: list, query: dict) -> tuple[list, int | None]:
        size = min(self.page_size, int(query.get("per_page", 30)))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * size : page * size]
        return chunk, (page + 1 if page * size < len(items) else None)

    def _github(self, h, s: list[str], q: dict, body: Any) -> None:
        if len(s) < 3 or s[0] != "repos":
            return self._send(h, 404, {"message": "Not Found"})
        repo, rest, m = f"{s[1]}/{s[2]}", s[3:], h.command
        with self._lock:
            if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
                comments = self.comments.setdefault((repo, int(rest[1])), [])
                if m == "GET":
                    chunk, nxt = self._page(comments, q)
                    link = {}
                    if nxt:
                        url = f"{self.url}/repos/{repo}/issues/{rest[1]}/comments?per_page={q.get('per_page', 30)}"
                        link = {"Link": f'<{url}&page={nxt}>; rel="next"'}
                    return self._send(h, 200, chunk, link)
                if m == "POST" and isinstance(body, dict) and isinstance(body.get("body"), str):
                    if len(body["body"]) > 65536:
                        return self._send(h, 422, {"message": "Validation Failed: body is too long"})
                    comment = {"id": next(self._ids), "body": body["body"], "user": {"login": "dockyard"}}
                    comments.append(comment)
                    return self._send(h, 201, comment)
            if len(rest) == 3 and rest[:2] == ["issues", "comments"] and m == "PATCH":
                for comment in itertools.chain.from_iterable(v for (r, _), v in self.comments.items() if r == repo):
                    if comment["id"] == int(rest[2]):
                        if len(body.get("body", "")) > 65536:
                            return self._send(h, 422, {"message": "Validation Failed: body is too long"})
                        comment["body"] = body["body"]
                        return self._send(h, 200, comment)
                return self._send(h, 404, {"message": "Not Found"})
            if len(rest) == 2 and rest[0] == "statuses" and m == "POST":
                if body.get("state") not in ("pending", "success", "failure", "error"):
                    return self._send(h, 422, {"message": "Validation Failed: state"})
                if len(body.get("description") or "") > 140:
                    return self._send(h, 422, {"message": "Validation Failed: description is too long"})
                self.statuses.setdefault(rest[1], []).append(body)
                return self._send(h, 201, {"id": next(self._ids), **body})
            if len(rest) == 3 and rest[0] == "commits" and rest[2] == "check-runs" and m == "GET":
                runs = [
                    c
                    for c in self.check_runs.values()
                    if c["head_sha"] == rest[1] and c["name"] == q.get("check_name", c["name"])
                ]
                return self._send(h, 200, {"total_count": len(runs), "check_runs": runs})
            if rest == ["check-runs"] and m == "POST":
                run = {"id": next(self._ids), **body}
                self.check_runs[run["id"]] = run
                return self._send(h, 201, run)
            if len(rest) == 2 and rest[0] == "check-runs" and m == "PATCH" and int(rest[1]) in self.check_runs:
                self.check_runs[int(rest[1])].update(body)
                return self._send(h, 200, self.check_runs[int(rest[1])])
        return self._send(h, 404, {"message": "Not Found"})

    def _gitlab(self, h, s: list[str], q: dict, body: Any) -> None:
        m = h.command
        if len(s) < 2 or s[0] != "projects":
            return self._send(h, 404, {"message": "404 Not Found"})
        project, rest = s[1], s[2:]
        with self._lock:
            if len(rest) >= 3 and rest[0] == "merge_requests" and rest[2] == "notes":
                notes = self.notes.setdefault((project, int(rest[1])), [])
                if len(rest) == 3 and m == "GET":
                    chunk, nxt = self._page(notes, q)
                    return self._send(h, 200, chunk, {"X-Next-Page": str(nxt)} if nxt else {"X-Next-Page": ""})
                if len(rest) == 3 and m == "POST" and isinstance((body or {}).get("body"), str):
                    note = {"id": next(self._ids), "body": body["body"], "system": False}
                    notes.append(note)
                    return self._send(h, 201, note)
                if len(rest) == 4 and m == "PUT":
                    for note in notes:
                        if note["id"] == int(rest[3]):
                            note["body"] = body["body"]
                            return self._send(h, 200, note)
            if len(rest) == 2 and rest[0] == "statuses" and m == "POST":
                if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
                    return self._send(h, 400, {"message": "state is invalid"})
                self.gitlab_statuses.setdefault(rest[1], []).append(body)
                return self._send(h, 201, {"id": next(self._ids), **body})
        return self._send(h, 404, {"message": "404 Not Found"})
