"""Environments in practice: a personal schema for dev, and `dockyard init` offering CI."""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from tests.e2e.conftest import Project

from dockyard.errors import DockyardError
from dockyard.overrides import personal_schema

WHOAMI = "select '{{ target.name }}' as target_name, '{{ target.schema }}' as target_schema\n"


def test_personal_schema_name():
    assert personal_schema({"USER": "Jane.Doe-2"}) == "dbt_jane_doe_2"
    assert personal_schema({"USER": "x", "DOCKYARD_DEV_SCHEMA": "alice_sandbox"}) == "alice_sandbox"
    with pytest.raises(DockyardError, match="DOCKYARD_DEV_SCHEMA"):
        personal_schema({"DOCKYARD_DEV_SCHEMA": "x; drop schema prod"})


@pytest.mark.slow
def test_dev_run_builds_into_the_personal_schema(sqlite_project: Project, monkeypatch):
    project = sqlite_project
    text = project.config.read_text()
    text = text.replace("  dev:\n    target: dev", "  dev:\n    personal_schema: true\n    target: dev", 1)
    project.config.write_text(text)
    project.write("models/whoami.sql", WHOAMI)
    project.add_job("""\
        - name: Mine
          environment: dev
          commands: ["dbt run --select whoami"]
    """)
    monkeypatch.setenv("USER", "Jane.Doe-2")
    monkeypatch.setenv("LOGNAME", "Jane.Doe-2")
    monkeypatch.delenv("DOCKYARD_DEV_SCHEMA", raising=False)
    run = json.loads(project.cli("run", "Mine", "--json", check=0).stdout)
    assert run["status"] == "success"
    db = project.path.parent / "db" / "shop_dev.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select target_name, target_schema from dbt_jane_doe_2.whoami").fetchall()
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
    assert rows == [("dev", "dbt_jane_doe_2")]  # target.name logic still sees 'dev'
    assert "dev" not in schemas  # nothing went to the shared dev schema


def test_init_offers_a_ci_environment_and_job(sqlite_project: Project, tmp_path):
    project = sqlite_project
    project.config.unlink()
    project.cli("init", "--project-dir", str(project.path), check=0)
    text = project.config.read_text()
    assert "pr_schema_prefix: dbt_ci" in text and re.search(r"\nci: +#.*\n  environment: ci\n  base: prod ", text)
    assert "# personal_schema: true" in text
    jobs = {j["name"]: j for j in json.loads(project.cli("jobs", "--json", check=0).stdout)}
    assert jobs["CI"]["environment"] == "ci" and jobs["CI"]["commands"] == ["dbt build --select state:modified+"]
    # a profile without a ci target: the CI environment is offered in comments, the file still valid
    profiles = (project.path / "profiles.yml").read_text()
    (project.path / "profiles.yml").write_text(profiles.split("    ci:\n")[0])
    project.cli("init", "--project-dir", str(project.path), "--force", check=0)
    text = project.config.read_text()
    assert "# ci:" in text and "#   pr_schema_prefix: dbt_ci" in text and '"CI"' not in text
    project.cli("validate", check=0)
