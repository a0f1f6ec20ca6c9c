"""retry_steps on constructed RunRecords: which steps come back, and how the failed one is
rewritten (positive --select when dbt finished the step, --exclude when it did not)."""

from __future__ import annotations

import shlex

import pytest
from tests.retry.helpers import failed_run, make_run, node

from dockyard.dbt.command import parse_command
from dockyard.domain import RunStatus, StepStatus
from dockyard.retry import has_default_selector, node_selector, retry_steps

FCT = "package:shop,fqn:fct_orders"
LTV = "package:shop,fqn:customer_ltv"
DIM = "package:shop,fqn:dim_customers"
STG = "package:shop,fqn:stg_orders"

RUN_NODES = [
    node("model.shop.stg_orders", "success"),
    node("model.shop.fct_orders", "error", "boom"),
    node("model.shop.customer_ltv", "skipped"),
    node("model.shop.dim_customers", "skipped"),
]


def args(command: str) -> list[str]:
    return shlex.split(command)


def option_values(command: str, flag: str) -> list[str]:
    tokens = args(command)
    assert tokens.count(flag) == 1, command
    i = tokens.index(flag) + 1
    out = []
    while i < len(tokens) and not tokens[i].startswith("-"):
        out.append(tokens[i])
        i += 1
    return out


@pytest.mark.parametrize(
    ("unique_id", "selector"),
    [
        ("model.shop.fct_orders", "package:shop,fqn:fct_orders"),
        ("model.shop.vm.v2", "package:shop,fqn:vm.v2"),
        ("seed.shop.raw_orders", "package:shop,fqn:raw_orders"),
        ("snapshot.shop.customers_snapshot", "package:shop,fqn:customers_snapshot"),
        ("test.shop.not_null_fct_orders_order_id.4e687af8d0", "package:shop,fqn:not_null_fct_orders_order_id"),
        ("test.shop.assert_no_orders_before_signup", "package:shop,fqn:assert_no_orders_before_signup"),
        ("source.shop.raw.raw_orders", "source:shop.raw.raw_orders"),
        ("unit_test.shop.customer_ltv.fct_orders", "unit_test:shop.fct_orders,fqn:customer_ltv"),
        ("model.dbt_utils_pkg.fct_orders", "package:dbt_utils_pkg,fqn:fct_orders"),
        ("operation.shop.shop-on-run-end-0", None),
    ],
)
def test_node_selectors(unique_id, selector):
    assert node_selector(unique_id) == selector


def test_unit_test_selector_without_indirect_selection():
    assert node_selector("unit_test.shop.customer_ltv.fct_orders", indirect_empty=True) == "unit_test:shop.fct_orders"


def test_completed_step_selects_exactly_the_nodes_that_did_not_complete():
    run = failed_run("dbt run", RUN_NODES)
    steps = retry_steps(run)
    assert [(s.index_in_original, s.how) for s in steps] == [(2, "select"), (3, "unchanged")]
    assert steps[0].command == f"dbt run --select {FCT} {LTV} {DIM}"
    assert steps[1].command == "dbt test"  # dbt seed (step 1) succeeded: not repeated


def test_existing_selection_is_replaced_and_other_options_kept():
    cmd = "dbt build -s tag:daily marts --exclude tag:slow --full-refresh --threads 8"
    steps = retry_steps(failed_run(cmd, RUN_NODES))
    tokens = args(steps[0].command)
    assert tokens[:2] == ["dbt", "build"] and "tag:daily" not in tokens and "-s" not in tokens
    assert option_values(steps[0].command, "--select") == [FCT, LTV, DIM]
    assert option_values(steps[0].command, "--exclude") == ["tag:slow"]
    assert "--full-refresh" in tokens and tokens[tokens.index("--threads") + 1] == "8"


@pytest.mark.parametrize(
    "cmd",
    [
        "dbt run -m marts",
        "dbt run --models marts",
        "dbt run --model=marts",
        "dbt run --select=marts staging",
        "dbt run --selector nightly",
        "dbt run --selector=nightly",
    ],
)
def test_every_spelling_of_the_selection_is_replaced(cmd):
    command = retry_steps(failed_run(cmd, RUN_NODES))[0].command
    assert args(command) == ["dbt", "run", "--select", FCT, LTV, DIM]


def test_warn_pass_and_no_op_count_as_completed_in_a_build():
    nodes = [
        node("seed.shop.raw_orders", "success"),
        node("test.shop.not_null_x.1", "pass"),
        node("test.shop.warned.2", "warn"),
        node("model.shop.eph", "no-op"),
        node("model.shop.fct_orders", "success"),
        node("test.shop.unique_fct.3", "fail", "Got 2 results"),
        node("model.shop.customer_ltv", "skipped"),
        node("test.shop.not_null_ltv.4", "skipped"),
        node("model.shop.big", "partial success"),
        node("operation.shop.shop-on-run-end-0", "success"),
    ]
    command = retry_steps(failed_run("dbt build", nodes))[0].command
    # the failed test of a model that succeeded comes back: a positive list, not an exclusion
    assert option_values(command, "--select") == [
        "package:shop,fqn:unique_fct",
        LTV,
        "package:shop,fqn:not_null_ltv",
        "package:shop,fqn:big",
    ]


def test_interrupted_step_excludes_what_completed():
    nodes = [node("model.shop.stg_orders", "success"), node("model.shop.fct_orders", "started")]
    for step_status, reason in [(StepStatus.ERROR, "worker_lost"), (StepStatus.CANCELLED, "timeout")]:
        run = failed_run("dbt run", nodes, exit_code=None, step_status=step_status, reason=reason)
        steps = retry_steps(run)
        assert steps[0].how == "exclude" and steps[0].command == f"dbt run --exclude {STG}"
        assert steps[1].command == "dbt test"
    crashed = failed_run("dbt run", nodes, exit_code=2)
    assert retry_steps(crashed)[0].command == f"dbt run --exclude {STG}"


@pytest.mark.parametrize(
    ("cmd", "kept"),
    [
        ("dbt run --exclude tag:slow", ["tag:slow"]),
        ("dbt run --exclude tag:slow marts.legacy --threads 4", ["tag:slow", "marts.legacy"]),
        ("dbt run --exclude=tag:slow", ["tag:slow"]),
        ("dbt run --exclude 'tag:slow tag:wip'", ["tag:slow", "tag:wip"]),
        ("dbt run --exclude tag:slow --select marts --exclude tag:wip", ["tag:slow", "tag:wip"]),
        (f"dbt run --exclude {STG}", []),  # already excluded: not repeated
    ],
)
def test_exclusion_is_merged_into_one_exclude(cmd, kept):
    nodes = [
        node("model.shop.stg_orders", "success"),
        node("model.shop.fct_orders", "success"),
        node("model.shop.customer_ltv", "started"),
    ]
    run = failed_run(cmd, nodes, exit_code=None, reason="worker_lost")
    command = retry_steps(run)[0].command
    assert option_values(command, "--exclude") == [*kept, STG, FCT]
    rest = [t for t in args(command) if t not in {"--exclude", *kept, STG, FCT}]
    original = [
        t
        for t in args(cmd)
        if t not in {"--exclude", *kept, STG} and not t.startswith("--exclude=") and t != "tag:slow tag:wip"
    ]
    assert rest == original  # --select marts, --threads 4 ... stay where they were


def test_interrupted_step_with_a_selector_or_a_default_selector_is_repeated_whole():
    nodes = [node("model.shop.stg_orders", "success"), node("model.shop.fct_orders", "started")]
    run = failed_run("dbt run --selector nightly", nodes, exit_code=None, reason="worker_lost")
    assert retry_steps(run)[0].command == "dbt run --selector nightly"
    assert retry_steps(run)[0].how == "whole"
    plain = failed_run("dbt run", nodes, exit_code=None, reason="worker_lost")
    assert retry_steps(plain, default_selector=True)[0].command == "dbt run"
    selected = failed_run("dbt run --select marts", nodes, exit_code=None, reason="worker_lost")
    assert retry_steps(selected, default_selector=True)[0].command == f"dbt run --select marts --exclude {STG}"


def test_step_failed_without_a_failed_node_is_repeated_whole():
    # e.g. a compilation error before any node ran, or an on-run-end hook that failed
    for nodes in ([], [node("model.shop.a", "success"), node("operation.shop.shop-on-run-end-0", "error")]):
        steps = retry_steps(failed_run("dbt run --select marts", nodes))
        assert steps[0].command == "dbt run --select marts" and steps[0].how == "whole"


@pytest.mark.parametrize(
    "cmd", ["dbt docs generate", "dbt run-operation grant_select", "dbt deps", "dbt compile", "dbt retry"]
)
def test_commands_without_node_selection_are_repeated_whole(cmd):
    run = failed_run(cmd, [node("model.shop.a", "success"), node("model.shop.b", "error", "x")])
    assert retry_steps(run)[0].command == cmd


def test_source_freshness_reruns_only_the_sources_that_did_not_pass():
    nodes = [
        node("source.shop.raw.raw_orders", "error", "stale"),
        node("source.shop.raw.raw_customers", "pass"),
        node("source.shop.raw.raw_products", "warn"),
    ]
    command = retry_steps(failed_run("dbt source freshness", nodes))[0].command
    assert command == "dbt source freshness --select source:shop.raw.raw_orders"


def test_unit_tests_follow_indirect_selection_empty():
    nodes = [node("unit_test.shop.customer_ltv.happy_path", "fail", "actual differs")]
    assert option_values(retry_steps(failed_run("dbt test", nodes))[0].command, "--select") == [
        "unit_test:shop.happy_path,fqn:customer_ltv"
    ]
    command = retry_steps(failed_run("dbt test --indirect-selection empty", nodes))[0].command
    assert option_values(command, "--select") == ["unit_test:shop.happy_path"]


def test_first_failed_step_and_later_steps():
    run = make_run(
        [
            ("dbt seed", StepStatus.SUCCESS, 0),
            ("dbt snapshot", StepStatus.SUCCESS, 0),
            ("dbt run", StepStatus.ERROR, 1),
            ("dbt test", StepStatus.SKIPPED, None),
            ("dbt docs generate", StepStatus.SKIPPED, None),
        ],
        [node("model.shop.a", "error", "x", step=3), node("seed.shop.s", "success", step=1)],
    )
    steps = retry_steps(run)
    assert [(s.index_in_original, s.command) for s in steps] == [
        (3, "dbt run --select package:shop,fqn:a"),
        (4, "dbt test"),
        (5, "dbt docs generate"),
    ]


def test_run_that_failed_before_any_step_is_repeated_from_its_first_step():
    run = make_run(
        [("dbt seed", StepStatus.SKIPPED, None), ("dbt run", StepStatus.SKIPPED, None)], reason="internal_error"
    )
    assert [s.command for s in retry_steps(run)] == ["dbt seed", "dbt run"]


def test_nothing_to_retry_when_every_step_succeeded():
    run = make_run([("dbt run", StepStatus.SUCCESS, 0)], status=RunStatus.SUCCESS, reason=None)
    assert retry_steps(run) == []


def test_failed_test_step_reruns_only_failed_tests():
    nodes = [
        node("test.shop.a.1", "pass", step=3),
        node("test.shop.b.2", "fail", "Got 1 result", step=3),
        node("test.shop.c", "error", "timeout expired", step=3),
    ]
    run = make_run(
        [
            ("dbt seed", StepStatus.SUCCESS, 0),
            ("dbt run", StepStatus.SUCCESS, 0),
            ("dbt test --select tag:daily", StepStatus.ERROR, 1),
        ],
        nodes,
    )
    assert [s.command for s in retry_steps(run)] == ["dbt test --select package:shop,fqn:b package:shop,fqn:c"]


def test_rewritten_commands_are_valid_job_commands():
    weird = [node("model.shop.my-model", "error", "x"), node("seed.shop.s p", "skipped")]
    for cmd in ["dbt run", "dbt build --select 'tag:a,tag:b' --vars '{x: 1}'"]:
        for exit_code in (1, None):
            for step in retry_steps(failed_run(cmd, weird, exit_code=exit_code)):
                parse_command(step.command)
    command = retry_steps(failed_run("dbt build --vars '{x: 1}'", RUN_NODES))[0].command
    assert args(command)[2:4] == ["--vars", "{x: 1}"]


def test_default_selector_detection(tmp_path):
    assert not has_default_selector(tmp_path)
    (tmp_path / "selectors.yml").write_text("selectors:\n  - name: nightly\n    definition: 'tag:nightly'\n")
    assert not has_default_selector(tmp_path)
    (tmp_path / "selectors.yml").write_text(
        "selectors:\n  - name: nightly\n    default: \"{{ target.name == 'prod' }}\"\n    definition: 'tag:x'\n"
    )
    assert has_default_selector(tmp_path)
    (tmp_path / "selectors.yml").write_text("selectors:\n  - name: n\n    default: true\n    definition: 'tag:x'\n")
    assert has_default_selector(tmp_path)
