"""A small real HTTP receiver on 127.0.0.1 for the channel tests (Slack, Teams, PagerDuty and
webhook endpoints all are "POST a body, answer a status").

Every request is recorded (method, path, headers, raw body). ``answer(status, body, headers)``
queues the answers of the next requests (default: 200 ``ok``); ``hang`` makes the handler
wait that many seconds before answering, ``trickle`` that many between the bytes of the
answer's body (both released by leaving the ``with``). With ``tls`` (an
``ssl.SSLContext``) it speaks HTTPS.

    with Receiver() as r:
        r.answer(500)
        ...post to r.url("/services/T/B/x")...
        assert r.requests[0].json["text"]
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, *, tls: ssl.SSLContext | None = None, ipv6: bool = False):
        self.requests: list[Recorded] = []
        self.hang = 0.0
        self.trickle = 0.0  # seconds between the bytes of the answer's body
        self._answers: list[tuple[int, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                receiver._handle(self)

            do_GET = do_PUT = do_POST

        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self._server = (server_class if ipv6 else ThreadingHTTPServer)(("::1" if ipv6 else "127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "/", host: str | None = None) -> str:
        host = host or ("[::1]" if self._server.address_family == socket.AF_INET6 else "127.0.0.1")
        return f"{self.scheme}://{host}:{self.port}{path}"

    def answer(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._answers.append((status, raw, headers or {}))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(Recorded(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body))
            status, raw, headers = self._answers.pop(0) if self._answers else (200, b"ok", {})
        if self.hang:
            self._release.wait(self.hang)
        h.send_response(status)
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        if not self.trickle:
            h.wfile.write(raw)
            return
        for i in range(len(raw)):
            if self._release.wait(self.trickle):
                return
            h.wfile.write(raw[i : i + 1])
            h.wfile.flush()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
