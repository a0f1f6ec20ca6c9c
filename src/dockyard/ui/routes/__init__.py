"""The UI's pages: each module named in :data:`PAGES` has ``router = APIRouter()``, included
by :func:`dockyard.ui.site.create_site` in this order (add yours with a one-line edit)."""

PAGES: tuple[str, ...] = (
    "login",
    "dashboard",
    "jobs",
    "environments",
    "workers",
    "runs",
    "models",
    "lineage",
    "docs",
    "observe",
)
