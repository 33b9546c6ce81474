"""``vidtok-kit eval``: outputs, the protocol's clip arithmetic, metric values recomputed independently,
bad-input handling, and the optional LPIPS / FVD / codebook metrics with weights the tests write.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

from vidtok_kit.convert.checkpoint import save_tokenizer
from vidtok_kit.evaluation import EvalOptions, Evaluator, iter_eval_clips, run_eval
from vidtok_kit.io import read_video, sample_videos
from vidtok_kit.losses.lpips import LPIPS
from vidtok_kit.metrics import InceptionI3d, ssim_per_frame
from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny" / "kl_causal.toml"
FSQ = ('model.regularizer={kind="fsq", levels=[4, 4, 4]}', "model.z_channels=3")


@pytest.fixture(scope="module")
def carphone() -> Path:
    return next(p for p in sample_videos() if p.name == "carphone_pristine.mp4")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny model whose temporal blocks are not the identity (their conv2 starts at zero)."""
    recipe = load_recipe(TINY)
    torch.manual_seed(3)
    model = build_model(recipe.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_tokenizer(model, recipe, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _cli():
    from vidtok_kit import cli as cli_module

    cli_module._add_subsystem_commands()
    return cli_module.cli


def _invoke(*args: str):
    return CliRunner().invoke(_cli(), ["eval", *map(str, args), "--no-progress"])


def _direct(path: Path, ckpt: Path, *, interval: int, frames: int = 9, size: int = 32) -> tuple[list[float], list[float]]:
    """Per-frame PSNR/SSIM with the clip protocol spelled out by hand (whole video decoded at once)."""
    from vidtok_kit.loading import load_model

    model = load_model(TINY, ckpt)[0]
    video = read_video(path, size=size)[0][:, ::interval]  # every frame, then the reference's interval
    psnr, ssim = [], []
    for start in range(0, video.shape[1], frames):
        clip = video[:, start : start + frames]
        clip = torch.cat([clip, clip[:, -1:].repeat(1, frames - clip.shape[1], 1, 1)], dim=1)
        with torch.no_grad():
            recon = model(clip[None]).recon.clamp(-1, 1)
        x, y = ((clip[None] + 1) / 2).double().numpy(), ((recon + 1) / 2).double().numpy()
        mse = ((x - y) ** 2).mean(axis=(0, 1, 3, 4))
        psnr += list(-10 * np.log10(mse + 1e-8))
        ssim += ssim_per_frame((clip[None] + 1) / 2, (recon + 1) / 2)[0].tolist()
    return psnr, ssim


def test_eval_writes_csv_json_markdown_matching_direct_metrics(tmp_path: Path, carphone: Path, checkpoint: Path, fresh_cli: None) -> None:
    out = tmp_path / "out"
    result = _invoke(TINY, carphone, "--checkpoint", checkpoint, "--size", 32, "--frames", 9, "--fps", 15, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    # 29.97 fps / 15 -> every 2nd frame: 60 of 120 frames -> 7 clips of 9, the last padded by 3
    assert (summary["videos"], summary["clips"], summary["frames"], summary["scored_frames"]) == (1, 7, 60, 63)
    psnr, ssim = _direct(carphone, checkpoint, interval=2)
    assert len(psnr) == 63
    assert summary["metrics"]["psnr"] == pytest.approx(float(np.mean(psnr)), abs=1e-4)
    assert summary["metrics"]["ssim"] == pytest.approx(float(np.mean(ssim)), abs=1e-5)
    assert summary["metrics"]["lpips"] is None and summary["metrics"]["fvd"] is None
    assert any("LPIPS skipped" in n for n in summary["notes"]) and any("FVD skipped" in n for n in summary["notes"])
    rows = list(csv.DictReader((out / "per_video.csv").open()))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["clips"] == "7"
    assert float(rows[0]["psnr"]) == pytest.approx(summary["metrics"]["psnr"], rel=1e-9)
    markdown = (out / "summary.md").read_text()
    assert f"| 1 | 7 | 63 | {summary['metrics']['psnr']:.2f} |" in markdown
    assert "warning" not in result.output  # a checkpoint was given


def test_clips_cover_every_sampled_frame_once(carphone: Path) -> None:
    clips = list(iter_eval_clips(carphone, frames=17, fps=30, size=32, multiple=8))
    assert [c.real for c in clips] == [17] * 7 + [1]  # 120 frames at interval 1
    assert all(c.video.shape == (3, 17, 32, 32) for c in clips)
    last = clips[-1].video
    assert torch.equal(last, last[:, :1].expand_as(last))  # padded by repeating its last (only) frame
    whole = read_video(carphone, size=32)[0]
    assert torch.equal(torch.cat([c.video[:, : c.real] for c in clips], dim=1), whole)


def test_bad_file_in_folder_is_listed_and_skipped(tmp_path: Path, carphone: Path, checkpoint: Path, fresh_cli: None) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(carphone, data / "good.mp4")
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    (data / "readme.txt").write_text("not a video, and not collected")
    out = tmp_path / "out"
    result = _invoke(TINY, data, "--checkpoint", checkpoint, "--size", 32, "--frames", 9, "-o", out)
    assert result.exit_code == 1
    assert "skipped" in result.output and "broken.mp4" in result.output and "Traceback" not in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == 1 and summary["clips"] == 14
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["broken.mp4"]
    rows = {Path(r["path"]).name: r for r in csv.DictReader((out / "per_video.csv").open())}
    assert set(rows) == {"good.mp4", "broken.mp4"}
    assert rows["broken.mp4"]["status"] == "skipped" and rows["broken.mp4"]["error"]
    assert "broken.mp4" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        ("missing", (), "no such file or folder"),
        ("text.mp4", (), "text.mp4"),
        ("sample", ("--frames", "8"), "takes 1 + 4k frames"),
        ("sample", ("--size", "30"), "multiple of the model's spatial factor 4"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, carphone: Path, data: str, extra: tuple[str, ...], message: str, fresh_cli: None) -> None:
    (tmp_path / "text.mp4").write_text("hello\n" * 100)
    target = carphone if data == "sample" else tmp_path / data
    result = _invoke(TINY, target, "-o", tmp_path / "out", *extra)
    assert result.exit_code == 1
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output
    assert "Traceback" not in result.output


def test_random_init_warns(tmp_path: Path, carphone: Path, fresh_cli: None) -> None:
    result = _invoke(TINY, carphone, "--size", 32, "--frames", 9, "--fps", 5, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: no --checkpoint" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["checkpoint"] is None and any("randomly initialised" in n for n in summary["notes"])


def test_long_streams_the_whole_video_and_scores_each_real_frame_once(tmp_path: Path, carphone: Path, checkpoint: Path, fresh_cli: None) -> None:
    result = _invoke(TINY, carphone, "--checkpoint", checkpoint, "--size", 32, "--frames", 9, "--fps", 10, "--long", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == summary["scored_frames"] == 40  # interval 3: 120 -> 40, no padding scored
    assert summary["clips"] == 5  # FVD regroups the 40 frames into 9-frame clips
    assert any("streamed" in n for n in summary["notes"])
    # one pass over the whole video (v1.0 takes 1 + 4k frames: pad 40 -> 41 with the last frame)
    from vidtok_kit.loading import load_model

    model = load_model(TINY, checkpoint)[0]
    video = read_video(carphone, size=32)[0][:, ::3]
    x = torch.cat([video, video[:, -1:]], dim=1)[None]
    with torch.no_grad():
        recon = model(x).recon.clamp(-1, 1)[:, :, :40]
    x01, y01 = (video[None] + 1) / 2, (recon + 1) / 2
    psnr = (-10 * torch.log10(((x01 - y01) ** 2).mean(dim=(1, 3, 4)) + 1e-8)).mean().item()
    assert summary["metrics"]["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert summary["metrics"]["ssim"] == pytest.approx(ssim_per_frame(x01, y01).mean().item(), abs=1e-4)


def test_lpips_is_the_frame_mean_of_the_network_and_loads_from_written_files(tmp_path: Path, carphone: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = LPIPS.random_init(seed=1)
    vgg = {k.removeprefix("net."): v for k, v in net.state_dict().items() if k.startswith("net.")}
    lin = {k: v for k, v in net.state_dict().items() if k.startswith("lin")}
    save_file(vgg, str(tmp_path / "vgg16.safetensors"))
    save_file(lin, str(tmp_path / "lpips_vgg.safetensors"))
    monkeypatch.setenv("VIDTOK_KIT_VGG16_WEIGHTS", str(tmp_path / "vgg16.safetensors"))
    monkeypatch.setenv("VIDTOK_KIT_LPIPS_WEIGHTS", str(tmp_path / "lpips_vgg.safetensors"))
    options = EvalOptions(fps=6, size=32, frames=9)  # interval 5: 24 frames, 3 clips (VGG is the cost)
    job = run_eval(TINY, carphone, output=tmp_path / "out", checkpoint=checkpoint, options=options, progress=False)
    assert not any("LPIPS" in n for n in job.summary["notes"])

    evaluator = Evaluator(build_model(load_recipe(TINY).model), options)  # only for its clips
    from vidtok_kit.loading import load_model

    model = load_model(TINY, checkpoint)[0]
    values = []
    for clip in evaluator.clips(carphone):
        with torch.no_grad():
            recon = model(clip.video[None]).recon.clamp(-1, 1)[0]
            values.append(net(clip.video.transpose(0, 1), recon.transpose(0, 1)).flatten())
    expected = torch.cat(values).double().mean().item()
    assert expected > 0
    assert job.summary["metrics"]["lpips"] == pytest.approx(expected, rel=1e-5)


def _frechet_by_eigen(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two samples, via symmetric eigendecompositions (no sqrtm).

    torch (one thread, see above) rather than NumPy: OpenBLAS threads crawl on a busy 2-core machine.
    """
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = torch.cov(x.T), torch.cov(y.T)
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = torch.linalg.eigvalsh(root1 @ s2 @ root1)  # the spectrum of s1 @ s2
    return float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * inner.clamp(min=0).sqrt().sum())


def test_fvd_equals_the_frechet_distance_of_the_clip_feature_gaussians(tmp_path: Path, carphone: Path, checkpoint: Path) -> None:
    torch.manual_seed(7)
    extractor = nn.Sequential(nn.Conv3d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3))
    from vidtok_kit.loading import load_model

    model = load_model(TINY, checkpoint)[0]
    evaluator = Evaluator(model, EvalOptions(fps=10, size=32, frames=9), fvd_extractor=extractor)
    evaluator.evaluate_video(carphone)
    real, fake = [], []
    with torch.no_grad():
        for clip in evaluator.clips(carphone):
            recon = model(clip.video[None]).recon.clamp(-1, 1)
            real.append(extractor((clip.video[None] + 1) / 2))
            fake.append(extractor((recon + 1) / 2))
    a, b = torch.cat(real).double().numpy(), torch.cat(fake).double().numpy()
    assert a.shape == (5, 3)
    assert evaluator.summary()["metrics"]["fvd"] == pytest.approx(_frechet_by_eigen(a, b), rel=1e-6, abs=1e-9)


def test_fvd_known_gaussians_and_i3d_weights_from_a_written_file(tmp_path: Path, carphone: Path, checkpoint: Path) -> None:
    # the closed form itself: N(0, I) vs N(mu, 4 I) in 3-D is |mu|^2 + 3 (1 + 4 - 2 * 2)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4000, 3)), rng.standard_normal((4000, 3)) * 2 + np.array([1.0, 2.0, 0.0])
    assert _frechet_by_eigen(a, b) == pytest.approx(5 + 3, rel=0.05)

    torch.manual_seed(11)
    i3d = InceptionI3d()
    torch.save(i3d.state_dict(), tmp_path / "i3d.pt")
    options = EvalOptions(fps=6, size=32, frames=9)
    job = run_eval(TINY, carphone, output=tmp_path / "out", checkpoint=checkpoint, options=options,
                   i3d_weights=tmp_path / "i3d.pt", i3d_size=32, progress=False)
    from vidtok_kit.loading import load_model

    model = load_model(TINY, checkpoint)[0]
    i3d.eval()
    real, fake = [], []
    with torch.no_grad():
        for clip in iter_eval_clips(carphone, frames=9, fps=6, size=32, multiple=4):
            recon = model(clip.video[None]).recon.clamp(-1, 1)
            real.append(i3d(clip.video[None]))  # I3D takes [-1, 1]: the clip as it is
            fake.append(i3d(recon))
    expected = _frechet_by_eigen(torch.cat(real).double().numpy(), torch.cat(fake).double().numpy())
    assert job.summary["clips"] == 3
    # 400-d features from 3 clips: rank-deficient covariances, so sqrtm needs the eps offset
    assert job.summary["metrics"]["fvd"] == pytest.approx(expected, rel=1e-3)


def test_codebook_utilisation_and_perplexity_for_discrete_models(tmp_path: Path, carphone: Path, fresh_cli: None) -> None:
    result = _invoke(TINY, carphone, "--size", 32, "--frames", 9, "-o", tmp_path, *[a for s in FSQ for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    torch.manual_seed(0)  # the CLI built the model after the autouse seed: rebuild it the same way
    model = build_model(load_recipe(TINY, overrides=FSQ).model).eval()
    counts = torch.zeros(64, dtype=torch.float64)
    with torch.no_grad():
        for clip in iter_eval_clips(carphone, frames=9, fps=30, size=32, multiple=4):
            counts += torch.bincount(model.encode(clip.video[None]).indices.flatten().long(), minlength=64)
    p = counts[counts > 0] / counts.sum()
    assert summary["codebook"]["tokens"] == counts.sum().item()
    assert summary["metrics"]["codebook_utilisation"] == pytest.approx((counts > 0).sum().item() / 64)
    assert summary["metrics"]["codebook_perplexity"] == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-9)
