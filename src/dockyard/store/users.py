"""The web UI's users (a password hash, never the password) and login sessions (the SHA-256
of the cookie, never the cookie)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from dockyard import clock
from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.store.base import Repository
from dockyard.store.tables import api_tokens, ui_sessions, users

SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str
    scope: str
    created_at: datetime
    disabled: bool
    password_hash: str

    def __repr__(self) -> str:  # never the hash in a log
        return f"UserRecord(id={self.id}, name={self.name!r}, scope={self.scope!r}, disabled={self.disabled})"


@dataclass(frozen=True)
class SessionRecord:
    id: int
    name: str  # the user's, or the token's
    kind: str  # user | token
    scope: str
    csrf: str
    expires_at: datetime
    last_seen_at: datetime


def _user(row) -> UserRecord:
    return UserRecord(
        row["id"], row["name"], row["scope"], row["created_at"], bool(row["disabled"]), row["password_hash"]
    )


class Users(Repository):
    # -- users --------------------------------------------------------------------------------
    def create_user(self, name: str, password_hash: str, scope: str) -> UserRecord:
        now = clock.now()
        with self.db.write() as conn:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first():
                raise ConflictError(f"a user named {name!r} exists", hint="pick another name, or delete it first")
            user_id = conn.execute(
                users.insert().values(name=name, password_hash=password_hash, scope=scope, created_at=now)
            ).inserted_primary_key[0]
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().one()
        return _user(row)

    def list_users(self) -> list[UserRecord]:
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.name)).mappings()]

    def user_by_name(self, name: str) -> UserRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).mappings().first()
        return _user(row) if row else None

    def has_users(self) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(users.c.id).limit(1)).first() is not None

    def delete_user(self, name: str) -> UserRecord:
        """Delete the user and end its sessions."""
        with self.db.write() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).mappings().first()
            if row is None:
                raise NotFoundError(f"no user {name!r}", hint="see dockyard users list")
            conn.execute(delete(ui_sessions).where(ui_sessions.c.user_id == row["id"]))
            conn.execute(delete(users).where(users.c.id == row["id"]))
        return _user(row)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """A rehash (argon2 parameters raised): the same password, a stronger hash."""
        with self.db.write() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))

    # -- sessions -----------------------------------------------------------------------------
    def open_session(
        self, digest: str, csrf: str, scope: str, lifetime: timedelta, *, user_id=None, token_id=None
    ) -> None:
        now = clock.now()
        with self.db.write() as conn:
            conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at < now))  # indexed, usually none
            conn.execute(
                ui_sessions.insert().values(
                    digest=digest,
                    user_id=user_id,
                    token_id=token_id,
                    scope=scope,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + lifetime,
                    last_seen_at=now,
                )
            )

    def session(self, digest: str) -> SessionRecord | None:
        """The live session of this digest: not expired, its user present and enabled, its
        token not revoked (else None). ``last_seen_at`` is refreshed at most once a minute."""
        now = clock.now()
        query = (
            select(
                ui_sessions,
                users.c.name.label("user_name"),
                users.c.disabled,
                api_tokens.c.name.label("token_name"),
                api_tokens.c.revoked_at,
            )
            .select_from(
                ui_sessions.outerjoin(users, users.c.id == ui_sessions.c.user_id).outerjoin(
                    api_tokens, api_tokens.c.id == ui_sessions.c.token_id
                )
            )
            .where(ui_sessions.c.digest == digest, ui_sessions.c.expires_at > now)
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        if row["user_id"] is not None:
            if row["user_name"] is None or row["disabled"]:
                return None
            name, kind = row["user_name"], "user"
        else:
            if row["token_name"] is None or row["revoked_at"] is not None:
                return None
            name, kind = row["token_name"], "token"
        if now - row["last_seen_at"] >= SEEN_EVERY:
            try:
                with self.db.write(wait_s=0.1) as conn:
                    conn.execute(update(ui_sessions).where(ui_sessions.c.id == row["id"]).values(last_seen_at=now))
            except DockyardError:  # bookkeeping (another writer holds the lock): never the page's error
                pass
        return SessionRecord(row["id"], name, kind, row["scope"], row["csrf"], row["expires_at"], row["last_seen_at"])

    def close_session(self, digest: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(ui_sessions).where(ui_sessions.c.digest == digest))
