"""dockyard: self-hosted deployment, orchestration and observability for dbt Core."""

__version__ = "0.1.0"
