"""``app.tokens``: API tokens (only their digests are stored): create, list, revoke, and the
lookups the API's authentication makes."""

from __future__ import annotations

from dockyard.store.tokens import TokenRecord


class Tokens:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    def create(self, name: str, scope: str) -> tuple[TokenRecord, str]:
        """A new token: its record and the token itself (shown once, never stored)."""
        return self.app.store.tokens.create_token(name, scope)

    def list(self, *, include_revoked: bool = True) -> list[TokenRecord]:
        return self.app.store.tokens.list_tokens(include_revoked)

    def revoke(self, name_or_id: str | int) -> list[TokenRecord]:
        return self.app.store.tokens.revoke_token(name_or_id)

    def any(self) -> bool:
        """Whether any token exists (revoked ones count: revoking the last never reopens the API)."""
        return self.app.store.tokens.has_tokens()

    def by_digest(self, digest: str) -> TokenRecord | None:
        return self.app.store.tokens.token_by_digest(digest)

    def touch(self, token_id: int) -> bool:
        """Record a use of the token (best effort: False when it could not be written now)."""
        return self.app.store.tokens.touch_token(token_id)
