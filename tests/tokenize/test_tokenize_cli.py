"""``vidtok-kit encode / decode / reconstruct`` on the real sample videos, with a tiny recipe.

Tokens written by the CLI are compared with the library's whole-clip encode of the same frames,
and every kind of bad input must give one line naming the file, a non-zero exit, no output file
and no temporary file; in a folder run the good files still complete.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import pytest
import torch

from vidtok_kit.io import probe_video, read_video, sample_videos, write_video
from vidtok_kit.metrics import psnr_per_frame, ssim_per_frame
from vidtok_kit.pluginmanager import default_registry
from vidtok_kit.recipe import dump_recipe
from vidtok_kit.testing import (
    tiny_recipe,
    write_audio_only,
    write_truncated_video,
    write_video_without_frames,
)
from vidtok_kit.tokenize import load_tokenizer, load_tokens, read_token_meta
from vidtok_kit.tokenize.commands import commands

FSQ = {"regularizer": {"kind": "fsq", "levels": [8, 8, 8]}, "z_channels": 3}




@pytest.fixture(scope="module")
def carphone() -> Path:
    try:
        return {p.name: p for p in sample_videos()}["carphone_pristine.mp4"]
    except ModuleNotFoundError as exc:
        pytest.skip(str(exc))


def recipe_file(tmp_path: Path, **keys: object) -> Path:
    path = tmp_path / f"tiny_{abs(hash(repr(sorted(keys.items())))) % 10**8}.toml"
    path.write_text(dump_recipe(tiny_recipe(**keys)))
    return path


def model_of(recipe: Path):
    return load_tokenizer(recipe, None, registry=default_registry())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_encode_decode_round_trip_matches_the_library(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path)  # KL, causal v1.0
    out = tmp_path / "tokens" / "c.safetensors"
    out.parent.mkdir()
    result = run("encode", carphone, "--recipe", recipe, "-o", out, "--size", 16, "--end", 0.6, "--chunk-frames", 8)
    assert result.exit_code == 0, result.output
    assert "randomly initialised" in result.stderr
    latent, meta = load_tokens(out)
    assert meta.kind == "latent" and latent.dtype == torch.float32
    assert (meta.frame_count, meta.front_pad, meta.tail_pad) == (18, 3, 3)  # v1.0 takes 1 + 4k: 18 -> 21
    assert (meta.source, meta.source_width, meta.source_height, meta.source_frames) == (str(carphone), 176, 144, 120)
    assert meta.fps == pytest.approx(30000 / 1001) and meta.size == 16 and meta.resize == "crop"
    assert meta.geometry["height"] == meta.geometry["width"] == 16 and meta.checkpoint_sha256 == ""
    assert meta.random_init_seed == 0 and "tiny_kl_causal" in meta.recipe

    m = model_of(recipe)
    x = read_video(carphone, size=16, end_s=0.6)[0].unsqueeze(0)
    with torch.no_grad():
        ref = m.encode(torch.cat([x, x[:, :, -1:].expand(-1, -1, 3, -1, -1)], dim=2))
        want = m.decode(ref.latent)[:, :, :18]
    assert (latent.unsqueeze(0) - ref.latent).abs().max() < 1e-5

    video = tmp_path / "c.mp4"
    result = run("decode", out, "-o", video, "--chunk-frames", 4)
    assert result.exit_code == 0, result.output
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height) == (18, 16, 16) and info.fps == pytest.approx(meta.fps)
    # the streamed writer makes what write_video makes of the whole-clip decode: byte-identical for
    # identical uint8 frames; a 1-LSB rounding flip moves x264's choices by ~3e-3 on average, a wrong
    # frame order or crop by ~0.3
    reference = write_video(tmp_path / "reference.mp4", want[0], fps=meta.fps)
    assert (read_video(video)[0] - read_video(reference)[0]).abs().mean() < 0.01
    assert leftovers(tmp_path) == []


def test_fsq_v11_tokens_are_small_integers_equal_to_whole_clip(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path, version="v1.1", **FSQ)
    out = tmp_path / "f.safetensors"
    result = run("encode", carphone, "--recipe", recipe, "-o", out, "--size", 16, "--start", 1.0, "--end", 1.6)
    assert result.exit_code == 0, result.output
    indices, meta = load_tokens(out)
    assert indices.dtype == torch.int16 and meta.kind == "indices" and meta.codebook_size == 512
    assert (meta.frame_count, meta.front_pad, meta.tail_pad, meta.start_s) == (18, 2, 0, 1.0)  # v1.1: 4 - 18 % 4
    m = model_of(recipe)
    x = read_video(carphone, size=16, start_s=1.0, end_s=1.6)[0].unsqueeze(0)
    with torch.no_grad():
        ref = m.encode(x)
    assert indices.shape == ref.indices.shape[1:]
    assert (indices.long() != ref.indices[0].long()).float().mean() < 0.01  # FSQ rounding-boundary flips only
    video = tmp_path / "f.mp4"
    assert run("decode", out, "-o", video).exit_code == 0
    assert probe_video(video).num_frames == 18


def test_pad_mode_is_cropped_back_and_fps_resamples(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path)
    out = tmp_path / "p.safetensors"
    result = run("encode", carphone, "--recipe", recipe, "-o", out, "--size", 18, "--resize", "pad", "--fps", 10,
                 "--end", 1.0, "--precision", "bf16", "--max-memory", "1G")
    assert result.exit_code == 0, result.output
    meta = read_token_meta(out)
    g = meta.geometry
    assert (g["content_width"], g["content_height"], g["width"], g["height"]) == (22, 18, 24, 20)
    assert meta.frame_count == 10 and meta.fps == 10 and "10 fps" in meta.sampling and meta.precision == "bf16"
    video = tmp_path / "p.mp4"
    assert run("decode", out, "-o", video).exit_code == 0
    info = probe_video(video)
    assert (info.width, info.height, info.num_frames, info.fps) == (22, 18, 10, 10.0)


def test_reconstruct_prints_the_library_metrics(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path, version="v1.1")
    video = tmp_path / "r.mp4"
    result = run("reconstruct", carphone, "--recipe", recipe, "-o", video, "--size", 16, "--end", 0.5,
                 "--side-by-side", "--chunk-frames", 4)
    assert result.exit_code == 0, result.output
    found = re.search(r"PSNR ([0-9.]+) dB  SSIM ([0-9.]+)  \((\d+) frames\)", result.stdout)
    assert found, result.stdout
    m = model_of(recipe)
    x = read_video(carphone, size=16, end_s=0.5)[0].unsqueeze(0)
    with torch.no_grad():
        recon = m.reconstruct(x).clamp(-1, 1)
    psnr = psnr_per_frame((x + 1) / 2, (recon + 1) / 2).mean().item()
    ssim = ssim_per_frame((x + 1) / 2, (recon + 1) / 2).mean().item()
    assert float(found.group(1)) == pytest.approx(psnr, abs=0.01)
    assert float(found.group(2)) == pytest.approx(ssim, abs=1e-4)
    assert int(found.group(3)) == x.shape[2] == 15
    info = probe_video(video)
    assert (info.width, info.height, info.num_frames) == (32, 16, 15)


# --------------------------------------------------------------------------- bad input


def _text(path: Path) -> Path:
    path.write_text("frame,label\n" * 500)
    return path


def _truncated(path: Path, carphone: Path) -> Path:
    return write_truncated_video(path, read_video(carphone, end_s=1.0)[0], keep=0.4)


def _odd_size(path: Path, carphone: Path) -> Path:
    frames = read_video(carphone, size=38, resize="none", end_s=0.3)[0]  # 46x38: not a multiple of 4
    return write_video(path, frames, fps=25)


BAD = {
    "missing.mp4": ("no such file", None),
    "notes.mp4": ("not a video file", lambda p, c: _text(p)),
    "cut.mp4": ("truncated", _truncated),
    "voice.mp4": ("no video stream", lambda p, c: write_audio_only(p)),
    "empty.avi": ("no decodable video frames", lambda p, c: write_video_without_frames(p)),
    "odd.mp4": ("pass --size", _odd_size),
}


def _make_bad(folder: Path, carphone: Path) -> dict[Path, str]:
    made = {}
    for name, (problem, make) in BAD.items():
        path = folder / name
        if name != "missing.mp4":
            make(path, carphone)
        made[path] = problem
    return made


def test_each_bad_input_is_one_line_and_leaves_nothing(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    for path, problem in _make_bad(src, carphone).items():
        out = tmp_path / "out" / f"{path.stem}.safetensors"
        out.parent.mkdir(exist_ok=True)
        result = run("encode", path, "--recipe", recipe, "-o", out, "--end", 0.5)
        assert result.exit_code == 1, (path, result.output)
        error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and error[0].startswith(f"Error: {path}: ") and problem in error[0], result.stderr
        assert not out.exists() and leftovers(tmp_path / "out") == []
    bad_tokens = _text(tmp_path / "t.safetensors")
    result = run("decode", bad_tokens, "-o", tmp_path / "t.mp4")
    assert result.exit_code == 1 and f"Error: {bad_tokens}: not a readable safetensors token file" in result.stderr
    assert not (tmp_path / "t.mp4").exists()


def test_folder_run_completes_good_files_lists_failures_and_resumes(run, tmp_path: Path, carphone: Path) -> None:
    recipe = recipe_file(tmp_path)
    src = tmp_path / "videos"
    (src / "sub").mkdir(parents=True)
    shutil.copy(carphone, src / "a.mp4")
    shutil.copy(carphone, src / "sub" / "b.mp4")
    # with --size the odd-sized video is resized and becomes a good one
    bad = {p: m for p, m in _make_bad(src, carphone).items() if p.exists() and p.name != "odd.mp4"}
    (src / "readme.txt").write_text("not picked up: not a video suffix")
    out = tmp_path / "tokens"
    args = ("encode", src, "--recipe", recipe, "-o", out, "--size", 16, "--end", 0.3)
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors")) == ["a.safetensors", "odd.safetensors", "sub/b.safetensors"]
    assert "encoded 3, skipped 0, failed 4 of 7 videos" in result.stdout
    listed = result.stderr.split("failed:\n", 1)[1].splitlines()
    assert len(listed) == len(bad)
    for path, problem in bad.items():
        assert sum(line.strip().startswith(f"{path}: ") and problem in line for line in listed) == 1, (path, listed)
    assert leftovers(out) == []
    first = (out / "a.safetensors").stat().st_mtime_ns

    result = run(*args)  # resume: finished files are skipped, failures reported again
    assert result.exit_code == 1
    assert "encoded 0, skipped 3, failed 4 of 7 videos" in result.stdout
    assert (out / "a.safetensors").stat().st_mtime_ns == first

    other = recipe_file(tmp_path, version="v1.1")
    result = run("encode", src / "a.mp4", "--recipe", other, "-o", out, "--size", 16, "--end", 0.3)
    assert result.exit_code == 1 and "another recipe or checkpoint (use --overwrite)" in result.stderr
    result = run("encode", src / "a.mp4", "--recipe", other, "-o", out, "--size", 16, "--end", 0.3, "--overwrite")
    assert result.exit_code == 0 and read_token_meta(out / "a.safetensors").time_mode == "v1.1"


def test_checkpoint_carries_its_recipe_and_its_hash_is_checked(run, tmp_path: Path, carphone: Path) -> None:
    from vidtok_kit.convert.checkpoint import save_tokenizer
    from vidtok_kit.testing import perturb_parameters

    recipe = recipe_file(tmp_path)
    r = tiny_recipe()
    m = perturb_parameters(model_of(recipe).model, 0.05)
    ckpt = save_tokenizer(m, r, tmp_path / "w.safetensors")
    out = tmp_path / "c.safetensors"
    result = run("encode", carphone, "--checkpoint", ckpt, "-o", out, "--size", 16, "--end", 0.3)
    assert result.exit_code == 0 and "randomly" not in result.stderr, result.output
    meta = read_token_meta(out)
    assert meta.checkpoint == str(ckpt) and len(meta.checkpoint_sha256) == 16 and meta.random_init_seed is None
    assert run("decode", out, "-o", tmp_path / "c.mp4").exit_code == 0  # finds the recorded checkpoint
    other = save_tokenizer(perturb_parameters(m, 0.01, seed=3), r, tmp_path / "other.safetensors")
    result = run("decode", out, "-o", tmp_path / "d.mp4", "--checkpoint", other)
    assert result.exit_code == 1 and "checkpoint hash" in result.stderr
    assert not (tmp_path / "d.mp4").exists()
    result = run("encode", carphone, "-o", tmp_path / "x.safetensors")
    assert result.exit_code == 1 and "no --recipe given" in result.stderr


def test_commands_are_registered_in_the_cli() -> None:
    from vidtok_kit import cli as cli_module

    assert "vidtok_kit.tokenize.commands" in cli_module.COMMAND_MODULES
    assert all(isinstance(c, click.Command) for c in commands)
