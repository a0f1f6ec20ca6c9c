"""Each invalid dockyard.yml is answered with a located, actionable message and no traceback."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import cli
from dockyard.config.loader import load_config
from dockyard.errors import ConfigError

GOOD_JOB = """\
  - name: nightly
    environment: prod
    commands: ["dbt run"]
"""
ENVS = """\
environments:
  prod:
    target: prod
"""

# (id, yaml text, expected line, expected key fragment, expected words in the message)
CASES = [
    (
        "top-level typo",
        "enviroments:\n  prod: {target: prod}\n",
        1,
        "enviroments",
        "did you mean the key 'environments'",
    ),
    (
        "environment key typo",
        "environments:\n  prod:\n    target: prod\n    treads: 4\n",
        4,
        "environments.prod.treads",
        "did you mean the key 'threads'",
    ),
    ("missing target", "environments:\n  prod:\n    threads: 4\n", 2, "environments.prod.target", "is missing"),
    (
        "job without commands",
        ENVS + "jobs:\n  - name: nightly\n    environment: prod\n",
        5,
        "jobs[0].commands",
        "is missing",
    ),
    (
        "not a dbt command",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['ls -la']\n",
        7,
        "jobs[0].commands[0]",
        "must start with 'dbt'",
    ),
    (
        "shell syntax",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands:\n      - dbt run && rm -rf /\n",
        8,
        "jobs[0].commands[0]",
        "shell syntax",
    ),
    (
        "unknown subcommand",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt runn']\n",
        7,
        "jobs[0].commands[0]",
        "'runn' is not a dbt subcommand",
    ),
    (
        "docs without generate",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt docs']\n",
        7,
        "jobs[0].commands[0]",
        "'dbt docs generate'",
    ),
    (
        "managed flag",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run --target dev']\n",
        7,
        "jobs[0].commands[0]",
        "set by dockyard",
    ),
    (
        "bad cron",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    schedule:\n      cron: '0 25 * * *'\n",
        9,
        "jobs[0].schedule.cron",
        "not a valid cron",
    ),
    (
        "cron with 6 fields",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    schedule:\n      cron: '0 0 2 * * *'\n",
        9,
        "jobs[0].schedule.cron",
        "5 fields",
    ),
    (
        "bad time zone",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    schedule:\n      cron: '0 2 * * *'\n      timezone: America/Newyork\n",
        10,
        "jobs[0].schedule.timezone",
        "IANA",
    ),
    (
        "undeclared environment",
        ENVS + "jobs:\n  - name: n\n    environment: prd\n    commands: ['dbt run']\n",
        6,
        "jobs[0].environment",
        "did you mean the environment 'prod'",
    ),
    ("duplicate job names", ENVS + "jobs:\n" + GOOD_JOB + GOOD_JOB, 8, "jobs[1].name", "used twice"),
    (
        "literal secret",
        "environments:\n  prod:\n    target: prod\n    secrets:\n      DBT_ENV_SECRET_PW: hunter22\n",
        4,
        "environments.prod.secrets",
        "never a literal value",
    ),
    (
        "threads zero",
        "environments:\n  prod:\n    target: prod\n    threads: 0\n",
        4,
        "environments.prod.threads",
        "greater than or equal to 1",
    ),
    (
        "slack without url",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    notifications:\n      - type: slack\n",
        9,
        "jobs[0].notifications[0]",
        "needs 'webhook_url'",
    ),
    (
        "unknown notification type",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    notifications:\n      - {type: sms, url: 'x'}\n",
        9,
        "jobs[0].notifications[0].type",
        "slack",
    ),
    (
        "negative timeout",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n    timeout_seconds: -5\n",
        8,
        "jobs[0].timeout_seconds",
        "greater than or equal to 1",
    ),
    ("bad runner mode", ENVS + "runner:\n  mode: thread\n", 5, "runner.mode", "fork"),
    (
        "bad retry policy",
        ENVS + "jobs:\n  - name: n\n    environment: prod\n    commands: ['dbt run']\n"
        "    retries: {max_attempts: 3, on: sometimes}\n",
        8,
        "jobs[0].retries.on",
        "transient",
    ),
    ("invalid YAML", "environments:\n  prod:\n    target: prod\n   bad: [\n", 4, None, "invalid YAML"),
    ("top level is a list", "- environments\n", 1, None, "top level must be a mapping"),
    ("empty file", "", 1, None, "empty"),
    (
        "environment variable name",
        "environments:\n  prod:\n    target: prod\n    env: {'1BAD': x}\n",
        4,
        "environments.prod.env",
        "not a valid environment variable name",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invalid_config_is_located(tmp_path, case):
    _, text, line, key, words = case
    path = tmp_path / "dockyard.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    rendered = info.value.render()
    assert f"{path}:{line}" in rendered, rendered
    if key:
        assert f"key {key}" in rendered, rendered
    assert words in rendered, rendered
    # and the CLI prints it as one clean error, exit 1, no traceback
    result = CliRunner().invoke(cli, ["jobs", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Error: " in result.output and f"{path}:{line}" in result.output
    assert "Traceback" not in result.output


def test_at_least_fifteen_distinct_cases():
    assert len({c[1] for c in CASES}) >= 15


def test_every_error_says_how_to_fix(tmp_path):
    for _, text, *_ in CASES:
        path = tmp_path / "dockyard.yml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        errors = getattr(info.value, "errors", [info.value])
        assert all(e.hint for e in errors), [e.render() for e in errors]


def test_issue_example_loads(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(
        ENVS
        + textwrap.dedent("""\
        jobs:
          - name: "Daily Production Run"
            environment: prod
            schedule: {cron: "0 2 * * *", timezone: "America/New_York"}
            commands: ["dbt source freshness", "dbt snapshot", "dbt run", "dbt test"]
            settings: {threads: 16, target_name: prod}
            triggers: {on_merge: true, github_webhook: true}
        """)
    )
    cfg = load_config(path).config
    job = cfg.jobs[0]
    assert job.cron == "0 2 * * *" and job.schedule.timezone == "America/New_York"
    assert job.settings.threads == 16 and job.triggers.on_merge and job.timeout_seconds == 7200


def test_jobs_as_code_mapping_shape(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(
        ENVS
        + textwrap.dedent("""\
        jobs:
          daily_job:
            account_id: 43791
            project_id: 176941
            environment_id: 134459
            name: "Daily"
            environment: prod
            execute_steps: ["dbt run --select model1+"]
            generate_docs: true
            triggers: {github_webhook: false, git_provider_webhook: false, schedule: true, on_merge: false}
            schedule: {cron: "0 14 * * 0,1,2,3,4,5,6"}
            retries: 2
        """)
    )
    job = load_config(path).config.jobs[0]
    assert job.identifier == "daily_job" and job.commands == ["dbt run --select model1+"]
    assert job.all_commands[-1] == "dbt docs generate" and job.retries.max_attempts == 3
