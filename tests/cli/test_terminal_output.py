"""Issue 7 item 10 in the terminal: names and texts from the store (written before the API
refused control characters, or edited by hand) print their control characters as visible
escapes and their Rich markup literally, in every command that shows them."""

from __future__ import annotations

import re

from tests.api.conftest import make_app, seed_run
from typer.testing import CliRunner

from dockyard import cloud_jobs
from dockyard.cli.main import cli

EVIL = "evil\x1b[2J\x1b]0;pwned\x07[bold red]loud[/bold red]\u202eright\x9b"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _clean(output: str) -> str:
    assert not RAW.search(output), repr(RAW.search(output).group())
    return output


def test_stored_control_characters_and_markup_print_escaped(shop):
    app = make_app(shop)
    env = app.store.jobs.list_environments()[0]
    fields = cloud_jobs.merge_payload({"name": "x", "environment_id": env["id"]})
    app.store.jobs.create_api_job(EVIL, env["name"], cloud_jobs.definition(fields, env["name"]))
    run_id = seed_run(app, job=EVIL)
    log = app.state_dir / "runs" / str(run_id) / "logs" / "step-1.log"
    log.write_text(log.read_text() + "model \x1b[31mred\x1b[0m \x1b[2J done\ttab\n")
    app.store.tokens.create_token("tok\x1b[2J[bold]", "read")
    app.close()
    runner = CliRunner()
    config = ["--config", str(shop / "dockyard.yml")]
    for args in (["jobs"], ["runs"], ["show", str(run_id)], ["status"], ["tokens", "list"], ["validate"]):
        result = runner.invoke(cli, [*config, *args])
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, (args, result.output)
        text = _clean(result.output)
        name_shown = args[0] not in ("tokens",)
        if name_shown:
            assert "evil\\x1b[2J" in text and "\\u202eright" in text, (args, text)
            assert "[bold red]loud[/bold red]" in text, (args, text)  # markup printed as written
    tokens = _clean(runner.invoke(cli, [*config, "tokens", "list"]).output)
    assert "tok\\x1b[2J[bold]" in tokens
    logs = runner.invoke(cli, [*config, "logs", str(run_id), "--step", "1"])
    assert logs.exit_code == 0 and "\\x1b[2J done\ttab" in _clean(logs.output)
    json_out = runner.invoke(cli, [*config, "jobs", "--json"])
    assert json_out.exit_code == 0 and "\\u001b[2J" in _clean(json_out.output)


def test_control_characters_are_refused_where_names_are_written(shop):
    runner = CliRunner()
    config = shop / "dockyard.yml"
    made = runner.invoke(cli, ["--config", str(config), "tokens", "create", "ci\x1b[2J"])
    assert made.exit_code == 1 and "control characters" in made.output and "\x1b" not in made.output
    text = config.read_text()
    config.write_text(text.replace("  staging:\n", '  "stag\\e[2Jing":\n', 1))
    result = runner.invoke(cli, ["--config", str(config), "validate"])
    assert result.exit_code == 1 and "control characters" in result.output, result.output
    assert "key environments" in result.output and "\x1b" not in result.output


def test_server_log_lines_escape_control_characters(monkeypatch):
    import io
    import logging

    from dockyard.cli import service

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    service._logging()
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    try:
        logging.getLogger("dockyard.api").warning("API GET %s: %s", "/api/v1/jobs/\x1b[2J", "x\u202ey")
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("dockyard.api").exception("internal error")
    text = stream.getvalue()
    assert "/api/v1/jobs/\\x1b[2J" in text and "x\\u202ey" in text and "\x1b" not in text
    assert "Traceback (most recent call last):\n" in text  # newlines kept
