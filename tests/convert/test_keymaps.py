"""Every original checkpoint layout maps strictly onto the model its recipe builds (meta device).

The layouts (key -> shape of all 23 released configs, dumped from the reference implementation)
live in ``../shared/spec/checkpoint-layouts``; the test is skipped where that folder is absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vidtok_kit.convert.checkpoint import load_weights
from vidtok_kit.convert.keymaps import looks_original, original_key, original_keys
from vidtok_kit.errors import CheckpointError
from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
LAYOUT_DIR = REPO.parent / "shared" / "spec" / "checkpoint-layouts"
LAYOUTS = sorted(p.stem for p in LAYOUT_DIR.glob("*.json"))


def _layout(name: str, shared_spec: Path) -> dict:
    return json.loads((shared_spec / "checkpoint-layouts" / f"{name}.json").read_text())


def _meta_model(name: str):
    recipe = load_recipe(REPO / "recipes" / "vidtok" / f"{name}.toml")
    return recipe, build_model(recipe, device="meta")


def test_there_is_one_recipe_per_released_layout(shared_spec: Path) -> None:
    recipes = {p.stem for p in (REPO / "recipes" / "vidtok").glob("*.toml")}
    assert len(LAYOUTS) == 23
    assert recipes == set(LAYOUTS)


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_maps_strictly_onto_the_recipe_model(name: str, shared_spec: Path) -> None:
    layout = _layout(name, shared_spec)
    recipe, model = _meta_model(name)
    ours = model.state_dict()
    mapping = original_keys(ours, causal=recipe.model.causal)
    assert len(mapping) == len(ours) == layout["num_tensors"]
    missing, unexpected = set(layout["tensors"]) - set(mapping), set(mapping) - set(layout["tensors"])
    assert not missing and not unexpected, f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
    wrong = {k: (shape, list(ours[mapping[k]].shape)) for k, shape in layout["tensors"].items() if list(ours[mapping[k]].shape) != shape}
    assert not wrong, wrong
    assert sum(math.prod(s) for s in layout["tensors"].values()) == layout["num_elements"]
    assert sum(p.numel() for p in model.parameters()) == layout["num_elements"]
    # and the loader accepts exactly this layout, strictly, on the meta device
    state = {k: torch.empty(shape, device="meta") for k, shape in layout["tensors"].items()}
    assert load_weights(model, state, source=name) == "original VidTok"


def test_loader_rejects_missing_and_unexpected_keys_on_meta(shared_spec: Path) -> None:
    name = "vidtok_kl_noncausal_488_4chn"
    layout = _layout(name, shared_spec)
    _, model = _meta_model(name)
    state = {k: torch.empty(shape, device="meta") for k, shape in layout["tensors"].items()}
    del state["decoder.conv_out.weight"]
    state["decoder.conv_out.weight_typo"] = torch.empty(3, 128, 3, 3, 3, device="meta")
    with pytest.raises(CheckpointError) as info:
        load_weights(model, state, source="x.ckpt")
    message = str(info.value)
    assert message.startswith("x.ckpt: does not fit this model (original VidTok layout)")
    assert "missing 1 keys: decoder.conv_out.weight" in message
    assert "unexpected 1 keys: decoder.conv_out.weight_typo" in message


def test_loader_rejects_wrong_shapes_naming_the_tensor(shared_spec: Path) -> None:
    name = "vidtok_kl_causal_488_4chn"
    layout = _layout(name, shared_spec)
    _, model = _meta_model(name)
    state = {k: torch.empty(shape, device="meta") for k, shape in layout["tensors"].items()}
    state["encoder.conv_out.conv.weight"] = torch.empty(32, 512, 3, 3, 3, device="meta")  # 16chn, not 4chn
    with pytest.raises(CheckpointError, match=r"1 tensors have the wrong shape.*encoder\.conv_out\.conv\.weight \(32, 512"):
        load_weights(model, state, source="x.ckpt")


def test_noncausal_keys_drop_the_conv_wrapper_but_samplers_keep_it() -> None:
    assert original_key("encoder.conv_in.conv.weight", causal=False) == "encoder.conv_in.weight"
    assert original_key("encoder.conv_in.conv.weight", causal=True) == "encoder.conv_in.conv.weight"
    assert original_key("encoder.down.1.time_downsample.conv.conv.bias", causal=False) == (
        "encoder.down_temporal.1.downsample.conv.bias"
    )
    assert original_key("encoder.down.0.downsample.conv.weight", causal=False) == "encoder.down.0.downsample.conv.weight"
    assert original_key("decoder.up.2.block.1.temporal.conv1.conv.weight", causal=True) == (
        "decoder.up_temporal.2.block.1.conv1.conv.weight"
    )
    assert original_key("decoder.up.2.block.1.spatial.nin_shortcut.weight", causal=True) == (
        "decoder.up.2.block.1.nin_shortcut.weight"
    )


class TestTinyModel:
    """The same strictness on a real (tiny) model, both layouts."""

    def test_original_layout_round_trip_and_ignored_training_keys(self, make_tiny_model) -> None:
        src, dst = make_tiny_model(), make_tiny_model()
        mapping = original_keys(src.state_dict(), causal=True)
        original = {orig: src.state_dict()[ours].clone() for orig, ours in mapping.items()}
        assert looks_original(original)
        original["loss.logvar"] = torch.zeros(())
        original["model_ema.decay"] = torch.tensor(0.999)
        assert load_weights(dst, original) == "original VidTok"
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v), k

    def test_our_layout_missing_and_unexpected_keys_are_listed(self, make_tiny_model) -> None:
        model = make_tiny_model()
        state = dict(model.state_dict())
        state.pop("encoder.conv_in.conv.bias")
        state["encoder.extra.weight"] = torch.zeros(1)
        with pytest.raises(CheckpointError) as info:
            load_weights(model, state, source="ours.safetensors")
        message = str(info.value)
        assert "(vidtok-kit layout)" in message and "\n" not in message
        assert "missing 1 keys: encoder.conv_in.conv.bias" in message
        assert "unexpected 1 keys: encoder.extra.weight" in message

    def test_long_key_lists_are_truncated(self, make_tiny_model) -> None:
        model = make_tiny_model()
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}
        with pytest.raises(CheckpointError, match=r"missing \d+ keys: .* \.\.\. and \d+ more"):
            load_weights(model, state)
