"""Golden files of the data integrations' tests: ``DOCKYARD_UPDATE_GOLDEN=1`` rewrites them."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path} (run with DOCKYARD_UPDATE_GOLDEN=1)"
    assert text == path.read_text(), f"{name} differs from its golden file (DOCKYARD_UPDATE_GOLDEN=1 rewrites it)"
