"""Who is calling: tokens (``Authorization: Token ...`` or ``Bearer ...``), scopes, rate limits.

Authentication is required once any token exists (revoked ones included, so revoking the
last token never opens the API), and always when ``dockyard serve`` binds a non-loopback
address. Every lookup goes to the store, so a revocation applies to the next request.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from fastapi import Depends, Request

from dockyard import tokens as tok
from dockyard.errors import DockyardError, ForbiddenError

SCHEMES = ("token", "bearer")
TOUCH_EVERY_S = 60.0
TOUCH_RETRY_S = 5.0


class AuthError(DockyardError):
    status = 401


class RateLimited(DockyardError):
    status = 429

    def __init__(self, what: str, retry_after: float):
        super().__init__(what, hint=f"retry in {math.ceil(retry_after)} s")
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Principal:
    token_id: int  # 0 when the API runs without tokens
    name: str
    scope: str

    @property
    def key(self) -> str:
        return f"token:{self.token_id}"


ANONYMOUS = Principal(0, "anonymous", "admin")


class Buckets:
    """Token buckets per key: ``per_minute`` requests a minute, bursts up to ``burst``."""

    def __init__(self, per_minute: int, burst: int | None = None):
        self.rate = per_minute / 60.0
        self.burst = float(burst or per_minute)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            level, last = self._state.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level >= 1:
                self._state[key] = (level - 1, now)
                return 0.0
            self._state[key] = (level, now)
            return (1 - level) / self.rate


class Auth:
    def __init__(
        self, app, *, required: bool = False, request_rate: int | None = None, trigger_rate: int | None = None
    ):
        server = app.config.server
        self.app = app
        self.required = required
        self.requests = Buckets(
            request_rate or server.request_rate_per_minute,
            max(10, (request_rate or server.request_rate_per_minute) // 6),
        )
        self.triggers = Buckets(trigger_rate or server.trigger_rate_per_minute)
        self._seen_tokens = False
        self._touched: dict[int, float] = {}

    def auth_on(self) -> bool:
        if self.required or self._seen_tokens:
            return True
        self._seen_tokens = self.app.tokens.any()
        return self._seen_tokens

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "").strip()
        scheme, _, value = header.partition(" ")
        token = value.strip()
        if not header:
            if self.auth_on():
                raise AuthError(
                    "Authentication credentials were not provided",
                    hint="send 'Authorization: Token <token>' (dockyard tokens create NAME)",
                )
            return ANONYMOUS
        if scheme.lower() not in SCHEMES or not tok.well_formed(token):
            if self.auth_on():
                raise AuthError("Invalid token", hint="send 'Authorization: Token <token>' or 'Bearer <token>'")
            return ANONYMOUS
        digest = tok.digest(token)
        record = self.app.tokens.by_digest(digest)
        if record is None or not record.active:
            if record is not None or self.auth_on():
                self._seen_tokens = True
                raise AuthError("Invalid token" if record is None else "This token was revoked")
            return ANONYMOUS
        self._seen_tokens = True
        now = time.monotonic()
        if now - self._touched.get(record.id, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
            # bookkeeping: best effort, at most TOUCH_WAIT_S behind another writer, never an
            # error; when it could not be recorded, the next request in TOUCH_RETRY_S tries again
            recorded = self.app.tokens.touch(record.id)
            self._touched[record.id] = now if recorded else now - TOUCH_EVERY_S + TOUCH_RETRY_S
        return Principal(record.id, record.name, record.scope)

    def check(self, request: Request, scope: str) -> Principal:
        principal = self.principal(request)
        if not tok.allows(principal.scope, scope):
            raise ForbiddenError(
                f"This token ({principal.scope}) cannot do this", hint=f"it needs a token with scope {scope} or above"
            )
        wait = self.requests.take(principal.key)
        if wait:
            raise RateLimited("Too many requests for this token", wait)
        request.state.principal = principal
        return principal

    def limit_trigger(self, principal: Principal) -> None:
        wait = self.triggers.take(principal.key)
        if wait:
            raise RateLimited("Too many runs triggered with this token", wait)


def require(scope: str):
    """A route dependency: the caller's token must allow ``scope`` (read, trigger, admin)."""

    def dependency(request: Request) -> Principal:
        return request.app.state.auth.check(request, scope)

    dependency.scope = scope  # type: ignore[attr-defined]  # read by the route-matrix test
    return Depends(dependency)


READ, TRIGGER, ADMIN = require("read"), require("trigger"), require("admin")
