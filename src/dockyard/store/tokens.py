"""API tokens (digests only) and the Idempotency-Key records of run triggers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from dockyard import clock
from dockyard import tokens as tok
from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.store.base import Repository
from dockyard.store.tables import api_tokens, idempotency_keys

IDEMPOTENCY_TTL = timedelta(hours=24)
#: The longest a request waits to record its token's last-used time (see touch_token).
TOUCH_WAIT_S = 0.1
log = logging.getLogger("dockyard.store")


@dataclass
class TokenRecord:
    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass
class IdempotencyClaim:
    """``owner``: this request recorded the key first and must create the run (then call
    :meth:`Tokens.finish_idempotency`); otherwise ``run_id`` is the run of the first request
    (``None`` while it is still in progress) and ``same_body`` says whether the bodies match."""

    owner: bool
    run_id: int | None = None
    same_body: bool = True


def _record(row) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scope=row["scope"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class Tokens(Repository):
    # -- tokens ----------------------------------------------------------------
    def create_token(self, name: str, scope: str) -> tuple[TokenRecord, str]:
        """A new token; returns its record and the token itself (shown once, never stored)."""
        if scope not in tok.SCOPES:
            raise DockyardError(f"unknown scope {scope!r}", hint="use one of " + ", ".join(tok.SCOPES))
        name = name.strip()
        if not name or len(name) > 200:
            raise DockyardError("a token needs a name of 1 to 200 characters")
        token = tok.generate()
        now = clock.now()
        with self.db.write() as conn:
            taken = conn.execute(
                select(api_tokens.c.id).where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            ).first()
            if taken:
                raise ConflictError(
                    f"an active token named {name!r} exists",
                    hint=f"revoke it first (dockyard tokens revoke {name!r}) or pick another name",
                )
            token_id = conn.execute(
                api_tokens.insert().values(
                    name=name, prefix=tok.display(token), digest=tok.digest(token), scope=scope, created_at=now
                )
            ).inserted_primary_key[0]
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).mappings().one()
        return _record(row), token

    def list_tokens(self, include_revoked: bool = True) -> list[TokenRecord]:
        query = select(api_tokens).order_by(api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def revoke_token(self, name_or_id: str | int) -> list[TokenRecord]:
        """Revoke the active token with this id, or the active tokens with this name."""
        now = clock.now()
        ref = str(name_or_id)
        with self.db.write() as conn:
            ids: list[int] = []
            if ref.isascii() and ref.isdigit():
                ids = list(
                    conn.execute(
                        select(api_tokens.c.id).where(api_tokens.c.id == int(ref), api_tokens.c.revoked_at.is_(None))
                    ).scalars()
                )
            if not ids:
                ids = list(
                    conn.execute(
                        select(api_tokens.c.id).where(api_tokens.c.name == ref, api_tokens.c.revoked_at.is_(None))
                    ).scalars()
                )
            if not ids:
                raise NotFoundError(f"no active token {ref!r}", hint="see dockyard tokens list")
            conn.execute(update(api_tokens).where(api_tokens.c.id.in_(ids)).values(revoked_at=now))
            rows = conn.execute(select(api_tokens).where(api_tokens.c.id.in_(ids))).mappings()
            return [_record(r) for r in rows]

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        """The token (revoked or not) with this digest, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.digest == digest)).mappings().first()
        return _record(row) if row else None

    def has_tokens(self) -> bool:
        """Whether any token was ever created (revoked ones count: auth never turns off again)."""
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(api_tokens)).scalar_one() > 0

    def touch_token(self, token_id: int, at: datetime | None = None, wait_s: float = TOUCH_WAIT_S) -> bool:
        """Record when the token was last used, best effort: a request never waits more than
        ``wait_s`` for another writer's lock, nor fails, for this bookkeeping. Returns
        whether it was recorded (a failure is logged at debug level)."""
        try:
            with self.db.write(wait_s=wait_s) as conn:
                conn.execute(
                    update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at or clock.now())
                )
        except DockyardError as exc:
            log.debug("token %s: last-used time not recorded: %s", token_id, exc.what)
            return False
        return True

    # -- idempotency keys ------------------------------------------------------
    def claim_idempotency(
        self, token_id: int, key: str, fingerprint: str, now: datetime | None = None
    ) -> IdempotencyClaim:
        """Record ``key`` for ``token_id`` unless it exists (and is younger than 24 h)."""
        now = now or clock.now()
        with self.db.write() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.token_id == token_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL,
                )
            )
            stmt = (
                self.db.insert(idempotency_keys)
                .values(token_id=token_id, key=key, fingerprint=fingerprint, created_at=now)
                .on_conflict_do_nothing(index_elements=["token_id", "key"])
                .returning(idempotency_keys.c.id)
            )
            if conn.execute(stmt).scalar() is not None:
                return IdempotencyClaim(owner=True)
            row = conn.execute(
                select(idempotency_keys.c.fingerprint, idempotency_keys.c.run_id).where(
                    idempotency_keys.c.token_id == token_id, idempotency_keys.c.key == key
                )
            ).first()
        if row is None:  # pragma: no cover - deleted between the two statements
            return IdempotencyClaim(owner=False)
        return IdempotencyClaim(owner=False, run_id=row.run_id, same_body=row.fingerprint == fingerprint)

    def finish_idempotency(self, token_id: int, key: str, run_id: int | None) -> None:
        """Attach the created run to the key, or (``run_id`` None: the request failed) drop it."""
        where = (idempotency_keys.c.token_id == token_id, idempotency_keys.c.key == key)
        with self.db.write() as conn:
            if run_id is None:
                conn.execute(delete(idempotency_keys).where(*where))
            else:
                conn.execute(update(idempotency_keys).where(*where).values(run_id=run_id))

    def purge_idempotency(self, now: datetime | None = None) -> int:
        """Delete keys older than 24 h; returns how many."""
        now = now or clock.now()
        with self.db.write() as conn:
            return conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL)
            ).rowcount
