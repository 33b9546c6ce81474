"""Issue 16 for ``encode`` / ``decode`` / ``reconstruct``: what they do right, beside the error table.

The error cases (non-zero exit, one line, nothing left behind) are rows of
``tests/test_hostile_inputs.py``; here are the behaviours that are not errors: a finished token
file is skipped, not replaced; a folder run survives one unwritable file; token files follow the
umask and record the checkpoint's absolute path; ``decode`` prints the frames it wrote; a killed
writer's hidden file is cleared by the next run; and ``--max-memory`` bounds the peak RSS of the
process, measured in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from vidtok_kit.io import write_video
from vidtok_kit.io.outputs import file_mode
from vidtok_kit.tokenize import read_token_meta

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "fsq_causal.toml"




def clip(path: Path, frames: int = 9, size: int = 32, fps: float = 8.0, seed: int = 0) -> Path:
    x = torch.rand(3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    write_video(path, x, fps)
    return path


def test_single_file_encode_skips_a_finished_token_file(run, tmp_path: Path) -> None:
    video, out = clip(tmp_path / "a.mp4"), tmp_path / "a.safetensors"
    first = run("encode", video, "--recipe", TINY, "-o", out)
    assert first.exit_code == 0, first.output
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    again = run("encode", video, "--recipe", TINY, "-o", out)
    assert again.exit_code == 0 and "exists, skipped" in again.stdout, again.output
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    forced = run("encode", video, "--recipe", TINY, "-o", out, "--overwrite")
    assert forced.exit_code == 0 and "(9 frames)" in forced.stdout, forced.output


def test_token_files_follow_the_umask_and_record_the_checkpoint_absolute(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidtok_kit import build_model, load_recipe
    from vidtok_kit.convert.checkpoint import save_tokenizer

    recipe = load_recipe(TINY)
    save_tokenizer(build_model(recipe), recipe, tmp_path / "w.safetensors")
    monkeypatch.chdir(tmp_path)
    clip(tmp_path / "a.mp4")
    result = run("encode", "a.mp4", "--checkpoint", "w.safetensors", "-o", "a.safetensors")
    assert result.exit_code == 0, result.output
    out = tmp_path / "a.safetensors"
    assert out.stat().st_mode & 0o777 == file_mode()  # not mkstemp's 0600
    meta = read_token_meta(out)
    assert meta.checkpoint == str((tmp_path / "w.safetensors").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # decode finds the recorded checkpoint from any folder
    decoded = run("decode", out, "-o", "a.mp4")
    assert decoded.exit_code == 0, decoded.output
    assert "(9 frames at 8 fps)" in decoded.stdout


def test_folder_run_survives_one_unwritable_token_file(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidtok_kit.tokenize.pipeline as pipeline

    videos = tmp_path / "videos"
    videos.mkdir()
    clip(videos / "a.mp4")
    clip(videos / "b.mp4", seed=1)
    real = pipeline.save_tokens

    def save(path: Path, *args: Any, **kwargs: Any) -> Path:
        if Path(path).stem == "a":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "save_tokens", save)
    result = run("encode", videos, "--recipe", TINY, "-o", tmp_path / "tokens")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "a.safetensors: cannot write (Permission denied)" in result.stderr
    assert (tmp_path / "tokens" / "b.safetensors").is_file() and not (tmp_path / "tokens" / "a.safetensors").exists()


def test_fps_up_to_four_times_the_source_is_allowed(run, tmp_path: Path) -> None:
    video = clip(tmp_path / "a.mp4", frames=5)
    result = run("encode", video, "--recipe", TINY, "-o", tmp_path / "a.safetensors", "--fps", 32)
    assert result.exit_code == 0, result.output
    assert read_token_meta(tmp_path / "a.safetensors").frame_count <= 4 * 5


def test_a_killed_writers_hidden_file_is_cleared_by_the_next_run(run, tmp_path: Path) -> None:
    from vidtok_kit.io.writer import VideoWriter

    out = tmp_path / "v.mp4"
    stale = tmp_path / ".v.0badc0de.partial.mp4"  # what a decode killed with -9 leaves
    stale.write_bytes(b"half a video")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".v.12345678.partial.mp4"  # another process writing the same output now
    fresh.write_bytes(b"growing")
    other = tmp_path / ".w.0badc0de.partial.mp4"  # another output's
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    with VideoWriter(out, 8) as writer:
        writer.write(torch.zeros(3, 2, 16, 16))
    assert out.is_file() and not stale.exists() and fresh.exists() and other.exists()


def test_eval_report_files_follow_the_umask(tmp_path: Path) -> None:
    from vidtok_kit.evaluation.report import atomic_write_text

    assert atomic_write_text(tmp_path / "s.json", "{}").stat().st_mode & 0o777 == file_mode()


# -- the memory budget, measured -----------------------------------------------------------------

_PEAK = textwrap.dedent("""
    import sys
    report, sys.argv = sys.argv[1], ["vidtok-kit", *sys.argv[2:]]
    from vidtok_kit.cli import main
    try:
        main()
    finally:  # the process's high-water mark of resident memory, everything included
        with open("/proc/self/status") as fh:
            line = next(l for l in fh if l.startswith("VmHWM:"))
        with open(report, "w") as out:
            out.write(line.split()[1])
""")


def _peak_mib(tmp_path: Path, *args: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    report = tmp_path / "peak.txt"
    env = {**os.environ, "VIDTOK_KIT_COMPILE": "off", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _PEAK, str(report), *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert report.exists(), done.stderr
    return int(report.read_text()) / 1024, done


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is read from /proc")
def test_max_memory_bounds_the_peak_rss(tmp_path: Path) -> None:
    """A 256x256 stream under 600M (encode: tiles chosen) and 800M (reconstruct: two streams
    share it) stays under its budget; without the whole-frame terms, the tiled plan and the two
    concurrent plans of reconstruct each overshot (654 and 779 MiB under 600M)."""
    video = clip(tmp_path / "a.mp4", frames=9, size=64)
    peak, done = _peak_mib(tmp_path, "encode", video, "--recipe", TINY, "-o", "a.safetensors", "--size", 256,
                           "--max-memory", "600M", "--compile", "auto")
    assert done.returncode == 0, done.stderr
    assert peak < 600, f"encode peaked at {peak:.0f} MiB under --max-memory 600M"
    peak, done = _peak_mib(tmp_path, "reconstruct", video, "--recipe", TINY, "-o", "r.mp4", "--size", 256,
                           "--max-memory", "800M")
    assert done.returncode == 0, done.stderr
    assert peak < 800, f"reconstruct peaked at {peak:.0f} MiB under --max-memory 800M"
