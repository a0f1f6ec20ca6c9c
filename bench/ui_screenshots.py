"""The screenshots of docs/ui.md: runs the browser tests that take them with
``DOCKYARD_UI_DOCS_IMAGES=1``, which writes ``docs/images/ui-<page>.png`` (1280 x 900, the
top of each page) next to the tests' own full-page shots in ``test-artifacts/ui/``.

    .venv/bin/python bench/ui_screenshots.py

Needs /usr/bin/chromium (``apt-get install -y chromium``). Takes about two minutes: one real
production run of the shop, then the pages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/ui/browser/test_browser_tour.py",
    "tests/ui/browser/test_browser_runs.py::test_gantt_has_a_bar_per_node_and_the_critical_path",
    "tests/ui/browser/test_browser_access.py::test_phone_viewport_has_no_horizontal_overflow",
]


def main() -> int:
    env = {**os.environ, "DOCKYARD_UI_DOCS_IMAGES": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT, env=env)
    images = sorted((ROOT / "docs" / "images").glob("ui-*.png"))
    for image in images:
        print(f"{image.relative_to(ROOT)}  {image.stat().st_size:,} bytes")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
