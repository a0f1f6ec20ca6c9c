"""Goal S4: a traversal corpus (≥ 200 payloads) against every file-serving route, enumerated
from the app's routes: nothing outside its root is ever opened or served. Requests are sent as
raw ASGI messages (an HTTP client would normalise ``..`` away before sending)."""

from __future__ import annotations

import ast
import asyncio
import itertools
import os
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from tests.api.conftest import job_id, seed_run

import dockyard.files
from dockyard.api.app import api_routes

ROOT = Path(__file__).resolve().parents[2]
UPS = [
    "../",
    "..\\",
    "%2e%2e%2f",
    "%2e%2e/",
    "..%2f",
    "%252e%252e%252f",
    "..%252f",
    "%c0%ae%c0%ae/",
    "．．/",
    "%ef%bc%8e%ef%bc%8e/",
    "....//",
    "..;/",
    ".%2e/",
    "%2e./",
    "..%5c",
    "%2e%2e%5c",
    "..%c0%af",
    "..%00/",
]
TARGETS = ["etc/passwd", "secret.txt", "logs/canary.log", "dockyard.db", "outside.txt"]
SPECIAL = [
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "//etc/passwd",
    "C:\\Windows\\win.ini",
    "C:/Windows/win.ini",
    "c:%5cboot.ini",
    "\\\\server\\share\\x",
    "file:///etc/passwd",
    "~/.ssh/id_rsa",
    "~root/.profile",
    "run_results.json%00.txt",
    "run_results.json%00",
    "%00",
    "run_results.json#",
    "run_results.json%23",
    "..%23/secret.txt",
    "x/../../secret.txt",
    "step-1/../../secret.txt",
    "step-1/../../../secret.txt",
    "step-1/..",
    "step-1/.",
    ".",
    "..",
    "...",
    "./secret.txt",
    "step-1/%2e%2e/%2e%2e/secret.txt",
    "step-1%2f..%2f..%2fsecret.txt",
    "%2e%2e",
    "%252e%252e",
    "%%32%65%%32%65/x",
    "step-1/manifest.json/../../../secret.txt",
    "..%2F..%2F..%2Fsecret.txt",
    "..%u2215secret.txt",
    "%e2%80%ae/x",
    "link-out",
    "step-1/link-out",
    "link-dir/secret.txt",
    "step-1/link-dir/secret.txt",
]


def corpus(sibling: str) -> list[str]:
    payloads = list(SPECIAL)
    for up, depth, target in itertools.product(UPS, (1, 2, 3, 6), TARGETS):
        payloads.append(up * depth + target)
    payloads += [
        f"../../{sibling}/artifacts/step-1/run_results.json",
        f"../../../runs/{sibling}/artifacts/step-1/run_results.json",
        f"step-1/../../../{sibling}/artifacts/step-1/run_results.json",
    ]
    return list(dict.fromkeys(payloads))


def asgi_get(api, raw: str, token: str, query: str = "") -> tuple[int, bytes]:
    """GET ``raw`` (the path as sent on the wire) the way uvicorn hands it to the app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": unquote(raw),
        "raw_path": raw.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query.encode(),
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 443),
        "headers": [(b"host", b"testserver"), (b"authorization", f"Token {token}".encode())],
    }
    sent: list[dict] = []

    async def run() -> None:
        done = asyncio.Event()
        first = [True]

        async def receive():
            if first[0]:
                first[0] = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await api(scope, receive, send)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def planted(app, tmp_path):
    """A finished run with artifacts, canaries everywhere outside the artifact root, symlinks out."""
    run_id = seed_run(app)
    canary = f"CANARY-{uuid.uuid4().hex}"
    run_dir = app.state_dir / "runs" / str(run_id)
    (run_dir / "secret.txt").write_text(canary)
    (run_dir / "logs" / "canary.log").write_text(canary)
    (app.state_dir / "secret.txt").write_text(canary)
    (app.state_dir / "outside.txt").write_text(canary)
    sibling = f"{run_id}0"  # runs/1 vs runs/10: the sibling-prefix case
    (app.state_dir / "runs" / sibling / "artifacts" / "step-1").mkdir(parents=True)
    (app.state_dir / "runs" / sibling / "artifacts" / "step-1" / "run_results.json").write_text(canary)
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "secret.txt").write_text(canary)
    for folder in (run_dir / "artifacts", run_dir / "artifacts" / "step-1"):
        os.symlink(outside / "secret.txt", folder / "link-out")
        os.symlink(outside, folder / "link-dir")
    return run_id, canary, sibling


def file_routes(api) -> list[str]:
    return [
        path
        for path, methods, route in api_routes(api)
        if (route.openapi_extra or {}).get("x-serves-files") and "GET" in methods
    ]


def test_traversal_corpus_never_leaves_the_root(api, app, tokens, planted, monkeypatch):
    run_id, canary, sibling = planted
    payloads = corpus(sibling)
    assert len(payloads) >= 200
    routes = file_routes(api)
    assert len(routes) >= 5, routes
    opened: list[Path] = []
    real_open = open

    def tracking_open(path, *args, **kwargs):
        opened.append(Path(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(dockyard.files, "open", tracking_open, raising=False)
    run_dir = (app.state_dir / "runs" / str(run_id)).resolve()
    ids = {"{account_id}": "1", "{run_id}": str(run_id), "{job_id}": str(job_id(app))}
    requests = 0
    for route in routes:
        prefix = route
        for key, value in ids.items():
            prefix = prefix.replace(key, value)
        for payload in payloads:
            if "{path:path}" in prefix:
                status, body = asgi_get(api, prefix.replace("{path:path}", payload), tokens.read)
            else:  # the logs route: the only user input is ?step=
                status, body = asgi_get(api, prefix, tokens.read, query=f"step={payload}")
            requests += 1
            assert status in (400, 404, 422), f"{route} {payload!r}: {status} {body[:200]!r}"
            assert canary.encode() not in body and b"root:x:0:0" not in body, (route, payload)
    assert requests >= 5 * 200
    allowed = [run_dir / "artifacts", run_dir / "logs"]
    outside = [p for p in opened if not any(p.resolve().is_relative_to(a) for a in allowed)]
    assert not outside, outside[:5]
    # and the legitimate files are served
    assert asgi_get(api, f"/api/v1/runs/{run_id}/artifacts/step-1/manifest.json", tokens.read)[0] == 200
    assert asgi_get(api, f"/api/v2/accounts/1/runs/{run_id}/artifacts/manifest.json", tokens.read)[0] == 200
    status, body = asgi_get(api, f"/api/v1/runs/{run_id}/logs", tokens.read, query="step=1")
    assert status == 200 and canary.encode() not in body


def test_resolver_unit_cases(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.json").write_text("{}")
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "x").write_text("no")
    assert dockyard.files.resolve(root, "a/f.json") == (root / "a" / "f.json").resolve()
    for bad in (
        "../root2/x",
        "a/../../root2/x",
        "/etc/passwd",
        "a\\f.json",
        "a/f.json\x00",
        "%2e%2e/root2/x",
        "%252e%252e%252froot2%252fx",
        "a//f.json",
        "a/./f.json",
        "a",
        "",
        "．．/root2/x",
        "C:/x",
        "a/f.json\u202e",
    ):
        with pytest.raises(dockyard.files.OutsideRoot):
            dockyard.files.resolve(root, bad)


def test_api_modules_read_files_only_through_the_resolver():
    """A lint: no module of dockyard.api opens, reads or serves a file any other way."""
    banned_calls = {
        "open",
        "read_text",
        "read_bytes",
        "FileResponse",
        "iterdir",
        "glob",
        "rglob",
        "os.open",
        "send_file",
        "StaticFiles",
        "listdir",
        "scandir",
    }
    offenders = []
    for path in sorted((ROOT / "src" / "dockyard" / "api").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    if func.value.id == "files":
                        continue  # dockyard.files: the resolver itself
                    if func.value.id == "os":
                        name = f"os.{func.attr}"
            elif isinstance(node, ast.Name):
                name = node.id if node.id in ("FileResponse", "StaticFiles") else None
            if name in banned_calls:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not offenders, offenders
