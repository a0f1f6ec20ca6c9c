"""The API's store queries on PostgreSQL: the same tests as on SQLite, with a PostgreSQL
store (``app`` is overridden here; the imported tests run again against it)."""

from __future__ import annotations

import pytest
from tests.api.conftest import make_app
from tests.api.test_auth import test_route_matrix, test_scopes_and_revocation_on_the_next_request  # noqa: F401
from tests.api.test_cloud_jobs import (  # noqa: F401
    test_create_update_delete_api_job,
    test_list_jobs_paginates_like_airflow_and_jobs_as_code,
    test_rerun_retries_a_failed_latest_run_else_triggers,
)
from tests.api.test_cloud_runs import (  # noqa: F401
    test_artifacts_list_and_download_per_step,
    test_cancel_queued_run,
    test_list_runs_filters_and_pagination,
    test_run_steps_layout,
    test_trigger_overrides_change_that_run_only,
)
from tests.api.test_hardening import test_idempotency_key_returns_the_same_run  # noqa: F401
from tests.api.test_native import (  # noqa: F401
    test_cancel_and_rerun,
    test_figures_for_the_ui,
    test_runs_list_filters_offset_and_cursor,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(shop, pg_database_factory):
    app = make_app(shop, pg_database_factory())
    yield app
    app.close()
