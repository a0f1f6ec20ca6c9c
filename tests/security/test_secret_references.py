"""dockyard.secrets.read_reference: the one reader of ``env:``/``file:`` references used by
environments' secrets, webhook secrets, repository tokens and alert channels."""

from __future__ import annotations

import os

import pytest

from dockyard.secrets import MAX_SECRET_BYTES, UnreadableSecret, read_reference


def test_env_reference(monkeypatch) -> None:
    monkeypatch.setenv("DY_REF_SET", "s3cret-value")
    monkeypatch.setenv("DY_REF_EMPTY", "")
    monkeypatch.delenv("DY_REF_UNSET", raising=False)
    assert read_reference("env:DY_REF_SET") == "s3cret-value"
    assert read_reference("env:DY_REF_EMPTY", allow_empty=True) == ""
    with pytest.raises(UnreadableSecret, match=r"reads \$DY_REF_EMPTY, which is empty"):
        read_reference("env:DY_REF_EMPTY")
    with pytest.raises(UnreadableSecret, match=r"reads \$DY_REF_UNSET, which is not set") as caught:
        read_reference("env:DY_REF_UNSET", allow_empty=True)
    assert "export DY_REF_UNSET=" in caught.value.hint


def test_file_reference(tmp_path) -> None:
    good = tmp_path / "token"
    good.write_text("  file-secret-value\n")
    assert read_reference(f"file:{good}") == "file-secret-value"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert read_reference(f"file:{empty}", allow_empty=True) == ""
    with pytest.raises(UnreadableSecret, match="is empty"):
        read_reference(f"file:{empty}")
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(UnreadableSecret, match="larger than 64 kiB"):
        read_reference(f"file:{big}")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnreadableSecret, match="not UTF-8"):
        read_reference(f"file:{binary}")
    with pytest.raises(UnreadableSecret, match="cannot read"):
        read_reference(f"file:{tmp_path / 'missing'}")


def test_an_endless_file_is_not_read_to_its_end() -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(UnreadableSecret, match="larger than"):
        read_reference("file:/dev/zero")


def test_a_literal_is_not_a_reference() -> None:
    with pytest.raises(UnreadableSecret, match="not a reference") as caught:
        read_reference("hooks.slack.com/services/T0/B0/abcdefghijkl")
    assert "abcdefghijkl" not in caught.value.problem  # only its first characters
