"""The layers of docs/architecture.md hold: the import contracts (pyproject.toml, run by
import-linter), no import cycles, and a forbidden import breaks the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(src: Path) -> subprocess.CompletedProcess:
    """lint-imports over the ``dockyard`` package found in ``src`` (first on the path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=src,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    proc = _lint_imports(ROOT / "src")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("api/envelope.py", "import dockyard.store.records", "front-ends reach the store only through dockyard.app"),
        ("config/model.py", "import dockyard.app", "dockyard layers"),
        ("runner/plan.py", "import sqlalchemy", "SQLAlchemy/Alembic only in store"),
        ("store/engine.py", "import dockyard.runner.plan", "dockyard layers"),
    ],
    ids=["api-imports-store", "config-imports-app", "runner-imports-sqlalchemy", "store-imports-runner"],
)
def test_a_forbidden_import_breaks_the_contracts(tmp_path, module, line, contract):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "dockyard", src / "dockyard", ignore=shutil.ignore_patterns("__pycache__"))
    target = src / "dockyard" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = _lint_imports(src)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "BROKEN" in proc.stdout and contract.split()[0] in proc.stdout, proc.stdout[-3000:]
    assert module.replace("/", ".").removesuffix(".py") in proc.stdout  # the offending import is named


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    assert _cycles(grimp.build_graph("dockyard")) == []
