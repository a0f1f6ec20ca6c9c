"""Channel test fixtures: an HTTP receiver on loopback, a self-signed certificate, real SMTP
servers (aiosmtpd) with STARTTLS and AUTH, or TLS from the first byte, and sample alerts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.channels.receiver import Receiver

from dockyard.alert import Alert, AlertItem, AlertKind, Severity

LOOPBACK = ["127.0.0.0/8"]  # alerts.allow_hosts that lets the receiver through
SMTP_USER = "alerts@example.org"
SMTP_PASSWORD = "smtp-canary-pw-7f3a91"
TLS_NAME = "receiver.dockyard.test"  # the certificate's name (resolved to 127.0.0.1 by tests)


@dataclass
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for localhost, 127.0.0.1 and TLS_NAME."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.DNSName(TLS_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Cert(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@dataclass
class Mailbox:
    """What an aiosmtpd server received; ``reject`` makes DATA answer that line instead."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    reject: str | None = None

    async def handle_DATA(self, server, session, envelope):
        if self.reject:
            return self.reject
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password.decode() == SMTP_PASSWORD
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(mailbox: Mailbox, **kwargs) -> Iterator[SmtpServer]:
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def smtp_starttls(cert: Cert) -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH (PLAIN, LOGIN) required after TLS."""
    mailbox = Mailbox()
    yield from _serve(
        mailbox,
        tls_context=cert.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=mailbox.authenticate,
    )


@pytest.fixture(scope="session")
def smtp_tls(cert: Cert) -> Iterator[SmtpServer]:
    """TLS from the first byte (port-465 style), no AUTH."""
    yield from _serve(Mailbox(), ssl_context=cert.server_context())


@pytest.fixture(scope="session")
def smtp_plain() -> Iterator[SmtpServer]:
    """Plain SMTP without STARTTLS (to check that dockyard refuses to go on in the clear)."""
    yield from _serve(Mailbox())


@pytest.fixture(autouse=True)
def _fresh_mailboxes(request: pytest.FixtureRequest) -> None:
    for name in ("smtp_starttls", "smtp_tls", "smtp_plain"):
        if name in request.fixturenames:
            box = request.getfixturevalue(name).mailbox
            box.messages.clear()
            box.logins.clear()
            box.reject = None


def run_alert(**overrides) -> Alert:
    """A final failure of job nightly in prod with two failed nodes (of five)."""
    values = dict(
        kind=AlertKind.RUN,
        event="failed",
        subject="job:nightly@prod",
        key="run:42:failed",
        title="nightly failed in prod",
        severity=Severity.CRITICAL,
        text="2 nodes failed. Attempt 3 of 3.",
        facts=(("Job", "nightly"), ("Environment", "prod"), ("Trigger", "schedule"), ("Duration", "1m 02s")),
        items=(
            AlertItem(
                "orders",
                "error",
                'Database Error in model orders\n  column "amount" does not exist',
                "model.shop.orders",
            ),
            AlertItem("not_null_orders_id", "fail", "Got 3 results, configured to fail if != 0", "test.shop.x"),
        ),
        items_total=5,
        url="https://dockyard.example.com/runs/42",
        job="nightly",
        environment="prod",
        run_id=42,
        run={
            "run_id": 42,
            "job_id": 7,
            "job": "nightly",
            "environment": "prod",
            "trigger": "schedule",
            "cause": "Scheduled",
            "attempt": 3,
            "status": "error",
            "reason": "2 nodes failed",
            "started_at": "2026-12-01T02:00:00+00:00",
            "finished_at": "2026-12-01T02:01:02+00:00",
        },
    )
    values.update(overrides)
    return Alert(**values)
