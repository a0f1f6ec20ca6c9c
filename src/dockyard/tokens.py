"""API tokens: format, checksum, digest and scopes.

A token is ``dky_`` + 43 random base62 characters (32 random bytes) + a 6-character base62
CRC32 of those 43 characters, 53 characters in all, e.g. ``dky_3kX...q0ZaB1``. The fixed
prefix lets secret scanners find leaked tokens; the checksum lets them (and dockyard) reject
a mistyped or made-up token offline. The store keeps only the token's SHA-256 digest and
its first 12 characters (for display); the token itself is printed once, at creation.

Scopes are ordered: ``read`` (every GET) < ``trigger`` (also trigger, cancel, rerun) <
``admin`` (everything, including creating, changing and deleting jobs).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "dky_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LEN = 43  # 62**43 > 2**256
CHECK_LEN = 6  # 62**6 > 2**32
TOKEN_RE = re.compile(r"\bdky_[0-9A-Za-z]{" + str(BODY_LEN + CHECK_LEN) + r"}\b")
SCOPES = ("read", "trigger", "admin")
DISPLAY_LEN = len(PREFIX) + 8


def _base62(number: int, width: int) -> str:
    out = []
    while number:
        number, digit = divmod(number, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out)).rjust(width, ALPHABET[0])


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECK_LEN)


def generate() -> str:
    """A new random token."""
    body = _base62(int.from_bytes(secrets.token_bytes(32), "big"), BODY_LEN)
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about the store)."""
    if not isinstance(token, str) or len(token) != len(PREFIX) + BODY_LEN + CHECK_LEN:
        return False
    if not token.startswith(PREFIX) or not TOKEN_RE.fullmatch(token):
        return False
    body, check = token[len(PREFIX) : -CHECK_LEN], token[-CHECK_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def digest(token: str) -> str:
    """The SHA-256 hex digest stored in place of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def display(token: str) -> str:
    """The part of a token that may be shown (``dky_`` + 8 characters)."""
    return token[:DISPLAY_LEN]


def allows(scope: str, needed: str) -> bool:
    """Whether a token of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def redact(text: str) -> str:
    """``text`` with every token replaced by its display prefix and ``***``."""
    return TOKEN_RE.sub(lambda m: display(m.group(0)) + "***", text)
