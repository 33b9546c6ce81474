"""Which files of a folder are videos: one rule for ``encode``, ``eval`` and training data."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vidtok_kit import cli as cli_module
from vidtok_kit.cli import cli
from vidtok_kit.errors import InputError
from vidtok_kit.io import find_videos

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "kl_causal.toml"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_videos_are_found_recursively_in_order_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    want = [_touch(tmp_path / "a.MP4"), _touch(tmp_path / "b" / "c.mkv"), _touch(tmp_path / "b" / "d.gif")]
    _touch(tmp_path / "._a.mp4")  # a macOS resource fork beside a copied clip
    _touch(tmp_path / ".cache" / "e.mp4")
    _touch(tmp_path / "notes.txt")
    (tmp_path / "folder.mp4").mkdir()
    assert find_videos(tmp_path) == want


def test_a_folder_without_videos_is_one_line_naming_it(tmp_path: Path) -> None:
    _touch(tmp_path / "._clip.mp4")
    with pytest.raises(InputError, match=r"^.*: no video files \(\.mp4, \.m4v, \.mov, \.mkv, \.\.\.\) in this folder$") as info:
        find_videos(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}:")


@pytest.fixture
def full_cli(monkeypatch: pytest.MonkeyPatch, fresh_cli: None) -> click.Group:
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    cli_module._add_subsystem_commands()
    return cli


@pytest.mark.parametrize("command", [["encode", "{folder}", "--recipe", str(TINY), "-o", "{out}"], ["eval", str(TINY), "{folder}"]])
def test_every_command_taking_a_folder_says_the_same(full_cli: click.Group, tmp_path: Path, command: list[str]) -> None:
    folder = tmp_path / "clips"
    _touch(folder / "._clip.mp4")
    args = [a.format(folder=folder, out=tmp_path / "tokens") for a in command]
    result = CliRunner().invoke(full_cli, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {folder}: no video files (.mp4, .m4v, .mov, .mkv, ...) in this folder"], result.output
