"""The ``joint3d`` space-time sampler (paper Table 2 Variant 1) inside a model: it replaces the spatial
sampler where a level resamples both axes, keeps the model's frame rules, and streams exactly.
(The per-component contract runs in test_contracts.py like every registered component.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.recipe import load_recipe

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "ablations" / "variant1_fully_3d.toml"


def _model(version: str = "v1.0"):
    recipe = load_recipe(RECIPE, overrides=[f'model.version="{version}"'])
    torch.manual_seed(0)
    model = build_model(recipe.model).eval()
    with torch.no_grad():  # temporal blocks start as identities; perturb so every path matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return recipe, model


def test_joint_levels_use_one_space_time_module() -> None:
    recipe, model = _model()
    cfg = recipe.model
    for i, level in enumerate(model.encoder.down):
        both = i in cfg.spatial_down and i in cfg.temporal_down
        assert not hasattr(level, "time_downsample")
        if i in cfg.spatial_down:
            assert type(level.downsample).__name__ == ("Joint3dDown" if both else "Conv3dSpatialDown")
    for i, level in enumerate(model.decoder.up):
        assert not hasattr(level, "time_upsample")
        if i in cfg.spatial_up:
            both = i in cfg.temporal_up
            assert type(level.upsample).__name__ == ("Joint3dUp" if both else "Conv3dSpatialUp")
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        out = model(x)
    assert out.reg.latent.shape == (1, 4, 3, 8, 8)  # 4x time, 4x space, as the base recipe
    assert out.recon.shape == x.shape and torch.isfinite(out.recon).all()


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_streaming_equals_the_whole_clip(version: str) -> None:
    from vidtok_kit import load

    _, model = _model(version)
    x = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        whole = model(x).recon
        encoder = load(model).streaming_encoder(num_frames=17, chunk_frames=4)
        decoder = load(model).streaming_decoder(front_pad=encoder.front_pad, num_frames=17, chunk_latents=3)
        chunks = [x[:, :, i : i + 5] for i in range(0, 17, 5)]
        streamed = torch.cat(list(decoder(c.latent for c in encoder(chunks))), dim=2)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)
