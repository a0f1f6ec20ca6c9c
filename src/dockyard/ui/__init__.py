"""The web UI: server-rendered pages (Jinja2) over :class:`dockyard.app.App`, served by
``dockyard serve`` beside the API (docs/ui.md). Above ``api`` in the layers: it may use the
API's authentication and dependencies; the API never imports it."""
