"""The hosted dbt docs: ``/docs`` (environments with docs) and ``/docs/{environment}/{path}``,
the site of the environment's latest successful run with ``dbt docs generate`` (docs/ui.md,
"Hosted docs").

dbt's ``index.html`` renders model descriptions as HTML, so the site is served with
``sandbox allow-scripts`` and no ``allow-same-origin``: its JavaScript runs in an opaque origin
and can neither read our cookies nor call our routes with them. Since such a page cannot
fetch ``manifest.json`` with the session, ``index.html`` is served with the manifest and
catalog inlined where dbt's ``--static`` puts them (every ``<`` of the JSON escaped, so no
description ends the script element)."""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from dockyard import files
from dockyard.app.lineage_pages import LineagePages
from dockyard.errors import NotFoundError
from dockyard.ui.auth import ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)
# what dbt's index.html needs: its inline scripts and styles, AngularJS's expression
# compiler (new Function), data: images and fonts; nothing to connect to but 'self'
DOCS_CSP = (
    "sandbox allow-scripts; default-src 'self'; script-src 'self' {scripts} 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
INLINE = ((b'"MANIFEST.JSON INLINE DATA"', "manifest.json"), (b'"CATALOG.JSON INLINE DATA"', "catalog.json"))
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


def pages(request: Request) -> LineagePages:
    app = request.app.state.dockyard
    app.refresh()
    return LineagePages(app)


@router.get("/docs")
def docs_index(request: Request, viewer: ViewerDep):
    lp = pages(request)
    return render(request, "docs_index.html", rows=lp.docs_index())


@router.get("/docs/{environment}")
async def docs_home(request: Request, environment: str, viewer: ViewerDep):
    """The docs' index.html (``/docs/prod/`` arrives here too: the API drops a trailing slash)."""
    return await docs_file(request, environment, "index.html", viewer)


def _script_hashes(page: bytes) -> str:
    """CSP sources for exactly the page's own inline scripts (``'sha256-...'``), so markup a
    model description smuggles into the rendered docs (an ``onerror`` handler, a script
    element) is refused by the browser. Scanned as HTML tokenizes: a script's text ends at the
    first ``</script``."""
    out, at, lower = [], 0, page.lower()
    while (start := lower.find(b"<script", at)) != -1:
        body = lower.find(b">", start) + 1
        end = lower.find(b"</script", body)
        if body == 0 or end == -1:
            break
        if page[body:end].strip():
            digest = base64.b64encode(hashlib.sha256(page[body:end]).digest()).decode()
            out.append(f"'sha256-{digest}'")
        at = end + 8
    return " ".join(dict.fromkeys(out)) or "'none'"


def _inlined(index: bytes, root) -> bytes:
    for marker, name in INLINE:
        if marker in index and files.exists(root, name):
            data = files.resolve(root, name).read_bytes().replace(b"<", b"\\u003c")
            index = index.replace(marker, data, 1)
    return index


@router.get("/docs/{environment}/{path:path}")
async def docs_file(request: Request, environment: str, path: str, viewer: ViewerDep):
    lp = pages(request)
    if environment not in lp.app.config.environments:
        raise NotFoundError(f"no docs for environment '{environment}'")
    run_id, file = await run_in_threadpool(lp.docs_file, environment, path or "index.html")
    headers = {
        "Content-Security-Policy": DOCS_CSP.format(scripts=""),
        "X-Docs-Run": str(run_id),
        "Cache-Control": "no-store",
    }
    kind = TYPES.get(file.suffix.lower(), "application/octet-stream")
    if file.name == "index.html":
        body = await run_in_threadpool(lambda: _inlined(file.read_bytes(), file.parent))
        headers["Content-Security-Policy"] = DOCS_CSP.format(scripts=_script_hashes(body))
        return Response(body, media_type=kind, headers=headers)
    chunks, size = files.stream(file.parent, file.name)
    return StreamingResponse(chunks, media_type=kind, headers={**headers, "Content-Length": str(size)})
