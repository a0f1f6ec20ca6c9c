"""Every configuration key and CLI command is documented."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from dockyard.config import model

ROOT = Path(__file__).resolve().parents[1]


def _keys(cls: type[BaseModel]) -> set[str]:
    out = set()
    for name, field in cls.model_fields.items():
        out.add(field.alias or name)
        for arg in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            inner = [arg, *getattr(arg, "__args__", ())]
            for sub in inner:
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    out |= _keys(sub)
    return out


def test_every_config_key_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(k for k in _keys(model.Config) if f"`{k}`" not in text and f".{k}`" not in text)
    assert not missing, f"undocumented keys in docs/configuration.md: {missing}"


def test_every_cli_command_is_documented():
    from dockyard.cli.main import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    names = [c.name or c.callback.__name__ for c in cli.registered_commands]
    missing = [n for n in names if f"dockyard {n}" not in text]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"
