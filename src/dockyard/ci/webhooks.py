"""Inbound git-provider webhooks: verifying a delivery and reading it into a typed event.

GitHub signs the raw body: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``;
GitLab sends its secret token back in ``X-Gitlab-Token``. Both are compared with
:func:`hmac.compare_digest` (constant time), before anything else reads the body. Neither
provider signs a timestamp, so a captured delivery can be re-sent as it is: replays are
stopped by the delivery id (``X-GitHub-Delivery``, ``X-Gitlab-Event-UUID``), recorded in
the store (:mod:`dockyard.ci.controller`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from dockyard.errors import ConfigError, DockyardError, NotFoundError
from dockyard.payload import PayloadError, loads  # a signed delivery that cannot be read: 400
from dockyard.secrets import UnreadableSecret, read_reference

DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
ZERO_SHA = re.compile(r"^0+$")
GITHUB_SIGNATURE = re.compile(r"^sha256=([0-9a-f]{64})$")  # exactly as GitHub sends it
#: the GitLab headers carrying a delivery id, in order of preference
SIGNATURE_TOLERANCE_S = 300  # Standard Webhooks: a signed delivery older or newer than this is refused
GITLAB_DELIVERY_HEADERS = ("x-gitlab-event-uuid", "idempotency-key", "webhook-id", "x-gitlab-webhook-uuid")


class SignatureError(DockyardError):
    """The delivery is not signed with the configured secret (401, no side effects)."""

    status = 401


class NotConfiguredError(NotFoundError):
    """The server has no secret for this provider: its webhooks are off (404)."""


# -- typed events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullRequestEvent:
    """A pull (merge) request changed. ``action``: ``opened``, ``reopened``, ``synchronize``
    (new commits), ``closed``, ``merged``, or another provider action (ignored)."""

    provider: str  # github | gitlab
    number: int
    action: str
    head_sha: str | None
    head_ref: str | None
    base_ref: str | None


@dataclass(frozen=True)
class PushEvent:
    provider: str
    ref: str  # refs/heads/<branch>
    after: str | None  # the new head sha (None: the branch was deleted)

    @property
    def branch(self) -> str | None:
        return self.ref[len("refs/heads/") :] if self.ref.startswith("refs/heads/") else None


@dataclass(frozen=True)
class PingEvent:
    provider: str


@dataclass(frozen=True)
class OtherEvent:
    """An event dockyard does not act on (answered 202)."""

    provider: str
    name: str


Event = PullRequestEvent | PushEvent | PingEvent | OtherEvent


# -- secrets ------------------------------------------------------------------------------------
def resolve_secret(ref: str | None, what: str, location=None) -> str | None:
    """The value behind a secret reference (``env:NAME``, ``file:PATH``); None when unset."""
    if not ref:
        return None
    try:
        return read_reference(ref)
    except UnreadableSecret as exc:
        hint = exc.hint.replace("dockyard runs in", "of dockyard serve")
        raise ConfigError(f"{what} {exc.problem}", location=location, hint=hint) from None


# -- verification -------------------------------------------------------------------------------
def github_signature(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex>``: what GitHub sends in ``X-Hub-Signature-256`` for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_github(secret: str | None, body: bytes, signature: str | None) -> None:
    """Raise unless ``signature`` is the HMAC-SHA256 of the raw ``body`` under ``secret``."""
    if not secret:
        raise NotConfiguredError(
            "GitHub webhooks are not enabled on this server",
            hint="set server.github_webhook_secret (env:NAME or file:PATH) to the webhook's secret",
        )
    match = GITHUB_SIGNATURE.fullmatch(signature or "")
    if not match:
        raise SignatureError(
            "Missing or malformed X-Hub-Signature-256", hint="set a secret on the GitHub webhook (sha256 signature)"
        )
    expected = github_signature(secret, body)[len("sha256=") :]
    if not hmac.compare_digest(expected.encode(), match.group(1).encode()):
        raise SignatureError("Invalid webhook signature", hint="the webhook's secret must match the server's")


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64>``: the Standard Webhooks signature of ``body`` (HMAC-SHA256 of
    ``<id>.<timestamp>.<body>``). A ``whsec_`` secret is base64 (the key is its decoded bytes),
    any other is used as it is (GitLab's signing token)."""
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            key = secret.encode()
    else:
        key = secret.encode()
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard(secret: str, headers, body: bytes, *, now: float | None = None) -> None:
    """Raise unless the Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature``: space-separated ``v1,<base64>``) sign ``body`` under ``secret``, with
    a timestamp within :data:`SIGNATURE_TOLERANCE_S` of now (a replay window)."""
    msg_id = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    sent = headers.get("webhook-signature") or ""
    if not msg_id or not stamp or not sent:
        raise SignatureError(
            "Missing webhook-id, webhook-timestamp or webhook-signature",
            hint="set a signing token on the GitLab webhook",
        )
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > SIGNATURE_TOLERANCE_S:
        raise SignatureError(
            "Stale or malformed webhook-timestamp",
            hint=f"a signed delivery is accepted within {SIGNATURE_TOLERANCE_S} s of its timestamp (check the clocks)",
        )
    expected = standard_signature(secret, msg_id, stamp, body).encode()
    if not any(hmac.compare_digest(expected, part.encode("utf-8", "surrogateescape")) for part in sent.split()[:10]):
        raise SignatureError("Invalid webhook signature", hint="the webhook's signing token must match the server's")


def verify_gitlab(token: str | None, sent: str | None, *, signing: str | None = None, headers=None, body=b"") -> None:
    """Raise unless the delivery is GitLab's: with ``server.gitlab_webhook_signing_token``
    set, a valid Standard Webhooks signature (:func:`verify_standard`) is required; otherwise
    ``X-Gitlab-Token`` must equal the configured token (constant-time)."""
    if signing:
        verify_standard(signing, headers or {}, body)
        return
    if not token:
        raise NotConfiguredError(
            "GitLab webhooks are not enabled on this server",
            hint="set server.gitlab_webhook_token or server.gitlab_webhook_signing_token (env:NAME or file:PATH)",
        )
    if not sent:
        raise SignatureError("Missing X-Gitlab-Token", hint="set a secret token on the GitLab webhook")
    if not hmac.compare_digest(token.encode(), sent.encode("utf-8", "surrogateescape")):
        raise SignatureError("Invalid X-Gitlab-Token", hint="the webhook's secret token must match the server's")


def delivery_id(provider: str, headers, body: bytes, event: str) -> str:
    """The delivery's id: GitHub's ``X-GitHub-Delivery``; GitLab's ``X-Gitlab-Event-UUID``
    (or ``Idempotency-Key``, ``X-Gitlab-Webhook-UUID``; without any, a digest of the event
    and the body, so an identical re-send is still one delivery)."""
    names = ("x-github-delivery",) if provider == "github" else GITLAB_DELIVERY_HEADERS
    for name in names:
        value = (headers.get(name) or "").strip()
        if value:
            if not DELIVERY_ID.match(value):
                raise PayloadError(f"{name} must be 1 to 255 visible ASCII characters")
            return value
    if provider == "github":
        raise PayloadError("Missing X-GitHub-Delivery", hint="GitHub sends it with every delivery")
    return "sha256:" + hashlib.sha256(event.encode() + b"\0" + body).hexdigest()


# -- parsing ------------------------------------------------------------------------------------
def payload(body: bytes, content_type: str | None = None) -> dict:
    """The JSON object of a delivery (GitHub's form encoding ``payload=<json>`` too)."""
    try:
        if (content_type or "").startswith("application/x-www-form-urlencoded"):
            text = parse_qs(body.decode("utf-8"), strict_parsing=True).get("payload", [""])[0]
        else:
            text = body.decode("utf-8")
        data = loads(text, "the webhook body")  # bounded: nesting, NaN, NUL (dockyard.payload)
    except (UnicodeDecodeError, ValueError) as exc:  # a PayloadError (bounds) passes through
        raise PayloadError(f"The webhook body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise PayloadError("The webhook body must be a JSON object")
    return data


def _sha(value) -> str | None:
    return value if isinstance(value, str) and SHA.match(value) and not ZERO_SHA.match(value) else None


def _str(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise PayloadError("The pull request number is missing or not a positive integer")
    return value


def parse_github(event: str, data: dict) -> Event:
    if event == "ping":
        return PingEvent("github")
    if event == "pull_request":
        pr = data.get("pull_request") if isinstance(data.get("pull_request"), dict) else {}
        head = pr.get("head") if isinstance(pr.get("head"), dict) else {}
        base = pr.get("base") if isinstance(pr.get("base"), dict) else {}
        action = _str(data.get("action")) or ""
        if action == "closed" and pr.get("merged") is True:
            action = "merged"
        return PullRequestEvent(
            "github",
            _number(data.get("number", pr.get("number"))),
            action,
            _sha(head.get("sha")),
            _str(head.get("ref")),
            _str(base.get("ref")),
        )
    if event == "push":
        ref = _str(data.get("ref"))
        if ref is None:
            raise PayloadError("A push event without its ref")
        return PushEvent("github", ref, None if data.get("deleted") else _sha(data.get("after")))
    return OtherEvent("github", event[:64])


GITLAB_ACTIONS = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "merged"}


def parse_gitlab(event: str, data: dict) -> Event:
    kind = data.get("object_kind")
    if event == "Merge Request Hook" or kind == "merge_request":
        attrs = data.get("object_attributes") if isinstance(data.get("object_attributes"), dict) else {}
        raw = _str(attrs.get("action")) or ""
        action = GITLAB_ACTIONS.get(raw, raw)
        if raw == "update":  # a title or label change too: only new commits make a build
            action = "synchronize" if attrs.get("oldrev") else "update"
        last = attrs.get("last_commit") if isinstance(attrs.get("last_commit"), dict) else {}
        return PullRequestEvent(
            "gitlab",
            _number(attrs.get("iid")),
            action,
            _sha(last.get("id")),
            _str(attrs.get("source_branch")),
            _str(attrs.get("target_branch")),
        )
    if event == "Push Hook" or kind == "push":
        ref = _str(data.get("ref"))
        if ref is None:
            raise PayloadError("A push event without its ref")
        return PushEvent("gitlab", ref, _sha(data.get("after")) or None)
    return OtherEvent("gitlab", event[:64])
