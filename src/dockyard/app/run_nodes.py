"""The run page's node table (docs/ui.md, "The run page"): a page of a run's executed nodes,
filtered and sorted on the server, so a run of 2,000 nodes renders 100 rows, not 2,000.

Every choice is a query parameter of the run page (a deep link): ``q`` (text in the node's
name, unique id, type, status or message; case-insensitive), ``status`` (one status),
``sort`` (a column key, ``-`` first for descending; none: failed nodes first, then by step
and start, as the store orders them) and ``page``. ``GET /runs/{id}/nodes`` answers the same
table alone, for runpage.js to swap in without reloading the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dockyard.domain import FAILED_STATUSES, NodeResult

PAGE_ROWS = 100
MAX_QUERY = 200  # characters of ``q`` kept


def _text(value: str | None) -> str:
    return (value or "").lower()


#: column key -> the value it sorts by (unknown numbers sort first, as the table did)
SORTS: dict[str, Callable[[NodeResult], Any]] = {
    "node": lambda n: _text(n.name or n.unique_id),
    "type": lambda n: _text(n.resource_type),
    "step": lambda n: n.step_index or 0,
    "status": lambda n: _text(n.status),
    "started": lambda n: n.started_at.timestamp() if n.started_at else 0.0,
    "time": lambda n: n.execution_time_s if n.execution_time_s is not None else -1.0,
    "rows": lambda n: n.rows_affected if n.rows_affected is not None else -1,
    "message": lambda n: _text(n.message),
}
DESCENDING_FIRST = frozenset({"time", "rows"})  # the slowest, the largest first


def ordered(nodes: Sequence[NodeResult]) -> list[NodeResult]:
    """Failed nodes first, then the others, each in the store's order (step, start)."""
    failed = [n for n in nodes if n.status in FAILED_STATUSES]
    return failed + [n for n in nodes if n.status not in FAILED_STATUSES]


@dataclass
class NodeTable:
    run_id: int
    rows: list[NodeResult]  # the page's rows
    total: int  # the run's executed nodes
    matched: int  # of them, those the filters keep
    page: int
    pages: int
    first: int  # 1-based number of the page's first row (0: none)
    q: str = ""
    status: str = ""
    sort: str = ""
    statuses: list[tuple[str, int]] = field(default_factory=list)  # (status, count) for the filter

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.status)

    def query(self, **changes: Any) -> str:
        """The query string of this table with ``changes`` (empty values left out)."""
        values = {"q": self.q, "status": self.status, "sort": self.sort, "page": self.page} | changes
        if values.get("page") == 1:
            values["page"] = None
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def link(self, **changes: Any) -> str:
        """``?<query>#nodes-section``: this run's page with ``changes`` (no JavaScript needed)."""
        q = self.query(**changes)
        return (f"?{q}" if q else f"/runs/{self.run_id}") + "#nodes-section"

    def sort_link(self, key: str) -> str:
        return self.link(sort=self.next_sort(key), page=None)

    def next_sort(self, key: str) -> str:
        if self.sort == key:
            return f"-{key}"
        if self.sort == f"-{key}":
            return key
        return f"-{key}" if key in DESCENDING_FIRST else key

    def aria_sort(self, key: str) -> str | None:
        if self.sort == key:
            return "ascending"
        if self.sort == f"-{key}":
            return "descending"
        return None


def node_table(run_id: int, nodes: Sequence[NodeResult], params: dict[str, str], *, per_page: int = PAGE_ROWS):
    """The page of ``nodes`` (a run's executed nodes, in the store's order) that ``params``
    ask for; unknown sorts and statuses are ignored, a page past the end shows the last."""
    q = (params.get("q") or "").strip()[:MAX_QUERY]
    status = (params.get("status") or "").strip()
    sort = (params.get("sort") or "").strip()
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.status] = counts.get(n.status, 0) + 1
    if status not in counts:
        status = ""
    if sort.lstrip("-") not in SORTS:
        sort = ""
    rows = ordered(nodes)
    if status:
        rows = [n for n in rows if n.status == status]
    if q:
        needle = q.lower()
        rows = [
            n
            for n in rows
            if any(needle in _text(v) for v in (n.name, n.unique_id, n.resource_type, n.status, n.message))
        ]
    if sort:
        rows.sort(key=SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))  # stable: ties keep the order
    pages = max(1, math.ceil(len(rows) / per_page))
    try:
        page = int(params.get("page") or 1)
    except ValueError:
        page = 1
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    shown = rows[start : start + per_page]
    return NodeTable(
        run_id=run_id,
        rows=shown,
        total=len(nodes),
        matched=len(rows),
        page=page,
        pages=pages,
        first=start + 1 if shown else 0,
        q=q,
        status=status,
        sort=sort,
        statuses=sorted(counts.items()),
    )
