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
    timeout_seconds: float = Field(5.0, gt=0, le=60)  # one HTTP request
    retries: int = Field(2, ge=0, le=10)  # per event, on connection errors and 5xx
    # all of one run's events within this many seconds (then the rest is skipped, with a warning)
    max_seconds_per_run: float = Field(30.0, gt=0, le=3600)

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        return check_secret_ref(value, "openlineage.api_key")
