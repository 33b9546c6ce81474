"""The Table 3 ablation recipes change only the regularizer; the tiny quantizer recipes train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.pluginmanager import load_plugins
from vidtok_kit.recipe import load_recipe, recipe_to_dict

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
ABLATIONS = RECIPES / "ablations" / "regularizers"

#: file -> (kind, codebook size, latent channels, entropy regularisation on)
TABLE3: dict[str, tuple[str, int, int, bool]] = {
    "vq_262144_noreg.toml": ("vq", 262144, 6, False),
    "vq_262144_reg.toml": ("vq", 262144, 6, True),
    "lfq_262144_noreg.toml": ("lfq", 262144, 18, False),
    "lfq_262144_reg.toml": ("lfq", 262144, 18, True),
    "fsq_262144_noreg.toml": ("fsq", 262144, 6, False),
    "fsq_262144_reg.toml": ("fsq", 262144, 6, True),
    "fsq_32768_reg.toml": ("fsq", 32768, 5, True),
    "fsq_4096_reg.toml": ("fsq", 4096, 4, True),
}


@pytest.fixture(scope="module")
def registry() -> Any:
    return load_plugins(autoload=False)[1]


def _without(data: dict[str, Any], *dotted: str) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key in dotted:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node[part]
        node.pop(parts[-1], None)
    return out


def test_every_table3_row_has_a_recipe_and_nothing_else_is_there() -> None:
    assert sorted(p.name for p in ABLATIONS.glob("*.toml") if p.name != "suite.toml") == sorted(TABLE3)


def test_base_is_the_released_fsq_model(registry: Any) -> None:
    base = recipe_to_dict(load_recipe(RECIPES / "fsq_488.toml", registry=registry))
    released = recipe_to_dict(load_recipe(RECIPES / "vidtok" / "vidtok_fsq_causal_488_262144.toml", registry=registry))
    assert _without(base, "name", "description") == _without(released, "name", "description")
    assert (RECIPES / "fsq_488.toml").read_text().startswith("# FSQ-262,144 causal 4x8x8")


@pytest.mark.parametrize("filename", sorted(TABLE3))
def test_ablation_changes_only_the_regularizer(filename: str, registry: Any) -> None:
    kind, size, channels, reg = TABLE3[filename]
    path = ABLATIONS / filename
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# Table 3 row") and f"{size:,}" in first and kind.upper() in first
    assert 'extends = "../../fsq_488.toml"' in text
    recipe = load_recipe(path, registry=registry)
    base = recipe_to_dict(load_recipe(RECIPES / "fsq_488.toml", registry=registry))
    mine = recipe_to_dict(recipe)
    ignore = ("name", "description", "model.regularizer", "model.z_channels")
    assert _without(mine, *ignore) == _without(base, *ignore)
    assert recipe.model.regularizer.kind == kind and recipe.model.z_channels == channels
    cls = registry.get("regularizer", kind)
    instance = cls(recipe.model.regularizer.config, z_channels=channels)  # z_channels follows the codebook
    assert instance.codebook_size == size
    assert (recipe.model.regularizer.config.entropy_loss_weight > 0) == reg


@pytest.mark.parametrize("name", ["fsq_causal", "vq_causal", "lfq_causal"])
def test_tiny_quantizer_recipes_train_and_decode_from_indices(name: str, registry: Any) -> None:
    model = build_model(load_recipe(RECIPES / "tiny" / f"{name}.toml", registry=registry), registry=registry)
    x = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model.train()
    out = model(x, sample=True, step=3)
    loss = (out.recon - x).abs().mean() + out.reg.loss
    loss.backward()
    assert torch.isfinite(loss) and out.reg.loss != 0
    # the straight-through estimator carries the reconstruction gradient into the encoder (all but
    # the temporal blocks' first layers, which sit behind VidTok's zero-initialised conv2)
    starved = [n for n, p in model.encoder.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert all(".temporal." in n for n in starved), starved
    model.eval()
    with torch.no_grad():
        reg = model.encode(x)
        assert reg.indices.shape == (1, 3, 8, 8) and reg.indices.dtype == model.regularizer.index_dtype
        torch.testing.assert_close(model.decode_indices(reg.indices), model.decode(reg.latent))
