"""The ``notifications:`` lists and the ``alerts:`` block of dockyard.yml (docs/alerts.md).

A :class:`Notification` is one channel: per job (``jobs[].notifications``, the run alerts of
that job) or at the top level (``notifications:``, every alert whose job, environment and
kind pass its filters). :class:`AlertsConfig` holds the delivery settings shared by every
channel: the re-alert interval, retries, timeouts, the hosts allowed past the SSRF rule and
the default SMTP server of email channels.

Webhook URLs, integration keys, signing secrets and SMTP passwords accept a secret
reference (``env:NAME``, ``file:PATH``) or a literal value; ``dockyard validate`` warns about
literals (:func:`literal_secrets`): a secret in dockyard.yml is a secret in git.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard.alert import AlertKind
from dockyard.config.ci import SECRET_REF, check_secret_ref

ChannelType = Literal["slack", "email", "pagerduty", "msteams", "webhook"]
NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
#: the fields of a notification that hold a secret (or a URL that is one)
SECRET_FIELDS = ("webhook_url", "integration_key", "url", "secret")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SmtpConfig(_Strict):
    """An SMTP server (``alerts.smtp`` or an email notification's own ``smtp``)."""

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False  # SMTP over TLS from the first byte (port 465); excludes starttls
    username: str | None = Field(None, max_length=255)
    password: str | None = None  # a secret reference (env:NAME, file:PATH)
    sender: str | None = Field(None, max_length=320)  # From: (default dockyard@<host name>)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "smtp.password")


class Notification(_Strict):
    """One channel: where alerts go and which ones (see docs/alerts.md, "Routing")."""

    type: ChannelType
    name: str | None = Field(None, min_length=1, max_length=200, pattern=NAME)
    # which run events (per-job flags; at the top level they apply as well)
    on_start: bool = False
    on_success: bool = False
    on_failure: bool = True  # failed and timed out (and freshness warn/error, monitor alerts, slowdowns)
    on_warning: bool = False  # succeeded with warnings
    on_cancel: bool = False
    on_resolved: bool = True  # the first success after a failure (to channels that got the failure)
    # destinations: a secret reference (env:NAME, file:PATH) or a literal (validate warns)
    webhook_url: str | None = None  # slack, msteams
    email_addresses: list[str] | None = None  # email
    integration_key: str | None = None  # pagerduty: the Events v2 routing key
    events_url: str | None = None  # pagerduty: default https://events.pagerduty.com/v2/enqueue
    url: str | None = None  # webhook
    secret: str | None = None  # webhook: the HMAC-SHA256 signing secret
    smtp: SmtpConfig | None = None  # email: this channel's SMTP server (default alerts.smtp)
    # filters of a top-level notification (None: every job, environment, kind)
    jobs: list[str] | None = None
    environments: list[str] | None = None
    kinds: list[AlertKind] | None = None

    @model_validator(mode="after")
    def _destination(self) -> Notification:
        needed = {
            "slack": "webhook_url",
            "msteams": "webhook_url",
            "email": "email_addresses",
            "pagerduty": "integration_key",
            "webhook": "url",
        }[self.type]
        if not getattr(self, needed):
            raise ValueError(f"a {self.type} notification needs '{needed}'")
        for key in (*SECRET_FIELDS, "events_url"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ValueError(f"'{key}' is empty")
        return self

    def accepts(self, kind: AlertKind, event: str) -> bool:
        """Whether this channel's flags and ``kinds`` want an alert of ``kind``/``event``
        (resolves are decided by the caller from the channel's state)."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if kind in (AlertKind.DIGEST, AlertKind.TEST):
            return True
        flag = EVENT_FLAGS.get(event, "on_failure")
        return bool(getattr(self, flag))

    def matches(self, job: str | None, environment: str | None) -> bool:
        """The top-level filters ``jobs`` and ``environments``."""
        if self.jobs is not None and job not in self.jobs:
            return False
        return self.environments is None or environment in self.environments


#: the flag that lets an event through (anything else is a problem: on_failure)
EVENT_FLAGS = {
    "started": "on_start",
    "succeeded": "on_success",
    "warning": "on_warning",
    "cancelled": "on_cancel",
    "resolved": "on_resolved",
    "pass": "on_resolved",
}


class AlertsConfig(_Strict):
    """``alerts:``: how deliveries are made."""

    # a subject that keeps failing re-alerts at most once per interval per channel
    realert_minutes: float = Field(60.0, ge=0, le=7 * 24 * 60)
    max_attempts: int = Field(5, ge=1, le=50)  # per delivery, then it is marked failed
    backoff_seconds: float = Field(2.0, ge=0, le=3600)  # before attempt 2; doubles after each failure
    timeout_seconds: float = Field(10.0, gt=0, le=300)  # one delivery's HTTP or SMTP exchange
    allow_hosts: list[str] = Field(default_factory=list)  # host names, IPs, CIDRs past the SSRF rule
    smtp: SmtpConfig | None = None  # the default SMTP server of email notifications


def check_names(value: list[Notification]) -> list[Notification]:
    """Notification names are unique (``dockyard notify test NAME``, digests refer to them)."""
    names = [n.name for n in value if n.name]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two notifications are named {', '.join(dupes)}: give each a distinct 'name'")
    return value


def literal_secrets(notification: Notification) -> list[str]:
    """The fields of ``notification`` that hold a literal value instead of a secret reference."""
    return [
        key
        for key in SECRET_FIELDS
        if (value := getattr(notification, key)) is not None and not SECRET_REF.match(value)
    ]


def is_secret_ref(value: str) -> bool:
    return bool(SECRET_REF.match(value))
