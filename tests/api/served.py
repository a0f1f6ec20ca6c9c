"""A real ``dockyard serve`` over TLS on a free loopback port, with a test CA (cryptography),
for the end-to-end and real-client tests; and venvs for the real clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

CLIENT_CACHE = Path(os.environ.get("DOCKYARD_CLIENT_CACHE", Path.home() / ".cache" / "dockyard-test-clients"))
SMOKE_JOB = """
  - name: "API smoke"
    environment: dev
    commands: ["dbt seed --select raw_customers", "dbt run --select stg_customers"]
"""


def make_ca_and_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str  # https://localhost:PORT
    host: str  # localhost:PORT (what https-only clients take)
    ca: Path
    token: str
    read_token: str
    shop: Path
    proc: subprocess.Popen
    smoke_job: int
    env: dict

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Token {token or self.token}"}


def copy_shop(dest: Path) -> Path:
    """A copy of examples/shop (its DuckDB files beside it) plus a fast job, "API smoke"."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    shop = dest / "shop"
    shutil.copytree(
        root / "examples" / "shop",
        shop,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (dest / "db").mkdir(exist_ok=True)
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + SMOKE_JOB)
    return shop


def start_server(shop: Path, tmp: Path, store_url: str | None = None, workers: int = 1) -> Served:
    from dockyard.app import App

    config = shop / "dockyard.yml"
    app = App.open(config, store_url)
    ids = app.sync()
    _, token = app.store.tokens.create_token("e2e-admin", "admin")
    _, read_token = app.store.tokens.create_token("e2e-read", "read")
    app.close()
    ca, cert, key = make_ca_and_cert(tmp)
    port = free_port()
    env = dict(os.environ)
    env.pop("DOCKYARD_STORE_URL", None)
    env["SHOP_DUCKDB_DIR"] = str(shop.parent / "db")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if store_url:
        env["DOCKYARD_STORE_URL"] = store_url
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - kept open for the server's life
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
            "--config",
            str(config),
        ],
        cwd=shop,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    served = Served(
        f"https://localhost:{port}", f"localhost:{port}", ca, token, read_token, shop, proc, ids["API smoke"], env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("dockyard serve exited: " + (tmp / "serve.log").read_text()[-3000:])
        try:
            if requests.get(f"{served.url}/api/v1/health", verify=str(ca), timeout=2).status_code == 200:
                return served
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_server(served)
    raise AssertionError("dockyard serve did not answer in 60 s: " + (tmp / "serve.log").read_text()[-3000:])


def stop_server(served: Served) -> None:
    served.proc.terminate()
    try:
        served.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()


def client_python(name: str, packages: list[str], timeout: float = 480) -> Path:
    """A venv with ``packages`` (cached under ~/.cache/dockyard-test-clients), or a skip with
    the reason when it cannot be installed within ``timeout`` seconds."""
    key = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:10]
    folder = CLIENT_CACHE / f"{name}-{key}"
    python = folder / "bin" / "python"
    if (folder / ".ok").exists() and python.exists():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(folder)], check=True, capture_output=True, timeout=120)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *packages],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{name}: pip install {' '.join(packages)} took more than {timeout:.0f} s")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"{name}: cannot create a venv: {exc.stderr[-500:]!r}")
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr + proc.stdout).splitlines() if not x.startswith("WARNING: Location")]
        pytest.skip(f"{name}: pip install {' '.join(packages)} failed: {' | '.join(lines[-6:])}")
    (folder / ".ok").write_text(" ".join(packages))
    return python


def run_client(
    python: Path, script: str, served: Served, extra_env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "VIRTUAL_ENV"))}
    env.update(
        {
            "REQUESTS_CA_BUNDLE": str(served.ca),
            "SSL_CERT_FILE": str(served.ca),
            "DOCKYARD_URL": served.url,
            "DOCKYARD_HOST": served.host,
            "DOCKYARD_TOKEN": served.token,
            "DOCKYARD_JOB": str(served.smoke_job),
        }
    )
    env.update(extra_env or {})
    return subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
