"""The SSRF rule of outbound notification URLs (reliability-security.md S7)."""

from __future__ import annotations

import ipaddress

import pytest
from tests.channels.conftest import LOOPBACK, run_alert

from dockyard.channels import ChannelError, egress, http, slack


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved without DNS: ``fake_dns[name] = [addresses]``; other names fail."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such name")
        return table[host]

    monkeypatch.setattr(egress, "resolver", resolve)
    return table


REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # CGNAT
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",  # reserved
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[::ffff:169.254.169.254]/hook",
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "http://localhost/hook",
    "http://LOCALHOST./hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(ChannelError) as caught:
        egress.check_url(url, [])
    assert caught.value.retryable is False
    assert "SSRF" in caught.value.message or "refused" in caught.value.message


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)"]
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ChannelError, match="scheme") as caught:
        egress.check_url(url, ["0.0.0.0/0", "::/0"])
    assert not caught.value.retryable


@pytest.mark.parametrize("url", ["http:///nohost", "https://", "http://[::1/x"])
def test_urls_without_a_host_are_refused(url: str) -> None:
    with pytest.raises(ChannelError) as caught:
        egress.check_url(url, [])
    assert not caught.value.retryable


def test_a_name_resolving_to_a_private_address_is_refused(fake_dns) -> None:
    fake_dns["hooks.internal.example"] = ["10.1.2.3"]
    with pytest.raises(ChannelError, match="non-public") as caught:
        egress.check_url("https://hooks.internal.example/x", [])
    assert not caught.value.retryable


def test_every_address_of_a_name_must_be_public(fake_dns) -> None:
    fake_dns["mixed.example"] = ["93.184.216.34", "127.0.0.1"]
    with pytest.raises(ChannelError, match="127.0.0.1"):
        egress.check_url("https://mixed.example/x", [])


def test_public_names_and_addresses_pass(fake_dns) -> None:
    fake_dns["hooks.slack.com"] = ["3.5.140.2", "2600:1f18:24e6:b900::1"]
    target = egress.resolve("https://hooks.slack.com/services/T/B/x", [])
    assert target.addresses == ("3.5.140.2", "2600:1f18:24e6:b900::1")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.slack.com", 443)
    egress.check_url("http://93.184.216.34:8080/x", [])


def test_a_name_that_does_not_resolve_is_retryable(fake_dns) -> None:
    with pytest.raises(ChannelError, match="does not resolve") as caught:
        egress.check_url("https://nowhere.example/x", [])
    assert caught.value.retryable


@pytest.mark.parametrize(
    "url, allow",
    [
        ("http://127.0.0.1:9/x", ["127.0.0.0/8"]),
        ("http://127.0.0.1:9/x", ["127.0.0.1"]),
        ("http://[::1]:9/x", ["::1/128"]),
        ("http://[::1]:9/x", ["[::1]"]),
        ("http://10.0.0.1/x", ["10.0.0.0/8"]),
        ("http://localhost:9/x", ["localhost"]),
        ("http://relay.corp.example/x", ["*.corp.example"]),
        ("http://relay.corp.example/x", ["10.20.0.0/16"]),
    ],
)
def test_allow_hosts_lets_hosts_and_networks_through(fake_dns, url: str, allow: list[str]) -> None:
    fake_dns["localhost"] = ["127.0.0.1", "::1"]
    fake_dns["relay.corp.example"] = ["10.20.1.1"]
    egress.check_url(url, allow)


def test_an_allow_list_entry_does_not_open_other_addresses(fake_dns) -> None:
    fake_dns["relay.corp.example"] = ["10.20.1.1"]
    with pytest.raises(ChannelError):
        egress.check_url("http://169.254.169.254/", ["127.0.0.0/8", "relay.corp.example"])
    with pytest.raises(ChannelError):
        egress.check_url("http://[::1]/", ["127.0.0.0/8"])  # the IPv4 network does not allow ::1
    with pytest.raises(ChannelError):
        egress.check_url("http://evilcorp.example.attacker/", ["*.corp.example"])


def test_embedded_ipv4_addresses_are_judged() -> None:
    assert egress.is_public(ipaddress.ip_address("93.184.216.34"))
    assert not egress.is_public(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not egress.is_public(ipaddress.ip_address("64:ff9b::7f00:1"))
    assert egress.is_public(ipaddress.ip_address("64:ff9b::5db8:d822"))  # NAT64 of a public address


def test_the_request_goes_to_the_checked_address(fake_dns, receiver) -> None:
    """DNS rebinding: the name is resolved once, checked, and connected to (Host kept)."""
    fake_dns["hooks.rebind.example"] = ["127.0.0.1"]
    calls = []
    original = egress.resolver

    def counting(host: str, port: int) -> list[str]:
        calls.append(host)
        return original(host, port)

    egress.resolver = counting
    try:
        answer = http.post(
            receiver.url("/x", host="hooks.rebind.example"),
            b"{}",
            what="webhook",
            headers={},
            timeout=5,
            allow_hosts=["hooks.rebind.example"],
        )
    finally:
        egress.resolver = original
    assert answer.status == 200 and calls == ["hooks.rebind.example"]
    assert receiver.requests[0].headers["host"] == f"hooks.rebind.example:{receiver.port}"


def test_the_receiver_on_loopback_is_refused_without_allow_hosts(receiver) -> None:
    with pytest.raises(ChannelError, match="SSRF"):
        slack.send(receiver.url("/services/T/B/secret"), run_alert(), timeout=5, allow_hosts=[])
    assert receiver.requests == []


def test_a_redirect_is_not_followed(receiver) -> None:
    receiver.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(ChannelError, match="redirect") as caught:
        slack.send(receiver.url("/services/T/B/x"), run_alert(), timeout=5, allow_hosts=LOOPBACK)
    assert not caught.value.retryable
    assert len(receiver.requests) == 1
