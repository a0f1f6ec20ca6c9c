"""The pull-request summary: content, escaping, failures first, the character limit."""

from __future__ import annotations

import re

from dockyard.ci.summary import GITHUB_LIMIT, marker, md, render


def report(**extra) -> dict:
    base = {
        "pr": 12,
        "provider": "github",
        "environment": "ci",
        "base_environment": "prod",
        "base_run_id": 41,
        "base_source": "store",
        "schema": "dbt_ci_pr_12",
        "sha": "0123456789abcdef0123",
        "selected": [
            {"unique_id": "model.shop.orders", "resource_type": "model", "reason": "body changed"},
            {"unique_id": "model.shop.revenue", "resource_type": "model", "reason": "downstream of model.shop.orders"},
            {"unique_id": "model.shop.ltv", "resource_type": "model", "reason": "downstream of model.shop.orders"},
        ],
        "deleted": [{"unique_id": "model.shop.old_orders", "resource_type": "model"}],
        "exposures": ["exposure.shop.weekly_kpis"],
        "base_timings": {"model.shop.orders": 2.0},
        "comparisons": [
            {
                "unique_id": "model.shop.orders",
                "rows_pr": 1200,
                "rows_base": 1000,
                "columns_added": ["discount"],
                "columns_removed": ["legacy_id"],
                "columns_changed": [],
            }
        ],
        "status": "error",
        "run_id": 57,
        "nodes": [
            {
                "unique_id": "model.shop.orders",
                "name": "orders",
                "resource_type": "model",
                "status": "success",
                "execution_time_s": 3.0,
            },
            {
                "unique_id": "model.shop.revenue",
                "name": "revenue",
                "resource_type": "model",
                "status": "success",
                "execution_time_s": 0.5,
            },
            {"unique_id": "test.shop.a_passes", "name": "a_passes", "resource_type": "test", "status": "pass"},
            {
                "unique_id": "test.shop.z_fails",
                "name": "z_fails",
                "resource_type": "test",
                "status": "fail",
                "message": "Got 3 results, configured to fail if != 0",
            },
        ],
    }
    return {**base, **extra}


def test_summary_says_what_happened():
    text = render(report(), link="https://dockyard.example/runs/57")
    assert text.startswith(marker("ci")) and "<!-- dockyard-ci:ci -->" in text
    assert "failed" in text.splitlines()[1] and "PR #12" in text
    assert "dbt\\_ci\\_pr\\_12" in text and "run 41 of prod" in text
    assert "| orders | model | body changed |" in text
    assert "Downstream (2)" in text and "1 exposures affected" in text and "weekly\\_kpis" in text
    # failures first, with their message
    tests = text[text.index("#### Tests (1 failed, 0 warned, 1 passed)") :]
    assert "z\\_fails" in tests and "a\\_passes" not in tests and "Got 3 results" in tests  # passes counted
    # timings slowest first against the base run, with the change
    assert "| orders | 3.00 s | 2.00 s | +1.00 s (+50%) |" in text
    assert text.index("| orders | 3.00 s") < text.index("| revenue | 0.50 s")
    assert "| orders | 1,200 | 1,000 | +discount, −legacy\\_id |" in text
    assert "old\\_orders (model): not built" in text
    assert "passed" in render(report(status="success")).splitlines()[1]
    assert "cancelled" in render(report(status="cancelled")).splitlines()[1]
    extra = report()["selected"] + [
        {"unique_id": "seed.shop.raw", "resource_type": "seed", "reason": "selected by dbt"}
    ]
    text = render(report(selected=extra))
    assert "**1 changed**, 3 downstream" in text and "| raw | seed | selected by dbt |" in text
    assert "given by path" in render(report(base_run_id=None, base_source="path"))
    assert "no base state of prod" in render(report(base_run_id=None, base_source="none"))
    assert "run 41 of prod on the server" in render(report(base_source="server"))
    broken = [{"unique_id": "model.shop.orders", "resource_type": "model", "status": "error", "message": "syntax"}]
    text = render(report(nodes=None, results=broken))  # app.ci.report's key
    assert "#### Errors (1)" in text and "| orders | error | syntax |" in text


def test_user_strings_cannot_inject_markup_or_mentions():
    evil = "<script>alert(1)</script> @octocat `rm -rf` [x](http://evil) | *b* <!-- x --> #1"
    nodes = [{"unique_id": "test.shop.t", "name": evil, "resource_type": "test", "status": "error", "message": evil}]
    text = render(report(nodes=nodes, schema=evil, selected=[{"unique_id": f"model.shop.{evil}", "reason": evil}]))
    body = text.split("\n", 1)[1]  # after our own marker
    assert "<" not in body and ">" not in body.replace("&gt;", "")
    assert "@octocat" not in body and "@\u200boctocat" in body
    assert "`" not in body.replace("\\`", "")
    assert "](" not in body.replace("\\]\\(", "")
    # every table row keeps its column count (a | in a name does not split a cell)
    for line in body.splitlines():
        if line.startswith("| ") and "test" in line:
            assert len(re.findall(r"(?<!\\)\|", line)) == 4
    assert md("a\nb\x1b[31m") == "a b [31m".replace("[", "\\[")


def test_truncated_under_the_limit_with_a_link_failures_kept():
    nodes = [
        {"unique_id": f"test.shop.t{i:05d}.abc", "resource_type": "test", "status": "warn", "message": "w " * 40}
        for i in range(4000)
    ] + [
        {
            "unique_id": "test.shop.zz_broken",
            "name": "zz_broken",
            "resource_type": "test",
            "status": "fail",
            "message": "boom " * 200,
        }
    ]
    selected = [
        {"unique_id": f"model.shop.m{i:05d}", "resource_type": "model", "reason": "downstream of model.shop.orders"}
        for i in range(3000)
    ]
    big = report(nodes=nodes, selected=selected)
    full = render(big, limit=10**9)
    assert len(full) > GITHUB_LIMIT
    text = render(big, link="https://dockyard.example/runs/57")
    assert len(text) <= GITHUB_LIMIT and text.startswith(marker("ci"))
    assert "zz\\_broken" in text  # the failure survives: failures are listed first
    assert re.search(r"… \d+ more, see https://dockyard\.example/runs/57", text)
    tiny = render(big, limit=2000)
    assert len(tiny) <= 2000 and tiny.startswith(marker("ci"))
    assert render(big, limit=10**9, link="javascript:alert(1)") == full  # not a URL: not linked
