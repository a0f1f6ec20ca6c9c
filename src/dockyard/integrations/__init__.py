"""dockyard inside orchestrators: what the files ``dockyard export airflow|prefect|dagster``
writes import. :mod:`dockyard.integrations.airflow`, ``.prefect`` and ``.dagster`` each
import their orchestrator, and only they do (``pip install "dockyard[airflow]"``, ...);
this module holds what they share, on :mod:`dockyard.client` alone."""
