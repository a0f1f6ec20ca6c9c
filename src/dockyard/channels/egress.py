"""Where a notification may go: the SSRF rule for every outbound URL (docs/alerts.md, Channels).

A channel's URL (a Slack or Teams webhook, PagerDuty's events URL, a generic webhook) comes
from ``dockyard.yml`` or a secret, and a server that posts wherever it is told can be made to
reach its own network: the metadata service, an admin port on loopback, a database next door.
So, before every request (the rule of ``reliability-security.md`` S7):

* the scheme is ``http`` or ``https`` and the URL has a host;
* the host is resolved, and **every** address it resolves to must be public: no loopback,
  unspecified, link-local (``169.254.0.0/16``, ``fe80::/10``, so also the cloud metadata
  address ``169.254.169.254``), private (RFC 1918), shared/CGNAT (``100.64.0.0/10``), unique
  local (``fc00::/7``, so also ``fd00:ec2::254``), multicast, reserved or documentation
  ranges. IPv6 addresses that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
  ``64:ff9b::/96``, 6to4, Teredo) are judged by that IPv4 address too;
* ``localhost`` and ``*.localhost`` are refused without asking DNS (RFC 6761: loopback);
* unless the host name, or the address, matches ``alerts.allow_hosts``: host names (exact,
  case-insensitive, or ``*.example.com`` for its subdomains), IP addresses or CIDR networks
  (``127.0.0.0/8`` lets tests and a relay on loopback through).

The request then goes to the address that was checked (:func:`resolve` returns them; the HTTP
layer connects to it, with the original ``Host`` and TLS server name), so a name that
resolves differently a moment later (DNS rebinding) cannot slip past. Redirects are never
followed: a 3xx answer is a failed delivery.

:data:`resolver` is the name lookup, replaceable in tests (a name that resolves to a private
address without touching DNS).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.channels.errors import ChannelError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HINT = "add the host or its network to alerts.allow_hosts to allow it"


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: ``(host, port) -> [address, ...]``; tests may replace it (``monkeypatch.setattr``)
resolver: Callable[[str, int], list[str]] = _getaddrinfo


@dataclass(frozen=True)
class Target:
    """A checked URL: its scheme, host, port and the addresses a request may connect to."""

    scheme: str
    host: str  # as in the URL (lower case, no brackets)
    port: int
    addresses: tuple[str, ...]


def describe(url: str) -> str:
    """The host of ``url`` only, for messages: ``hooks.slack.com`` (never a path or query)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return host or "an invalid URL"


def _embedded_v4(addr: Address) -> list[ipaddress.IPv4Address]:
    if not isinstance(addr, ipaddress.IPv6Address):
        return []
    found = [a for a in (addr.ipv4_mapped, addr.sixtofour) if a is not None]
    if addr.teredo is not None:
        found.append(addr.teredo[1])
    if addr in _NAT64:
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return found


def is_public(addr: Address) -> bool:
    """True for an address a notification may reach without an allow-list entry."""
    # NAT64 (DNS64 on an IPv6-only host) is as public as the IPv4 address it carries
    nat64 = isinstance(addr, ipaddress.IPv6Address) and addr in _NAT64
    for candidate in _embedded_v4(addr) if nat64 else (addr, *_embedded_v4(addr)):
        if not candidate.is_global or candidate.is_multicast or candidate.is_unspecified:
            return False
        if candidate.is_loopback or candidate.is_link_local or candidate.is_private or candidate.is_reserved:
            return False
    return True


def _allow_list(allow_hosts: Sequence[str]) -> tuple[set[str], list[Network]]:
    names: set[str] = set()
    networks: list[Network] = []
    for entry in allow_hosts or ():
        entry = str(entry).strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def _name_allowed(host: str, names: set[str]) -> bool:
    host = host.lower().rstrip(".")
    if host in names:
        return True
    return any(n.startswith("*.") and host.endswith(n[1:]) for n in names)


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


def _parse(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise ChannelError("the URL is not valid", retryable=False) from None
    if scheme not in _DEFAULT_PORTS:
        shown = scheme if scheme.isascii() and scheme.isalnum() and len(scheme) < 20 else "?"
        raise ChannelError(f"the URL's scheme {shown!r} is refused: only http and https", retryable=False)
    if not host:
        raise ChannelError("the URL has no host", retryable=False)
    return scheme, host.lower(), port or _DEFAULT_PORTS[scheme]


def resolve(url: str, allow_hosts: Sequence[str] = ()) -> Target:
    """Check ``url`` against the SSRF rule (see the module doc) and return where to connect.

    Raises :class:`ChannelError`: not retryable for a refused URL, retryable when the name
    does not resolve (DNS may be back on the next attempt)."""
    scheme, host, port = _parse(url)
    names, networks = _allow_list(allow_hosts)
    name_ok = _name_allowed(host, names)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    elif not name_ok and _is_local_name(host):
        raise ChannelError(f"{host} is a loopback name: refused (SSRF rule); {_HINT}", retryable=False)
    else:
        try:
            found = list(resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise ChannelError(f"{host} does not resolve ({type(exc).__name__})", retryable=True) from None
        if not found:
            raise ChannelError(f"{host} does not resolve", retryable=True)
    for text in found:
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise ChannelError(f"{host} resolved to something that is no IP address", retryable=False) from None
        if name_ok or is_public(addr) or any(addr in net for net in networks if net.version == addr.version):
            continue
        raise ChannelError(f"{host} resolves to {addr}, a non-public address: refused (SSRF rule); {_HINT}", False)
    return Target(scheme=scheme, host=host, port=port, addresses=tuple(found))


def check_url(url: str, allow_hosts: Sequence[str] = ()) -> None:
    """Raise :class:`ChannelError` unless ``url`` may be posted to (see the module doc)."""
    resolve(url, allow_hosts)
