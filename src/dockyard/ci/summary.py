"""The pull-request summary: markdown from a CI run's report (docs/ci.md, "The pull-request summary").

:func:`render` takes the report of ``app.ci.report(run_id)``: the run's ``ci.json``
(contracts: ``pr``, ``environment``, ``base_environment``, ``base_run_id``, ``base_source``,
``schema``, ``sha``, ``selected``, ``deleted``, ``exposures``, ``base_timings``,
``comparisons``) merged with the run's outcome: ``status`` (or ``run.status``), ``run_id``
(or ``run.id``) and ``results`` (or ``nodes``, ``run.nodes``: the run's node results:
``unique_id``, ``resource_type``, ``status``, ``execution_time_s``, ``message``, and
``name`` when known).

Every string that comes from the project or the warehouse (node names, messages, schema
names) is escaped (:func:`md`): no HTML, no ``@mention``, no code span or link can be made by
a model name or a test message. The text never exceeds ``limit`` characters: the tables lose
rows (failures are listed first, so they stay) and each says how many it left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dockyard.text import CONTROL

GITHUB_LIMIT = 65536  # characters of an issue comment
MESSAGE_CHARS = 300  # of one test message in the table
FAILED = {"error", "fail", "runtime error"}
SHOWN = FAILED | {"warn"}  # statuses whose message the table shows
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~])")  # what can start markup mid-line


def marker(env: str) -> str:
    """The hidden line that finds this environment's comment again on the next push."""
    return f"<!-- dockyard-ci:{re.sub(r'[^A-Za-z0-9_.-]', '_', str(env))} -->"


def md(value: object, *, limit: int | None = None) -> str:
    """``value`` as inert markdown text: control characters and newlines become spaces,
    ``&``/``<``/``>`` HTML entities, markdown punctuation backslash-escaped, and ``@`` followed by
    a zero-width space (GitHub and GitLab do not mention ``@\u200buser``)."""
    text = CONTROL.sub(" ", str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MD_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;").replace("<", "&lt;"))
    return text.replace(">", "&gt;").replace("@", "@\u200b")


def _status(report: dict) -> str:
    run = report.get("run") or {}
    return str(report.get("status") or run.get("status") or "unknown")


def _nodes(report: dict) -> list[dict]:
    run = report.get("run") or {}
    for nodes in (report.get("nodes"), report.get("results"), run.get("nodes")):
        if nodes is not None:
            return list(nodes)
    return []


def kind(selected: dict) -> str:
    """``changed`` (a reason of its own), ``downstream`` (``downstream of X``), or ``dbt`` (dbt
    selected it beyond dockyard's reasons: ``selected by dbt``), listed with the downstream."""
    reason = str(selected.get("reason", ""))
    if reason.startswith("downstream of"):
        return "downstream"
    return "dbt" if reason == "selected by dbt" else "changed"


def _short(unique_id: str) -> str:
    """``model.shop.orders`` -> ``orders``, ``test.shop.unique_orders_id.1a2b3c`` ->
    ``unique_orders_id`` (the name the author knows)."""
    parts = str(unique_id).split(".")
    if len(parts) > 3 and parts[0] in ("test", "unit_test"):
        return parts[2]
    return ".".join(parts[2:]) if len(parts) > 2 else str(unique_id)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _delta(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "-"
    diff = new - old
    pct = f" ({diff / old:+.0%})" if old > 0 else ""
    return f"{diff:+.2f} s{pct}"


class _Section:
    """A heading, table header lines and rows: rows are what truncation drops."""

    def __init__(self, title: str, header: list[str], rows: list[str], intro: str = ""):
        self.title, self.header, self.rows, self.intro = title, header, rows, intro

    def render(self, cap: int | None, link: str | None) -> str:
        if not self.rows and not self.intro:
            return ""
        shown = self.rows if cap is None else self.rows[:cap]
        lines = [f"#### {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        if shown:
            lines += self.header + shown
        left = len(self.rows) - len(shown)
        if left:
            more = f"… {left} more" + (f", see {link}" if link else "")
            lines += ["", more] if shown else [more]
        return "\n".join(lines) + "\n"


def _sections(report: dict) -> list[_Section]:
    selected = list(report.get("selected") or [])
    nodes = _nodes(report)
    groups = {"changed": [], "downstream": [], "dbt": []}
    for item in selected:
        groups[kind(item)].append(item)
    changed, downstream = groups["changed"], groups["downstream"] + groups["dbt"]
    broken = [
        n for n in nodes if n.get("resource_type") not in ("test", "unit_test") and str(n.get("status")) in FAILED
    ]
    out = [
        _Section(
            f"Errors ({len(broken)})",
            ["| node | status | message |", "|---|---|---|"],
            [
                f"| {md(n.get('name') or _short(n.get('unique_id', '')))} | {md(n.get('status', ''))} | "
                f"{md(n.get('message') or '', limit=MESSAGE_CHARS)} |"
                for n in broken
            ],
        ),
        _Section(
            f"Changed ({len(changed)})",
            ["| node | type | why |", "|---|---|---|"],
            [
                f"| {md(_short(s['unique_id']))} | {md(s.get('resource_type', ''))} | {md(s.get('reason', ''))} |"
                for s in changed
            ],
        ),
        _Section(
            f"Downstream ({len(downstream)})",
            ["| node | type | why |", "|---|---|---|"],
            [
                f"| {md(_short(s['unique_id']))} | {md(s.get('resource_type', ''))} | {md(s.get('reason', ''))} |"
                for s in downstream
            ],
        ),
    ]
    exposures = list(report.get("exposures") or [])
    out.append(_Section(f"Exposures affected ({len(exposures)})", [], [f"- {md(_short(e))}" for e in exposures]))
    tests = [n for n in nodes if n.get("resource_type") in ("test", "unit_test")]
    tests.sort(
        key=lambda n: (str(n.get("status")) not in FAILED, str(n.get("status")) != "warn", n.get("unique_id", ""))
    )
    failed = sum(1 for n in tests if str(n.get("status")) in FAILED)
    warned = sum(1 for n in tests if str(n.get("status")) == "warn")
    passed = len(tests) - failed - warned
    listed = [n for n in tests if str(n.get("status")) in SHOWN]  # passing tests are counted, not listed
    out.append(
        _Section(
            f"Tests ({failed} failed, {warned} warned, {passed} passed)",
            ["| test | status | message |", "|---|---|---|"],
            [
                f"| {md(n.get('name') or _short(n.get('unique_id', '')))} | {md(n.get('status', ''))} | "
                f"{md(n.get('message') or '', limit=MESSAGE_CHARS)} |"
                for n in listed
            ],
            intro="" if listed or not tests else f"All {passed} passed.",
        )
    )
    base_timings = report.get("base_timings") or {}
    timed = [n for n in nodes if n.get("resource_type") not in ("test", "unit_test") and n.get("execution_time_s")]
    timed.sort(key=lambda n: -(n.get("execution_time_s") or 0))
    base_env = report.get("base_environment") or "base"
    out.append(
        _Section(
            f"Timings against {md(base_env)}",
            [f"| node | this PR | {md(base_env)} | change |", "|---|---:|---:|---:|"],
            [
                f"| {md(_short(n['unique_id']))} | {_secs(n.get('execution_time_s'))} | "
                f"{_secs(base_timings.get(n['unique_id']))} | "
                f"{_delta(n.get('execution_time_s'), base_timings.get(n['unique_id']))} |"
                for n in timed
            ],
        )
    )
    out.append(
        _Section(
            f"Rows and columns against {md(base_env)}",
            [f"| model | rows (PR) | rows ({md(base_env)}) | columns |", "|---|---:|---:|---|"],
            [_comparison_row(c) for c in report.get("comparisons") or []],
        )
    )
    deleted = list(report.get("deleted") or [])
    out.append(
        _Section(
            f"Deleted ({len(deleted)})",
            [],
            [f"- {md(_short(d['unique_id']))} ({md(d.get('resource_type', ''))}): not built" for d in deleted],
        )
    )
    return out


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _comparison_row(c: dict) -> str:
    changes = [
        *(f"+{md(x)}" for x in c.get("columns_added") or []),
        *(f"−{md(x)}" for x in c.get("columns_removed") or []),
        *(f"~{md(x)}" for x in c.get("columns_changed") or []),
    ]
    return (
        f"| {md(_short(c.get('unique_id', '')))} | {_count(c.get('rows_pr'))} | {_count(c.get('rows_base'))} | "
        f"{', '.join(changes) or 'unchanged'} |"
    )


def _header(report: dict, link: str | None) -> str:
    status = _status(report)
    icon, word = {
        "success": ("✅", "passed"),
        "cancelled": ("⚪", "cancelled"),
        "queued": ("⏳", "queued"),
        "starting": ("⏳", "starting"),
        "running": ("⏳", "running"),
    }.get(status, ("❌", "failed"))
    run = report.get("run") or {}
    run_id = report.get("run_id") or run.get("id")
    title = f"### {icon} dockyard CI {word}"
    if report.get("pr") is not None:
        title += f": PR #{md(report['pr'])}"
    facts = []
    if report.get("schema"):
        facts.append(f"schema **{md(report['schema'])}**")
    base_env = md(report.get("base_environment") or "base")
    source = report.get("base_source")
    if report.get("base_run_id"):
        where = " on the server" if source == "server" else ""
        facts.append(f"base: run {md(report['base_run_id'])} of {base_env}{where}")
    elif source == "path":
        facts.append(f"base: a manifest of {base_env} given by path")
    elif source == "none":
        facts.append(f"no base state of {base_env}: everything was built")
    if report.get("sha"):
        facts.append(f"commit {md(str(report['sha'])[:12])}")
    if run_id:
        facts.append(f"run [{md(run_id)}]({link})" if link else f"run {md(run_id)}")
    selected = list(report.get("selected") or [])
    down = sum(1 for s in selected if kind(s) != "changed")
    counts = (
        f"**{len(selected) - down} changed**, {down} downstream, "
        f"{len(report.get('exposures') or [])} exposures affected, {len(report.get('deleted') or [])} deleted"
    )
    return "\n".join([title, "", " · ".join(facts), "", counts, ""]) + "\n"


def render(report: dict, *, limit: int = GITHUB_LIMIT, link: str | None = None) -> str:
    """The markdown summary of a CI run (see the module doc); at most ``limit`` characters."""
    if link is not None and not re.match(r"^https?://[^\s<>()\[\]]+$", link):
        link = None  # only a plain http(s) URL is put into the markdown
    head = marker(report.get("environment") or "ci") + "\n" + _header(report, link)
    sections = _sections(report)

    def text(cap: int | None) -> str:
        return head + "\n".join(s for s in (x.render(cap, link) for x in sections) if s)

    full = text(None)
    if len(full) <= limit:
        return full
    return _fit(text, max(len(s.rows) for s in sections), limit)


def _fit(text: Callable[[int | None], str], most: int, limit: int) -> str:
    """The largest per-table row cap whose text fits (binary search), else the text cut."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(text(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    fitted = text(lo)
    if len(fitted) <= limit:
        return fitted
    return fitted[: max(0, limit - 2)] + "…\n"
