"""The last good config of a server process: a scheduler, worker or ``serve`` whose
dockyard.yml does not load starts on the copy its supervisor kept
(``$DOCKYARD_CONFIG_FALLBACK``, ``<state_dir>/config-last-good.yml``) and reports the error
(see :mod:`dockyard.config.reload`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dockyard.app import App
from dockyard.config.loader import find_config, load_config
from dockyard.config.reload import FALLBACK_ENV, remember_good
from dockyard.config.yamlfile import read_text
from dockyard.errors import ConfigError

log = logging.getLogger("dockyard.server.fallback")


def open_app(config_path, store_url):
    """``App.open`` for a server process; when dockyard.yml does not load and a supervisor
    kept the last good config (``$DOCKYARD_CONFIG_FALLBACK``), start on that one instead
    (``app.config_error`` says why; the process's Reloader reports it and follows the file)."""
    try:
        app = App.open(config_path, store_url)
    except ConfigError as exc:
        fallback = os.environ.get(FALLBACK_ENV)
        if not fallback or not Path(fallback).is_file():
            raise
        path = Path(config_path) if config_path else find_config()
        app = App(load_config(path, text=read_text(fallback)), store_url)
        app.config_error = exc.render()
        log.error("%s does not load; starting on the last good config: %s", path.name, app.config_error)
        return app
    remember_good(app.loaded)
    return app


def keep_fallback(config_path: str | None, store_url: str | None, app=None) -> None:
    """Where the processes this supervisor (re)starts find the last good config when
    dockyard.yml does not load (``<state_dir>/config-last-good.yml``; already set by an outer
    supervisor: ``serve`` for its ``worker``)."""
    if os.environ.get(FALLBACK_ENV):
        return
    try:
        app = app or open_app(config_path, store_url)
    except ConfigError:
        return
    app.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ[FALLBACK_ENV] = str(app.state_dir / "config-last-good.yml")
    remember_good(app.loaded)
