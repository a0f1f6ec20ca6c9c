"""Every YAML file dockyard reads is bounded: an alias bomb, deep nesting, a huge file, a
file that is not UTF-8 text are refused at once with a located config error, never a hang
or an internal error (issue 7, items 2 and 13)."""

from __future__ import annotations

import codecs
import time

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import cli
from dockyard.config import yamlfile
from dockyard.config.loader import load_config
from dockyard.errors import ConfigError

ENVS = "environments:\n  dev:\n    target: dev\n"
# 9 ** 9 strings once expanded, from 377 bytes
BOMB = ENVS + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = BOMB.replace("environments", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\nenvironments', 1)


def _refused(path, *words: str, line: int | None = None) -> str:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    took = time.monotonic() - started
    rendered = info.value.render()
    assert took < 2, f"took {took:.2f} s"
    assert f"{path}:{line}" in rendered if line else str(path) in rendered, rendered
    for word in words:
        assert word in rendered, rendered
    return rendered


def _cli_refuses(path, *words: str, first: str = "Error: ") -> None:
    result = CliRunner().invoke(cli, ["validate", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith(first), result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_an_alias_bomb_is_refused_in_milliseconds_with_its_line(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(BOMB)
    assert len(BOMB) < 1024
    started = time.monotonic()
    rendered = _refused(path, "alias bomb", "key ", "remove the anchors")
    assert time.monotonic() - started < 0.5
    line = int(rendered.split(f"{path}:")[1].split(",")[0])
    assert BOMB.splitlines()[line - 1].startswith(("f:", "g:", "e:")), rendered  # where it crosses the bound
    _cli_refuses(path, "alias bomb", f"{path}:{line}")


def test_a_bomb_in_profiles_and_dbt_project_is_refused_too(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n" + BOMB.replace(ENVS, ""))
    (tmp_path / "dockyard.yml").write_text(ENVS)
    _cli_refuses(tmp_path / "dockyard.yml", "alias bomb", "dbt_project.yml:", first="✓ config")
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev: {type: duckdb}\n" + BOMB.replace(ENVS, "")
    )
    _cli_refuses(tmp_path / "dockyard.yml", "alias bomb", "profiles.yml:", first="✓ config")


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(ENVS + "x: &x\n  - *x\n")
    _refused(path, "refers to the node that contains it", line=5)


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(ENVS + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    _refused(path, "nested more than", line=4)
    _cli_refuses(path, "nested more than")


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "dockyard.yml"
    with open(path, "w") as fh:
        fh.write(ENVS + "jobs:\n")
        fh.write("  - {name: j, environment: dev, commands: ['dbt run']}\n" * 40000)  # 2 MiB
    _refused(path, "more than the 1 MiB dockyard reads", "DOCKYARD_YAML_MAX_BYTES", line=1)
    _cli_refuses(path, "more than the 1 MiB")
    monkeypatch.setenv("DOCKYARD_YAML_MAX_BYTES", "100")
    path.write_text(ENVS + "# " + "x" * 200 + "\n")
    _refused(path, "more than the 100 bytes", line=1)


@pytest.mark.parametrize(
    "data, words, line",
    [
        (b"environments:\n  dev:\n    target: d\xe9v\n", ("not valid UTF-8", "byte 0xe9"), 3),
        (codecs.BOM_UTF16_LE + ENVS.encode("utf-16-le"), ("UTF-16",), 1),
        (ENVS.encode("utf-16-be"), ("NUL byte",), 1),
        (codecs.BOM_UTF32_LE + ENVS.encode("utf-32-le"), ("UTF-32",), 1),
        (ENVS.encode() + b"x: a\0b\n", ("NUL byte",), 4),
        (bytes(range(256)) * 4, ("NUL byte",), 1),
        (ENVS.encode() + b"x: \x07\n", ("U+0007",), 4),
    ],
    ids=["latin1", "utf16-bom", "utf16-no-bom", "utf32", "nul", "binary", "control-char"],
)
def test_a_file_that_is_not_utf8_text_is_a_located_error(tmp_path, data, words, line):
    path = tmp_path / "dockyard.yml"
    path.write_bytes(data)
    _refused(path, *words, line=line)
    _cli_refuses(path, *words)


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_bytes(codecs.BOM_UTF8 + ENVS.encode())
    assert list(load_config(path).config.environments) == ["dev"]


def test_anchors_within_the_bounds_still_work(tmp_path):
    path = tmp_path / "dockyard.yml"
    path.write_text(
        ENVS + "jobs:\n  - &base {name: a, environment: dev, commands: ['dbt run']}\n  - {<<: *base, name: b}\n"
    )
    assert [j.name for j in load_config(path).config.jobs] == ["a", "b"]


def test_an_unreadable_or_special_file_is_a_config_error(tmp_path):
    folder = tmp_path / "dir.yml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="not a regular file|cannot read"):
        yamlfile.read_yaml(folder)
    with pytest.raises(ConfigError, match="not a regular file"):
        yamlfile.read_yaml("/dev/zero")


def test_a_secret_file_is_read_within_bounds(tmp_path):
    from dockyard.project import resolve_secrets

    big, latin = tmp_path / "big", tmp_path / "latin"
    big.write_bytes(b"x" * (1 << 20))
    latin.write_bytes(b"p\xe9ss")
    path = tmp_path / "dockyard.yml"
    path.write_text(ENVS + f"    secrets:\n      DBT_ENV_SECRET_A: file:{big}\n      DBT_ENV_SECRET_B: file:{latin}\n")
    loaded = load_config(path)
    with pytest.raises(ConfigError, match="larger than 64 kiB") as info:
        resolve_secrets(loaded, "dev")
    assert f"{path}:" in info.value.render()
    path.write_text(ENVS + f"    secrets:\n      DBT_ENV_SECRET_B: file:{latin}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        resolve_secrets(load_config(path), "dev")
