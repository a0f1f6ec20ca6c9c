"""The pure parts of slim CI: reasons from two manifests, the state flags of a command, the PR
schema's macro wrapper and its check after parsing, the CI copy of a project."""

from __future__ import annotations

import pytest

from dockyard.errors import DockyardError
from dockyard.slim import manifest as mf
from dockyard.slim import schema, shadow, state


def model(uid: str, code: str = "select 1", parents=(), macros=(), **extra) -> dict:
    return {
        "unique_id": uid,
        "resource_type": "model",
        "raw_code": code,
        "fqn": ["p", uid.split(".")[-1]],
        "unrendered_config": extra.pop("unrendered_config", {"materialized": "table"}),
        "config": extra.pop("config", {"materialized": "table"}),
        "depends_on": {"nodes": list(parents), "macros": list(macros)},
        **extra,
    }


def manifest(*nodes, macros=None, sources=None, exposures=None) -> dict:
    return {
        "nodes": {n["unique_id"]: n for n in nodes},
        "macros": macros or {},
        "sources": sources or {},
        "exposures": exposures or {},
    }


A, B, C = "model.p.a", "model.p.b", "model.p.c"


def chain(**changes) -> dict:
    """a -> b -> c, with keyword changes applied to b."""
    return manifest(model(A), model(B, parents=[A], **changes), model(C, parents=[B]))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"code": "select 2"}, "body changed"),
        ({"unrendered_config": {"materialized": "view"}}, "config changed"),
        ({"unrendered_config": {"materialized": "table", "schema": "other"}}, "relation changed"),
        ({"contract": {"enforced": True, "checksum": "x"}}, "contract changed"),
    ],
)
def test_each_change_has_its_reason_and_downstream(changes, reason):
    selection = mf.explain(chain(), chain(**changes))
    assert selection.selected == [
        {"unique_id": B, "resource_type": "model", "reason": reason},
        {"unique_id": C, "resource_type": "model", "reason": f"downstream of {B}"},
    ]


def test_tags_are_not_a_config_change_and_nothing_changed_selects_nothing():
    assert mf.explain(chain(), chain(unrendered_config={"materialized": "table", "tags": ["x"]})).selected == []


def test_persisted_descriptions_only_count_when_persisted():
    plain = mf.explain(chain(description="old"), chain(description="new"))
    assert plain.selected == []
    persisted = {"config": {"materialized": "table", "persist_docs": {"relation": True}}}
    selection = mf.explain(chain(description="old", **persisted), chain(description="new", **persisted))
    assert selection.selected[0]["reason"] == "description changed"


def test_a_macro_change_reaches_nodes_through_other_macros():
    macros_old = {
        "macro.p.outer": {"macro_sql": "{{ inner() }}", "depends_on": {"macros": ["macro.p.inner"]}},
        "macro.p.inner": {"macro_sql": "1", "depends_on": {"macros": []}},
    }
    macros_new = {**macros_old, "macro.p.inner": {"macro_sql": "2", "depends_on": {"macros": []}}}
    old = manifest(model(A), model(B, macros=["macro.p.outer"]), macros=macros_old)
    new = manifest(model(A), model(B, macros=["macro.p.outer"]), macros=macros_new)
    assert mf.explain(old, new).selected == [
        {"unique_id": B, "resource_type": "model", "reason": "macro inner changed"}
    ]


def test_new_deleted_and_exposures():
    old = manifest(model(A), model(B, parents=[A]))
    exposures = {"exposure.p.dash": {"depends_on": {"nodes": [C]}}, "exposure.p.other": {"depends_on": {"nodes": [A]}}}
    new = manifest(model(A), model(C, parents=[A]), exposures=exposures)
    selection = mf.explain(old, new)
    assert selection.selected == [{"unique_id": C, "resource_type": "model", "reason": "new"}]
    assert selection.deleted == [{"unique_id": B, "resource_type": "model"}]
    assert selection.exposures == ["exposure.p.dash"]


def test_nearest_changed_ancestor_is_named():
    old = manifest(model(A), model(B, parents=[A]), model(C, parents=[B]), model("model.p.d", parents=[C, A]))
    new = manifest(
        model(A, code="x"), model(B, parents=[A]), model(C, code="y", parents=[B]), model("model.p.d", parents=[C, A])
    )
    reasons = {s["unique_id"]: s["reason"] for s in mf.explain(old, new).selected}
    assert reasons == {
        A: "body changed",
        B: f"downstream of {A}",
        C: "body changed",
        "model.p.d": f"downstream of {A}",  # one step from a (and from c): the first in id order
    }


def test_sources_compare_unrendered_relations():
    def source(schema, unrendered="{{ target.schema }}"):
        return {
            "source.p.raw.t": {
                "unique_id": "source.p.raw.t",
                "resource_type": "source",
                "schema": schema,
                "database": "db",
                "unrendered_schema": unrendered,
                "identifier": "t",
                "fqn": ["p", "raw", "t"],
            }
        }

    same = mf.explain(manifest(sources=source("prod")), manifest(sources=source("dbt_ci_pr_1")))
    assert same.selected == []
    moved = mf.explain(manifest(sources=source("prod")), manifest(sources=source("x", unrendered="x")))
    assert moved.selected[0]["reason"] == "relation changed"


def test_the_base_sources_are_rendered_as_the_ci_target_renders_them():
    def source(schema, unrendered="{{ target.schema }}"):
        return {
            "unique_id": "source.p.raw.t",
            "resource_type": "source",
            "database": "db",
            "schema": schema,
            "unrendered_schema": unrendered,
            "identifier": "t",
            "relation_name": f'"db"."{schema}"."t"',
        }

    base = manifest(sources={"source.p.raw.t": source("prod")})
    assert mf.align_sources(base, manifest(sources={"source.p.raw.t": source("dbt_ci_pr_1")})) == ["source.p.raw.t"]
    assert base["sources"]["source.p.raw.t"]["schema"] == "dbt_ci_pr_1"
    assert base["sources"]["source.p.raw.t"]["relation_name"] == '"db"."dbt_ci_pr_1"."t"'
    moved = manifest(sources={"source.p.raw.t": source("elsewhere", unrendered="elsewhere")})
    base = manifest(sources={"source.p.raw.t": source("prod")})
    assert mf.align_sources(base, moved) == [] and base["sources"]["source.p.raw.t"]["schema"] == "prod"


def test_state_flags_are_added_only_where_state_is_used(tmp_path):
    argv = ["build", "--select", "state:modified+", "--target", "ci"]
    assert state.with_state(argv, tmp_path) == [*argv, "--state", str(tmp_path), "--defer", "--favor-state"]
    given = ["run", "--defer", "--state", "/x", "--no-favor-state"]
    assert state.with_state(given, tmp_path) == given
    assert state.with_state(["build", "--target", "ci"], tmp_path) == ["build", "--target", "ci"]
    assert state.with_state(["run-operation", "m", "--defer"], tmp_path) == ["run-operation", "m", "--defer"]


def test_without_state_drops_state_selectors():
    assert state.without_state(["build", "--select", "state:modified+", "--target", "ci"]) == [
        "build",
        "--target",
        "ci",
    ]
    # a union with a state: selector is everything (every node is new without a base)
    assert state.without_state(["build", "-s", "state:new", "tag:x", "--defer", "--state", "/s"]) == ["build"]
    assert state.without_state(["build", "-s", "state:modified+", "--exclude", "tag:slow", "state:new"]) == [
        "build",
        "--exclude",
        "tag:slow",
    ]
    assert state.without_state(["run", "--select", "tag:x"]) == ["run", "--select", "tag:x"]


def test_pr_schema_names_and_variants():
    assert schema.pr_schema("dbt_ci", 12) == "dbt_ci_pr_12"
    assert schema.parse_pr_schema("dbt_ci_pr_12") == ("dbt_ci", 12)
    assert schema.parse_pr_schema("dbt_ci_pr_12_marts") is None and schema.parse_pr_schema("prod") is None
    assert schema.belongs("DBT_CI_PR_1_marts", "dbt_ci_pr_1") and not schema.belongs("dbt_ci_pr_12", "dbt_ci_pr_1")


def test_check_refuses_a_selected_node_outside_the_pr_schema():
    nodes = manifest(
        model(A, schema="dbt_ci_pr_3"),
        model(B, schema="dbt_ci_pr_3_marts"),
        model(C, schema="marts"),
        model("model.p.e", schema="marts", config={"materialized": "ephemeral"}),
    )
    schema.check(nodes, [A, B, "model.p.e"], "dbt_ci_pr_3")
    with pytest.raises(DockyardError, match=r"model\.p\.c -> marts"):
        schema.check(nodes, [A, C], "dbt_ci_pr_3")


def test_the_ci_copy_wraps_the_projects_macro_and_sets_the_flag(tmp_path):
    src = tmp_path / "p"
    (src / "models").mkdir(parents=True)
    (src / "macros").mkdir()
    (src / "target").mkdir()
    (src / "dbt_packages" / "pkg").mkdir(parents=True)
    (src / "dbt_project.yml").write_text("name: p\nprofile: p\nflags:\n  send_anonymous_usage_stats: false\n")
    (src / "models" / "m.sql").write_text("select 1")
    (src / "target" / "manifest.json").write_text("{}")
    (src / "prod.duckdb").write_text("")
    (src / "macros" / "s.sql").write_text("{%- macro  generate_schema_name(c, n) -%}{{ c }}{%- endmacro %}")
    copy = shadow.make(src, tmp_path / "copy")
    assert (copy / "models" / "m.sql").read_text() == "select 1"
    assert not (copy / "target").exists() and not (copy / "prod.duckdb").exists()
    assert (copy / "dbt_packages").is_symlink()
    assert (copy / "dbt_project.yml").read_text() == (src / "dbt_project.yml").read_text()
    assert "macro  dockyard__project_generate_schema_name(c, n)" in (copy / "macros" / "s.sql").read_text()
    assert "generate_schema_name(custom_schema_name=none" in (copy / "macros" / schema.MACRO_FILE).read_text()
    assert "dockyard" not in (src / "macros" / "s.sql").read_text()
    plain = tmp_path / "plain"
    (plain / "models").mkdir(parents=True)
    (plain / "dbt_project.yml").write_text("name: p\n")
    assert not (shadow.make(plain, tmp_path / "copy2") / "macros").exists()  # the built-in macro is enough
