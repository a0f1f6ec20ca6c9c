"""Every API route is documented in docs/api.md (method and path)."""

from __future__ import annotations

import re
from pathlib import Path

from dockyard.api.app import api_routes

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _normal(path: str) -> str:
    """``{name}`` and ``{name:path}`` alike; dbt Cloud's routes as docs/api.md writes them,
    relative to their account (``v2/runs/{run_id}/``)."""
    path = re.sub(r"^/api/(v[23])/accounts/\{[^}]*\}/", r"\1/", path)
    return re.sub(r"\{[^}]*\}", "{}", path).rstrip("/")


def test_every_route_is_documented(api):
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    documented = {
        _normal(m) for m in re.findall(r"(/api/[A-Za-z0-9_./{}:-]+|/metrics\b|\bv[23]/[A-Za-z0-9_./{}:-]*)", text)
    }
    missing = sorted(
        f"{' '.join(sorted(methods - {'HEAD'}))} {path}"
        for path, methods, _ in api_routes(api)
        if _normal(path) not in documented and path not in ("/", "/api/openapi.json")
    )
    assert not missing, f"routes not documented in docs/*.md: {missing}"
