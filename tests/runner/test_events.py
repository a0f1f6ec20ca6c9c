"""Event → NodeResult conversion on event dicts shaped as dbt 1.11 emits them."""

from datetime import UTC, datetime

from dockyard.dbt.events import (
    NODE_EVENTS,
    NodeTracker,
    node_update,
    parse_ts,
    results_from_run_results,
    results_from_sources,
)

NODE_INFO = {
    "materialized": "table",
    "meta": {},
    "node_checksum": "abc",
    "node_name": "stg_numbers",
    "node_path": "stg_numbers.sql",
    "resource_type": "model",
    "unique_id": "model.mini.stg_numbers",
    "node_relation": {
        "alias": "stg_numbers",
        "database": "mini",
        "schema": "main",
        "relation_name": '"mini"."main"."stg_numbers"',
    },
}


def ev(event_name, level="info", **data):
    return {"info": {"name": event_name, "msg": "", "level": level, "ts": "2026-11-29T06:14:46.701764Z"}, "data": data}


def info(**over):
    return {**NODE_INFO, **over}


def test_parse_ts():
    assert parse_ts("2026-11-29T06:14:46.540922") == datetime(2026, 11, 29, 6, 14, 46, 540922, tzinfo=UTC)
    assert parse_ts("2026-11-29T06:14:46.540922Z") == datetime(2026, 11, 29, 6, 14, 46, 540922, tzinfo=UTC)
    assert parse_ts("") is None and parse_ts(None) is None and parse_ts("garbage") is None


def test_start_then_finished():
    t = NodeTracker()
    t.apply(ev("NodeStart", "debug", node_info=info(node_status="started", node_started_at="2026-11-29T06:14:46.5")))
    [n] = t.drain()
    assert (n.unique_id, n.name, n.resource_type, n.status) == (
        "model.mini.stg_numbers",
        "stg_numbers",
        "model",
        "started",
    )
    assert n.started_at == datetime(2026, 11, 29, 6, 14, 46, 500000, tzinfo=UTC)

    t.apply(
        ev(
            "NodeFinished",
            "debug",
            node_info=info(
                node_status="success", node_started_at="2026-11-29T06:14:46.5", node_finished_at="2026-11-29T06:14:47.0"
            ),
            run_result={
                "status": "success",
                "message": "SELECT 5",
                "thread": "Thread-1 (worker)",
                "execution_time": 0.42,
                "num_failures": 0,
                "timing_info": [
                    {
                        "name": "compile",
                        "started_at": "2026-11-29T06:14:46.6Z",
                        "completed_at": "2026-11-29T06:14:46.7Z",
                    },
                    {
                        "name": "execute",
                        "started_at": "2026-11-29T06:14:46.7Z",
                        "completed_at": "2026-11-29T06:14:46.9Z",
                    },
                ],
                # protobuf Struct: numbers arrive as floats
                "adapter_response": {"_message": "SELECT 5", "code": "SELECT", "rows_affected": 5.0},
            },
        )
    )
    [n] = t.drain()
    assert n.status == "success"
    assert n.rows_affected == 5 and isinstance(n.rows_affected, int)
    assert n.adapter_response == {"_message": "SELECT 5", "code": "SELECT", "rows_affected": 5}
    assert n.message == "SELECT 5"
    assert n.thread == "Thread-1 (worker)"
    assert n.execution_time_s == 0.42
    assert n.started_at == datetime(2026, 11, 29, 6, 14, 46, 600000, tzinfo=UTC)
    assert n.finished_at == datetime(2026, 11, 29, 6, 14, 46, 900000, tzinfo=UTC)
    # a late start line does not take the node back to "started"
    t.apply(ev("LogStartLine", node_info=info(node_status="started"), description="x", index=1, total=1))
    assert t.get("model.mini.stg_numbers").status == "success"


def test_model_result_status_comes_from_node_info():
    # LogModelResult.status is the adapter's message ("OK"), node_info.node_status the status
    u = node_update(
        ev(
            "LogModelResult",
            node_info=info(node_status="success", node_finished_at="2026-11-29T06:14:47"),
            status="OK",
            execution_time=0.1,
            description="",
            index=1,
            total=1,
        )
    )
    assert u.status == "success" and u.execution_time_s == 0.1
    assert u.finished_at == datetime(2026, 11, 29, 6, 14, 47, tzinfo=UTC)


def test_test_and_freshness_results():
    t_info = info(unique_id="test.mini.warn_x", node_name="warn_x", resource_type="test", node_status="warn")
    assert (
        node_update(
            ev("LogTestResult", node_info=t_info, name="warn_x", status="warn", num_failures=5, execution_time=0.01)
        ).status
        == "warn"
    )
    s_info = info(unique_id="source.mini.raw.stale", node_name="stale", resource_type="source")
    u = node_update(
        ev(
            "LogFreshnessResult",
            node_info=s_info,
            status="runtime error",
            source_name="raw",
            table_name="stale",
            execution_time=0.02,
        )
    )
    assert (u.unique_id, u.status) == ("source.mini.raw.stale", "runtime error")


def test_skips_and_failures():
    t = NodeTracker()
    t.apply(
        ev(
            "SkippingDetails",
            node_info=info(
                unique_id="model.mini.after_bad", node_name="after_bad", node_status="skipped", node_finished_at=""
            ),
            resource_type="model",
            schema="main",
            node_name="after_bad",
            index=4,
            total=9,
        )
    )
    t.apply(
        ev(
            "MarkSkippedChildren",
            "debug",
            unique_id="model.mini.bad_model",
            status="error",
            run_result={
                "status": "error",
                "message": "Catalog Error: no table",
                "timing_info": [],
                "adapter_response": {},
            },
        )
    )
    t.apply(ev("GenericExceptionOnRun", "error", unique_id="model.mini.boom", exc="kaput", build_path=""))
    nodes = {n.unique_id: n for n in t.drain()}
    assert nodes["model.mini.after_bad"].status == "skipped"
    assert nodes["model.mini.after_bad"].finished_at is None
    bad = nodes["model.mini.bad_model"]
    assert (bad.status, bad.message, bad.name, bad.resource_type) == (
        "error",
        "Catalog Error: no table",
        "bad_model",
        "model",
    )
    assert nodes["model.mini.boom"].status == "error"
    assert nodes["model.mini.boom"].message == "kaput"


def test_unrelated_events_ignored():
    assert node_update(ev("MainReportVersion", version="1.11")) is None
    assert node_update(ev("LogStartLine", description="x")) is None  # no node_info
    assert "NodeFinished" in NODE_EVENTS and "MainReportVersion" not in NODE_EVENTS


def test_drain_returns_only_changes():
    t = NodeTracker()
    e = ev("LogStartLine", node_info=info(node_status="started"), description="", index=1, total=1)
    t.apply(e)
    assert len(t.drain()) == 1
    t.apply(e)
    assert t.drain() == [] and not t.dirty


RUN_RESULTS = {
    "results": [
        {
            "status": "error",
            "unique_id": "model.mini.bad_model",
            "thread_id": "Thread-1 (worker)",
            "execution_time": 0.17,
            "adapter_response": {},
            "message": "Runtime Error in model bad_model",
            "timing": [
                {
                    "name": "compile",
                    "started_at": "2026-11-29T06:14:46.527931Z",
                    "completed_at": "2026-11-29T06:14:46.557226Z",
                },
                {
                    "name": "execute",
                    "started_at": "2026-11-29T06:14:46.557644Z",
                    "completed_at": "2026-11-29T06:14:46.688451Z",
                },
            ],
        },
        {
            "status": "success",
            "unique_id": "model.mini.stg_numbers",
            "thread_id": "Thread-2 (worker)",
            "execution_time": 0.03,
            "adapter_response": {"_message": "SELECT 5", "rows_affected": 5},
            "message": "SELECT 5",
            "timing": [],
        },
        {
            "status": "skipped",
            "unique_id": "model.mini.after_bad",
            "thread_id": "Thread-2 (worker)",
            "execution_time": 0,
            "adapter_response": {},
            "message": None,
            "timing": [],
        },
        {
            "status": "warn",
            "unique_id": "test.mini.not_null_x.413ab6c391",
            "thread_id": "T",
            "execution_time": 0.01,
            "adapter_response": {"_message": "OK"},
            "message": "Got 5 results, configured to warn if != 0",
            "failures": 5,
            "timing": [],
        },
    ]
}


def test_results_from_run_results_with_manifest():
    manifest = {
        "nodes": {
            "model.mini.stg_numbers": {
                "name": "stg_numbers",
                "resource_type": "model",
                "compiled_path": "target/compiled/mini/models/stg_numbers.sql",
            }
        }
    }
    nodes = {n.unique_id: n for n in results_from_run_results(RUN_RESULTS, manifest)}
    bad = nodes["model.mini.bad_model"]
    assert bad.status == "error" and bad.message.startswith("Runtime Error")
    assert bad.started_at == datetime(2026, 11, 29, 6, 14, 46, 527931, tzinfo=UTC)
    assert bad.finished_at == datetime(2026, 11, 29, 6, 14, 46, 688451, tzinfo=UTC)
    assert bad.thread == "Thread-1 (worker)" and bad.adapter_response is None
    stg = nodes["model.mini.stg_numbers"]
    assert stg.rows_affected == 5
    assert stg.compiled_path == "target/compiled/mini/models/stg_numbers.sql"
    test = nodes["test.mini.not_null_x.413ab6c391"]
    assert (test.name, test.resource_type, test.status) == ("not_null_x", "test", "warn")
    assert nodes["model.mini.after_bad"].message is None


def test_reconcile_overrides_event_state():
    t = NodeTracker()
    t.apply(
        ev(
            "LogStartLine",
            node_info=info(
                unique_id="model.mini.bad_model",
                node_name="bad_model",
                node_status="started",
                node_started_at="2026-11-29T06:14:46.5",
            ),
            description="",
            index=1,
            total=1,
        )
    )
    t.drain()
    t.reconcile(RUN_RESULTS)
    nodes = {n.unique_id: n for n in t.drain()}
    assert len(nodes) == 4
    assert nodes["model.mini.bad_model"].status == "error"
    assert nodes["model.mini.bad_model"].execution_time_s == 0.17


def test_results_from_sources():
    sources = {
        "results": [
            {
                "unique_id": "source.mini.raw.events",
                "status": "warn",
                "max_loaded_at": "x",
                "max_loaded_at_time_ago_in_s": 7203.3,
                "execution_time": 0.02,
                "thread_id": "T",
                "adapter_response": {"_message": "OK"},
                "timing": [],
            },
            {"unique_id": "source.mini.raw.gone", "status": "runtime error", "error": "no such table", "timing": []},
        ]
    }
    nodes = {n.unique_id: n for n in results_from_sources(sources)}
    ev_ = nodes["source.mini.raw.events"]
    assert (ev_.name, ev_.resource_type, ev_.status) == ("raw.events", "source", "warn")
    assert "7203 s ago" in ev_.message
    assert nodes["source.mini.raw.gone"].message == "no such table"


def test_executes_nodes_by_command_and_by_run_results_which():
    from dockyard.dbt.command import executes_nodes

    for which in ("run", "build", "test", "seed", "snapshot", "source", "freshness", "clone", "run-operation", "retry"):
        assert executes_nodes(which), which
    for which in ("compile", "docs", "generate", "ls", "list", "show", "parse"):
        assert not executes_nodes(which), which


def test_a_compile_only_step_records_success_as_compiled_and_keeps_errors():
    t = NodeTracker(executes=False)
    t.apply(ev("NodeFinished", level="debug", node_info=info(node_status="success"), run_result={"status": "success"}))
    assert t.get("model.mini.stg_numbers").status == "compiled"
    t.reconcile(
        {
            "args": {"which": "generate"},
            "results": [
                {"unique_id": "model.mini.stg_numbers", "status": "success"},
                {"unique_id": "model.mini.bad_model", "status": "error", "message": "Compilation Error"},
            ],
        }
    )
    assert {n.unique_id: n.status for n in t.all()} == {
        "model.mini.stg_numbers": "compiled",
        "model.mini.bad_model": "error",
    }


def test_run_results_which_decides_over_the_step_command():
    # `dbt retry` after a compile: the run_results.json says what actually ran
    t = NodeTracker(executes=True)
    t.reconcile({"args": {"which": "compile"}, "results": [{"unique_id": "model.mini.a", "status": "success"}]})
    assert t.get("model.mini.a").status == "compiled"
    t = NodeTracker(executes=False)
    t.reconcile({"args": {"which": "run"}, "results": [{"unique_id": "model.mini.a", "status": "success"}]})
    assert t.get("model.mini.a").status == "success"
