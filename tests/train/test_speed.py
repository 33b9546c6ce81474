"""Training speed options (``[train]`` arithmetic / channels_last / compile / activation_checkpointing).

Off by default and then bit-identical to the plain model; on, the same gradients to float rounding
(activation checkpointing alone: bit for bit); resumable runs stay bit-identical with them on.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidtok_kit import build_model
from vidtok_kit.model.shortcuts import arithmetic_of
from vidtok_kit.pluginmanager import default_registry
from vidtok_kit.recipe import TrainConfig, dump_recipe, load_recipe, recipe_from_dict
from vidtok_kit.testing import perturb_parameters
from vidtok_kit.train import run
from vidtok_kit.train.speed import prepare_for_training

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "kl_causal.toml"
SPEED_SETS = ["train.arithmetic='fast'", "train.channels_last=true", "train.activation_checkpointing=true"]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(TINY)
    with torch.no_grad():
        perturb_parameters(model, scale=0.05)  # zero-initialised temporal convs must matter
    return model.train()


def _step(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward + backward of the L1 loss with fixed KL noise; the gradients by name."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    out = model(x, sample=True)
    (out.recon - x).abs().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _clip() -> torch.Tensor:
    return torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _assert_close_grads(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor], rtol: float) -> None:
    assert ref.keys() == got.keys()
    scale = max(float(g.abs().max()) for g in ref.values())
    for name, g in ref.items():
        top = float(g.abs().max())
        if top <= 1e-7 * scale:  # attention key biases: their true gradient is zero, only noise is left
            continue
        assert float((got[name] - g).abs().max()) <= rtol * top, name


def test_defaults_keep_todays_behaviour() -> None:
    cfg = TrainConfig()
    assert (cfg.arithmetic, cfg.channels_last, cfg.compile, cfg.activation_checkpointing) == ("reference", False, False, False)
    model = _model()
    plain = copy.deepcopy(model)
    assert prepare_for_training(model) == []
    assert set(arithmetic_of(model).values()) == {"reference"}
    ref, got = _step(plain, _clip()), _step(model, _clip())
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_speed_options_round_trip_in_a_recipe() -> None:
    sets = [*SPEED_SETS, "train.compile=true"]
    recipe = load_recipe(TINY, overrides=sets)
    assert (recipe.train.arithmetic, recipe.train.channels_last, recipe.train.compile) == ("fast", True, True)
    assert load_recipe(TINY, overrides=[]).train != recipe.train
    registry = default_registry()
    assert recipe_from_dict(tomllib.loads(dump_recipe(recipe)), registry=registry, source="dumped") == recipe


def test_unknown_arithmetic_is_refused() -> None:
    with pytest.raises(Exception, match="arithmetic"):
        load_recipe(TINY, overrides=["train.arithmetic='quick'"])


def test_activation_checkpointing_gives_the_same_gradients_bit_for_bit() -> None:
    model = _model()
    checkpointed = copy.deepcopy(model)
    prepare_for_training(checkpointed, activation_checkpointing=True)
    ref, got = _step(model, _clip()), _step(checkpointed, _clip())
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_fast_channels_last_step_has_the_reference_gradients() -> None:
    model = _model()
    fast = copy.deepcopy(model)
    prepare_for_training(fast, arithmetic="fast", channels_last=True, activation_checkpointing=True)
    assert set(arithmetic_of(fast).values()) == {"fast"}
    x = _clip()
    _assert_close_grads(_step(model, x), _step(fast, x), rtol=1e-4)
    with torch.no_grad():
        h = fast.encoder(fast.pad_frames(x))
    assert h.is_contiguous(memory_format=torch.channels_last_3d)


def test_streaming_state_is_never_checkpointed() -> None:
    from vidtok_kit.model.encoder import run_level

    calls = []

    def level(h, state):
        calls.append(state)
        return h * 2

    h = torch.ones(1, 1, 1, 1, 1, requires_grad=True)
    state = object()
    assert torch.equal(run_level(level, h, state, checkpointed=True), h * 2)  # type: ignore[arg-type]
    assert calls == [state]


@pytest.mark.slow
def test_compiled_training_graphs_have_the_eager_gradients() -> None:
    # aot_eager: dynamo + AOTAutograd (the forward/backward split Inductor gets), no C++ codegen
    model = _model()
    compiled = copy.deepcopy(model)
    functions = prepare_for_training(compiled, arithmetic="fast", channels_last=True, compile=True,
                                     activation_checkpointing=True, backend="aot_eager")
    x = _clip()
    ref = _step(model, x)
    prepare_for_training(model, arithmetic="fast", channels_last=True)
    got = _step(compiled, x)
    assert all(f.active for f in functions), [f.failure for f in functions]
    _assert_close_grads(ref, got, rtol=1e-4)
    assert compiled.state_dict().keys() == model.state_dict().keys()


def test_resume_with_speed_options_equals_uninterrupted_run(tmp_path, fast_sets, make_recipe) -> None:
    sets = [*fast_sets, *SPEED_SETS, "train.save_every=2", "train.loss.disc_start=2", "train.loss.disc_lr=1e-3",
            "train.lr=1e-3"]
    run(make_recipe([*sets, "train.steps=3"]), tmp_path / "full", progress=False)
    run(make_recipe([*sets, "train.steps=2"]), tmp_path / "cut", progress=False)
    resumed = run(make_recipe([*sets, "train.steps=3"]), tmp_path / "cut", resume=True, progress=False)
    assert resumed.step == 3
    for name in ("model", "loss"):
        full = load_file(str(tmp_path / "full" / "checkpoints" / "step_00000003" / f"{name}.safetensors"))
        cut = load_file(str(tmp_path / "cut" / "checkpoints" / "step_00000003" / f"{name}.safetensors"))
        assert full.keys() == cut.keys()
        for key in full:
            assert torch.equal(full[key], cut[key]), f"{name}: {key} differs after resume"


def test_speed_options_may_change_when_resuming(tmp_path, fast_sets, make_recipe) -> None:
    run(make_recipe([*fast_sets, "train.steps=1"]), tmp_path / "run", progress=False)
    resumed = run(make_recipe([*fast_sets, *SPEED_SETS, "train.steps=2"]), tmp_path / "run", resume=True, progress=False)
    assert resumed.step == 2
