"""The CI copy of a dbt project: what a pull-request build parses and runs.

A copy of the project's own files (``dbt_project.yml``, the yml files beside it and the
folders it names: models, seeds, macros...; never ``target/``, logs or the warehouse files),
with the installed packages linked rather than copied, and the project's
``generate_schema_name`` renamed and wrapped (see :mod:`dockyard.slim.schema`) when it has one.

The copy is rewritten before every build of the pull request and removed by cleanup.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ruamel.yaml import YAML

from dockyard.permissions import private_dir
from dockyard.slim import schema as pr

PATH_KEYS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "macro-paths": ["macros"],
    "analysis-paths": ["analyses"],
    "docs-paths": [],
    "asset-paths": [],
    "function-paths": ["functions"],
}
TOP_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml", "selectors.yml")
SKIP = shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb", "*.duckdb.wal", ".git", ".dockyard")


def make(source: Path, dest: Path, extra_macros: dict[str, str] | None = None) -> Path:
    """Write the CI copy of the project ``source`` into ``dest`` (emptied first), with
    ``extra_macros`` (file name -> text) in its first macro folder."""
    source, dest = Path(source), Path(dest)
    data = YAML(typ="safe").load((source / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    if dest.exists():
        shutil.rmtree(dest)
    private_dir(dest)
    folders: set[str] = set()
    for key, default in PATH_KEYS.items():
        for rel in data.get(key) or default:
            folders.add(str(rel))
    for rel in sorted(folders):
        src = (source / rel).resolve()
        if src.is_dir() and (src == source.resolve() or source.resolve() in src.parents):
            shutil.copytree(src, dest / rel, ignore=SKIP, dirs_exist_ok=True, symlinks=True)
    for name in TOP_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    packages = str(data.get("packages-install-path") or "dbt_packages")
    if (source / packages).is_dir() and not Path(packages).is_absolute():
        (dest / packages).symlink_to((source / packages).resolve(), target_is_directory=True)
    shutil.copy2(source / "dbt_project.yml", dest / "dbt_project.yml")
    macro_paths = [str(p) for p in (data.get("macro-paths") or PATH_KEYS["macro-paths"])]
    extra = dict(extra_macros or {})
    if _wrap_schema_macro(dest, macro_paths):
        extra[pr.MACRO_FILE] = pr.WRAPPER
    if extra:
        first = dest / macro_paths[0]
        first.mkdir(parents=True, exist_ok=True)
        for name, text in extra.items():
            (first / name).write_text(text, encoding="utf-8")
    return dest


def _wrap_schema_macro(dest: Path, macro_paths: list[str]) -> bool:
    """Rename the project's ``generate_schema_name`` in the copy; True when it had one."""
    found = False
    for rel in macro_paths:
        folder = dest / rel
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.sql")):
            if path.is_symlink():
                continue
            text = path.read_text(encoding="utf-8")
            renamed, count = pr.rename_definition(text)
            if count:
                path.write_text(renamed, encoding="utf-8")
                found = True
    return found
