"""Video file names: which files of a folder are read as videos (``encode``, ``eval``, training data)
and which names the writer can write (``decode``, ``reconstruct``), each checked one way."""

from __future__ import annotations

from pathlib import Path

import av
import click
import pytest
import torch
from click.testing import CliRunner

from vidtok_kit.errors import InputError
from vidtok_kit.io import check_writable_video, find_videos, write_video
from vidtok_kit.io.outputs import check_output
from vidtok_kit.io.writer import VideoWriter

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


@pytest.mark.parametrize("command", [["encode", "{folder}", "--recipe", str(TINY), "-o", "{out}"], ["eval", str(TINY), "{folder}"]])
def test_every_command_taking_a_folder_says_the_same(full_cli: click.Group, tmp_path: Path, command: list[str]) -> None:
    folder = tmp_path / "clips"
    _touch(folder / "._clip.mp4")
    args = [a.format(folder=folder, out=tmp_path / "tokens") for a in command]
    result = CliRunner().invoke(full_cli, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {folder}: no video files (.mp4, .m4v, .mov, .mkv, ...) in this folder"], result.output


@pytest.mark.parametrize("name", ["out.webm", "out.gif", "out.y4m", "out.xyz", "out"])
def test_a_video_name_the_writer_cannot_fill_is_refused_up_front(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    for check in (check_writable_video, lambda p: check_output(p, kind="video"), lambda p: VideoWriter(p, 25)):
        with pytest.raises(InputError, match=r"cannot write the video to a") as info:
            check(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    with pytest.raises(InputError, match="cannot write the video"):
        write_video(path, torch.zeros(3, 2, 16, 16), fps=10)
    assert list(tmp_path.iterdir()) == []


def test_any_writable_suffix_round_trips_and_a_named_codec_picks_its_own_container(tmp_path: Path) -> None:
    for name in ("a.MKV", "b.mov", "c.avi"):
        check_writable_video(tmp_path / name)
    assert write_video(tmp_path / "d.mp4", torch.zeros(3, 2, 16, 16), fps=10).is_file()
    # an explicit codec is the caller's choice of container: no suffix rule
    if "libvpx-vp9" in av.codecs_available:
        assert write_video(tmp_path / "e.webm", torch.zeros(3, 2, 16, 16), fps=10, codec="libvpx-vp9").is_file()


@pytest.mark.parametrize("command", ["decode", "reconstruct"])
def test_decode_and_reconstruct_refuse_the_name_before_loading_anything(full_cli: click.Group, tmp_path: Path, command: str) -> None:
    source = tmp_path / ("t.safetensors" if command == "decode" else "v.mp4")
    source.write_bytes(b"not read: the output is checked first")
    out = tmp_path / "out.webm"
    args = [command, str(source), "-o", str(out)] + (["--recipe", str(TINY)] if command == "reconstruct" else [])
    result = CliRunner().invoke(full_cli, args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {out}: cannot write the video to a .webm file; the writer makes H.264 in .mp4, .mkv, .mov, .m4v, ... (not .webm, .gif or .y4m)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]
