"""Goal S6: property-based fuzzing of the whole OpenAPI schema, in-process, with an admin
token: no operation ever answers 5xx (bounded examples so CI stays under two minutes)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from tests.api.conftest import make_app, seed_run

from dockyard.api.app import create_app
from dockyard.domain import RunStatus


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    import os
    import shutil

    from tests.conftest import ROOT

    base = tmp_path_factory.mktemp("fuzz")
    shop = base / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        shop,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    os.environ.setdefault("SHOP_DUCKDB_DIR", str(base / "db"))
    app = make_app(shop)
    for status in (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.QUEUED):
        seed_run(app, status=status, failed_step=4 if status == RunStatus.ERROR else None)
    _, token = app.store.tokens.create_token("fuzz", "admin")
    api = create_app(app, request_rate=10**6, trigger_rate=10**6)
    yield api, {"Authorization": f"Token {token}"}
    app.close()


def test_no_operation_answers_5xx(fuzz_target):
    api, headers = fuzz_target
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35
    failures: list[str] = []
    calls: dict[str, int] = {}

    def make_check(operation, label: str):
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            if (
                case.path.endswith("/logs")
                and case.query
                and str(case.query.get("follow")).lower() in ("1", "true", "yes")
            ):
                case.query["follow"] = "false"  # a followed log of a running run streams until it ends
            calls[label] = calls.get(label, 0) + 1
            try:
                case.call_and_validate(headers=headers, checks=[not_a_server_error])
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:300]}")
                raise

        return check

    for operation in operations:
        try:
            make_check(operation, operation.label)()
        except Exception as exc:  # noqa: BLE001 - reported below
            if not failures or operation.label not in failures[-1]:
                failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures[:20])
    assert len(calls) == len(operations) and sum(calls.values()) >= 10 * len(operations), calls
