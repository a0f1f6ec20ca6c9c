"""``app.users``: the web UI's users (``dockyard users create``) and login sessions.

Passwords are hashed with argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`, its
default parameters); the store keeps the hash only. A session's cookie value is random (32
bytes), the store keeps its SHA-256; resolving a session checks that its user still exists
and is enabled, or that its token is not revoked, so deleting one ends its sessions at the
next request.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dockyard import tokens as tok
from dockyard.errors import DockyardError
from dockyard.store.users import SessionRecord, UserRecord

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps a login request cheap
MAX_NAME = 200
_hasher = PasswordHasher()
# a hash to verify against when the name is unknown: the answer takes as long either way
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class OpenedSession:
    cookie: str  # the cookie's value: given to the browser once, never stored
    csrf: str
    expires_in_s: int


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()


def check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name or len(name) > MAX_NAME or any(unicodedata.category(c)[0] in "CZ" and c != " " for c in name):
        raise DockyardError(f"a user name is 1 to {MAX_NAME} printable characters", hint="e.g. ada or ada.lovelace")
    return name


def check_password(password: str) -> None:
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise DockyardError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")


class Users:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    @property
    def _store(self):
        return self.app.store.users

    # -- users --------------------------------------------------------------------------------
    def create(self, name: str, password: str, scope: str = "read") -> UserRecord:
        if scope not in tok.SCOPES:
            raise DockyardError(f"unknown scope {scope!r}", hint="use one of " + ", ".join(tok.SCOPES))
        name = check_name(name)
        check_password(password)
        return self._store.create_user(name, _hasher.hash(password), scope)

    def list(self) -> list[UserRecord]:
        return self._store.list_users()

    def delete(self, name: str) -> UserRecord:
        """Delete a user; its sessions end with it."""
        return self._store.delete_user(name)

    def any(self) -> bool:
        return self._store.has_users()

    def verify(self, name: str, password: str) -> UserRecord | None:
        """The user when the name and password match and it is enabled (else None, in about
        the same time whether the name exists or not)."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        try:
            name = check_name(name)
        except DockyardError:
            return None
        user = self._store.user_by_name(name)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            self._store.set_password_hash(user.id, _hasher.hash(password))
        return user

    # -- sessions -----------------------------------------------------------------------------
    def open_session(self, scope: str, *, user_id: int | None = None, token_id: int | None = None) -> OpenedSession:
        """A new login session for a user or an API token (``server.ui_session_hours`` long)."""
        hours = self.app.config.server.ui_session_hours
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._store.open_session(
            _digest(cookie), csrf, scope, timedelta(hours=hours), user_id=user_id, token_id=token_id
        )
        return OpenedSession(cookie, csrf, int(hours * 3600))

    def resolve_session(self, cookie: str) -> SessionRecord | None:
        if not cookie or len(cookie) > 200:
            return None
        return self._store.session(_digest(cookie))

    def close_session(self, cookie: str) -> None:
        if cookie and len(cookie) <= 200:
            self._store.close_session(_digest(cookie))
