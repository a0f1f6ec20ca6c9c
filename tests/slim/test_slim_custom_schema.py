"""A project whose generate_schema_name uses custom schemas verbatim in every target: in a
pull-request build its models land in ``<pr schema>_<custom>``, never in the production
schema of that name."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import PROJECT, make_shop

pytestmark = pytest.mark.slow

VERBATIM = """
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
"""


@pytest.fixture(scope="module")
def custom_shop(tmp_path_factory, module_monkeypatch):
    tmp = tmp_path_factory.mktemp("slim_custom")
    project = PROJECT["dbt_project.yml"].replace(
        "+materialized: table", "+materialized: table\n              +schema: marts"
    )
    shop = make_shop(tmp, module_monkeypatch, {"dbt_project.yml": project, "macros/generate_schema_name.sql": VERBATIM})
    yield shop
    shop.app.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_custom_schemas_are_prefixed_with_the_pr_schema(custom_shop):
    shop = custom_shop
    assert shop.tables("marts") == {"fct_orders", "customer_totals", "dim_customers"}  # prod, verbatim
    prod_before = shop.query("select * from marts.fct_orders order by id")
    fct = "models/marts/fct_orders.sql"
    with shop.changed({fct: "select o.id, o.customer_id, o.amount, 2 as y\nfrom {{ ref('stg_orders') }} o\n"}):
        result = shop.app.ci.build(21)
    assert result.ok, shop.app.runs.logs(result.run.id)
    assert shop.tables("dbt_ci_pr_21_marts") == {"fct_orders", "customer_totals"}
    assert "dbt_ci_pr_21" not in shop.schemas()  # nothing selected lives in the default schema
    # production untouched
    assert shop.query("select * from marts.fct_orders order by id") == prod_before
    assert "y" not in [c[0] for c in shop.query("describe marts.fct_orders")]
    results = json.loads((shop.app.runs.artifact_root(result.run.id) / "step-1" / "run_results.json").read_text())
    code = {r["unique_id"]: r["compiled_code"] for r in results["results"] if r.get("compiled_code")}
    assert '"prod"."stg_orders"' in code["model.slimshop.fct_orders"]  # deferred upstream
    assert '"dbt_ci_pr_21_marts"."fct_orders"' in code["model.slimshop.customer_totals"]  # built in the PR
    # the project's own files are untouched (the wrapper lives in the CI copy only)
    assert "dockyard__project_generate_schema_name" not in (shop.root / "macros/generate_schema_name.sql").read_text()
    assert result.selected[0] == {
        "unique_id": "model.slimshop.customer_totals",
        "reason": "downstream of model.slimshop.fct_orders",
    }
    assert shop.app.ci.cleanup(21) == ["dbt_ci_pr_21_marts"]
    assert "dbt_ci_pr_21_marts" not in shop.schemas() and "marts" in shop.schemas()
