"""The token of an http(s) remote: sent to the server (basic authentication through git's
environment), never written into the cached clone, never in an error message. The remote is
a real HTTP server on 127.0.0.1 serving a bare repository (git's dumb HTTP protocol) only to
requests that carry the credentials."""

from __future__ import annotations

import base64
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockyard.app import App
from dockyard.repository import Repository, RepositoryError
from repository.conftest import Remote, git, server_folder

TOKEN = "ghp_s3cr3t_t0ken_value_123456"


class _Handler(SimpleHTTPRequestHandler):
    expected = ""
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        header = self.headers.get("Authorization", "")
        self.seen.append(header)
        if header != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_remote(remote: Remote):
    remote.commit({"a.txt": "over http\n"})
    git("update-server-info", cwd=remote.bare)  # the dumb HTTP protocol's index
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    handler = type("Handler", (_Handler,), {"expected": expected, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(remote.bare.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{remote.bare.name}", handler
    server.shutdown()
    server.server_close()


def _all_text(root: Path) -> str:
    return "\n".join(p.read_bytes().decode(errors="replace") for p in root.rglob("*") if p.is_file())


def test_the_token_authenticates_and_is_stored_nowhere(http_remote, tmp_path: Path):
    url, handler = http_remote
    repo = Repository(url, tmp_path / "git", "main", token=TOKEN)
    sha = repo.fetch()
    assert (repo.checkout(sha) / "a.txt").read_text() == "over http\n"
    assert handler.seen and set(handler.seen) == {handler.expected}  # every request authenticated
    text = _all_text(tmp_path / "git")
    assert TOKEN not in text and handler.expected.split()[1] not in text


def test_a_refused_token_gives_a_hint_and_never_the_token(http_remote, tmp_path: Path):
    url, _handler = http_remote
    with pytest.raises(RepositoryError) as err:
        Repository(url, tmp_path / "git", token="wrong-" + TOKEN).fetch()
    message = err.value.render()
    assert "repository.token" in message and "wrong-" not in message and TOKEN not in message
    # credentials written into the URL itself are scrubbed from messages too
    with pytest.raises(RepositoryError) as err:
        Repository(url.replace("http://", f"http://me:{TOKEN}@"), tmp_path / "g2").fetch()
    assert TOKEN not in err.value.render() and "***@" in err.value.render()


def test_the_token_comes_from_a_secret_reference(http_remote, tmp_path: Path, monkeypatch):
    url, _handler = http_remote
    monkeypatch.setenv("GIT_TOKEN_FOR_TEST", TOKEN)
    folder = server_folder(tmp_path, url)
    config = folder / "dockyard.yml"
    config.write_text(config.read_text().replace(f"url: {url}, ", f"url: '{url}', token: 'env:GIT_TOKEN_FOR_TEST', "))
    app = App.open(config)
    sha = app.repository.fetch()
    assert len(sha) == 40
    assert TOKEN not in str(app.repository.status()) and TOKEN not in config.read_text()
