"""The demo path end to end (two steps instead of hundreds) and the resampling baseline."""

from __future__ import annotations

import json
import math

import torch

from vidtok_kit.train.heldout import resampling_baseline, score


def test_resampling_baseline_keeps_at_least_the_latent_size_and_is_exact_on_flat_video() -> None:
    flat = torch.full((3, 9, 32, 32), 0.25)
    recon, kept = resampling_baseline(flat, temporal_factor=4, spatial_factor=4, latent_channels=4)
    assert recon.shape == flat.shape and torch.allclose(recon, flat)
    assert kept >= 4 * 3 * 8 * 8  # z=4 channels x 3 latent frames x 8x8
    _, kept3 = resampling_baseline(flat, temporal_factor=4, spatial_factor=4, latent_channels=3)
    assert kept3 == 3 * 3 * 8 * 8  # with 3 latent channels: exactly the model's factors
    ramp = torch.linspace(-1, 1, 9).view(1, 9, 1, 1).expand(3, 9, 32, 32)
    recon, _ = resampling_baseline(ramp, temporal_factor=4, spatial_factor=4, latent_channels=3)
    assert torch.allclose(recon, ramp, atol=1e-6)  # linear in time between anchor frames
    assert math.isinf(score(ramp, ramp)["psnr"]) is False and score(ramp, ramp)["psnr"] > 70


def test_demo_trains_and_scores_a_held_out_video(tmp_path, repo_root, carphone_list) -> None:
    from vidtok_kit import load_recipe
    from vidtok_kit.io import sample_videos
    from vidtok_kit.train.commands import find_demo_recipe, run_demo

    assert find_demo_recipe() == repo_root / "recipes" / "tiny" / "demo.toml"
    bikes = next(p for p in sample_videos() if p.name == "bikes.mp4")
    # the small carphone clips instead of all samples (bigbuckbunny is 1280x720): same code path, faster
    sets = ["train.steps=2", "train.batch_size=1", "data.num_workers=0", f"data.train={json.dumps(str(carphone_list))}",
            f"data.val={json.dumps(str(bikes))}"]
    recipe = load_recipe(find_demo_recipe(), overrides=sets)
    res = run_demo(recipe, tmp_path / "demo", progress=False)
    assert res["video"].endswith("bikes.mp4") and res["clips"] >= 2 and res["steps"] == 2
    assert res["baseline_numbers"] >= res["latent_numbers"]
    for key in ("side_by_side", "frames_png", "loss_plot", "metrics_json", "checkpoint"):
        assert (tmp_path / "demo").joinpath(res[key]).stat().st_size > 0, key
    stored = json.loads((tmp_path / "demo" / "demo" / "heldout.json").read_text())
    assert 5 < stored["tokenizer"]["psnr"] < 60 and 0 < stored["resampling_baseline"]["ssim"] <= 1
