"""The ``openlineage:`` block of dockyard.yml: where the OpenLineage events of each run go
(docs/integrations.md#openlineage, docs/configuration.md#openlineage)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.config.ci import check_secret_ref


class OpenLineageConfig(BaseModel):
    """``enabled: true`` starts the ``dockyard.openlineage`` consumer. Without ``url`` the
    transport is openlineage-python's own configuration (``OPENLINEAGE_URL`` /
    ``OPENLINEAGE_API_KEY``, ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__*``); with it, an
    HTTP transport to ``url`` + ``endpoint``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    url: str | None = Field(None, pattern=r"^https?://", max_length=2000)
    endpoint: str = Field("api/v1/lineage", max_length=500)
    namespace: str = Field("dockyard", min_length=1, max_length=200)  # of the jobs (datasets: the adapter's)
    api_key: str | None = None  # a secret reference: env:NAME or file:PATH
    # one HTTP request; with ``retries`` (connection errors, 5xx) this bounds one event's time.
    # One run's events are sent within 80 % of events.delivery_timeout_seconds (docs).
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "openlineage.api_key")
