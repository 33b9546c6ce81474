"""FSQ: the released models' training losses, kept faithful to the original, plus invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from vidtok_kit.plugins.regularizers.fsq import FSQConfig, FSQRegularizer

from vidtok_kit.interfaces import smallest_index_dtype
from vidtok_kit.pluginmanager import load_plugins
from vidtok_kit.recipe import load_recipe
from vidtok_kit.testing import RegularizerContract

REPO = Path(__file__).resolve().parents[2]
VIDTOK_SETTINGS = dict(
    entropy_loss_weight=0.1, entropy_loss_annealing_steps=2000, entropy_loss_annealing_factor=3.0, commitment_loss_weight=0.25
)


class TestFSQWithLossesContract(RegularizerContract):
    component = FSQRegularizer

    def make_config(self) -> FSQConfig:
        return FSQConfig(levels=(8, 5, 5, 5), **VIDTOK_SETTINGS)


def original_aux_loss(h: torch.Tensor, reg: FSQRegularizer, n_steps: int) -> torch.Tensor:
    """microsoft/VidTok ``FSQRegularizer.forward``'s aux_loss, transcribed (tokens x codebook matrix,
    probabilities clamped at 1e-5 inside the log, global_step // 2 passed as n_steps)."""
    cfg = reg.config

    def entropy(prob: torch.Tensor) -> torch.Tensor:
        return (-prob * prob.clamp(min=1e-5).log()).sum(dim=-1)

    z = rearrange(h.float(), "b d t x y -> b (t x y) 1 d")
    codes = reg.quantize(z)
    implicit_codebook = reg.indices_to_codes(torch.arange(reg.codebook_size))
    distance = -2 * torch.einsum("... i d, j d -> ... i j", z, implicit_codebook)
    prob = (-distance * 100.0).softmax(dim=-1)
    assert prob.min() > 1e-5, "test precondition: the original's clamp must be inactive"
    per_sample_probs = rearrange(prob, "b n ... -> (b n) ...")
    per_sample_entropy = entropy(per_sample_probs).mean()
    avg_prob = per_sample_probs.mean(dim=0)
    codebook_entropy = entropy(avg_prob).mean()
    entropy_aux_loss = per_sample_entropy - 1.0 * codebook_entropy
    commit_loss = F.mse_loss(z, codes.detach())
    steps, factor, weight = cfg.entropy_loss_annealing_steps, cfg.entropy_loss_annealing_factor, cfg.entropy_loss_weight
    if n_steps >= steps:
        w = weight
    else:
        start = factor * weight
        w = start - (n_steps / steps) * (start - weight)
    return entropy_aux_loss * w + commit_loss * cfg.commitment_loss_weight


@pytest.mark.parametrize("step", [0, 700, 2000, 5000])
def test_aux_loss_equals_the_original_formula(step: int) -> None:
    reg = FSQRegularizer(FSQConfig(levels=(3, 4, 3), **VIDTOK_SETTINGS), z_channels=3).train()
    gen = torch.Generator().manual_seed(step)
    # small raw latents keep every code probability above the original's 1e-5 clamp
    h = ((torch.rand(2, 3, 2, 3, 3, generator=gen) * 2 - 1) * 0.003).requires_grad_(True)
    ours = reg(h, step=step).loss
    want = original_aux_loss(h, reg, step)
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-6)
    g_ours = torch.autograd.grad(ours, h)[0]
    g_want = torch.autograd.grad(want, h)[0]
    torch.testing.assert_close(g_ours, g_want, rtol=1e-4, atol=1e-6)


def test_entropy_equals_direct_formula_when_distributions_are_peaked() -> None:
    """Where the original's clamp would bite, we equal the exact entropy of the same softmax."""
    reg = FSQRegularizer(FSQConfig(levels=(8, 8, 4), entropy_loss_weight=1.0), z_channels=3)
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    codebook = reg.indices_to_codes(torch.arange(reg.codebook_size))
    logp = (200.0 * z @ codebook.T).log_softmax(-1)
    p = logp.exp()
    q = p.mean(0)
    per_token, cb = -(p * logp).sum(-1).mean(), -(q * q.clamp_min(1e-38).log()).sum()
    assert (p < 1e-5).float().mean() > 0.5  # mostly below the original's clamp
    terms = reg.entropy_terms(z)
    torch.testing.assert_close(terms.per_token, per_token, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(terms.codebook, cb, rtol=1e-4, atol=1e-5)


def test_entropy_weight_is_annealed_by_the_step_passed_in() -> None:
    reg = FSQRegularizer(FSQConfig(levels=(4, 4), **VIDTOK_SETTINGS), z_channels=2).train()
    h = torch.randn(1, 2, 2, 4, 4)
    weights = [float(reg(h, step=s).logs["entropy_weight"]) for s in (0, 1000, 2000, 9999)]
    assert weights == pytest.approx([0.3, 0.2, 0.1, 0.1])


def test_commitment_is_on_the_raw_unbounded_latent() -> None:
    reg = FSQRegularizer(FSQConfig(levels=(8, 8), commitment_loss_weight=1.0), z_channels=2).train()
    h = torch.full((1, 2, 1, 2, 2), 5.0)  # saturates tanh: code 0.75 (digit 7)
    out = reg(h)
    assert torch.allclose(out.latent, torch.tensor(0.75))
    torch.testing.assert_close(out.logs["commitment"], torch.tensor((5.0 - 0.75) ** 2))


def test_losses_are_training_only_and_eval_latents_do_not_depend_on_them() -> None:
    plain = FSQRegularizer(FSQConfig(levels=(8, 5, 5)), z_channels=3)
    lossy = FSQRegularizer(FSQConfig(levels=(8, 5, 5), **VIDTOK_SETTINGS), z_channels=3)
    h = torch.randn(2, 3, 3, 4, 4) * 2
    a, b = plain.eval()(h), lossy.eval()(h)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.indices, b.indices)
    assert b.loss == 0 and b.logs == {}
    train = lossy.train()(h)
    assert train.loss != 0 and torch.equal(train.latent, b.latent)
    assert {"entropy_per_token", "entropy_codebook", "commitment", "codebook_usage", "codebook_perplexity"} <= set(train.logs)


def test_straight_through_gradient_reaches_the_encoder() -> None:
    reg = FSQRegularizer(FSQConfig(levels=(8, 8, 8)), z_channels=3).train()
    h = (torch.randn(1, 3, 2, 4, 4) * 0.5).requires_grad_(True)
    reg(h).latent.sum().backward()
    # d latent / d h = tanh' * half_l / half_width: positive everywhere
    assert (h.grad > 0).all()


def test_quantization_runs_in_fp32_under_autocast() -> None:
    reg = FSQRegularizer(FSQConfig(levels=(8, 8, 8), **VIDTOK_SETTINGS), z_channels=3).train()
    h = torch.randn(1, 3, 2, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = reg(h)
    ref = reg(h.float())
    assert out.latent.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.equal(out.indices, ref.indices)
    torch.testing.assert_close(out.loss, ref.loss)


@pytest.mark.parametrize("levels", [(4, 4, 4), (8, 8, 8, 8, 8), (8,) * 6])
def test_indices_use_the_smallest_dtype_and_round_trip(levels: tuple[int, ...]) -> None:
    reg = FSQRegularizer(FSQConfig(levels=levels), z_channels=len(levels)).eval()
    out = reg(torch.randn(2, len(levels), 2, 3, 3) * 3)
    assert out.indices.dtype == smallest_index_dtype(reg.codebook_size)
    assert torch.equal(reg.indices_to_latent(out.indices), out.latent)
    every = torch.arange(reg.codebook_size).reshape(1, 1, 1, -1)
    codes = reg.indices_to_latent(every)
    assert torch.equal(reg.codes_to_indices(rearrange(codes, "b c t h w -> b t h w c")).long(), every)


def test_released_fsq_recipes_carry_the_original_loss_settings() -> None:
    _, registry = load_plugins(autoload=False)
    for path in sorted((REPO / "recipes" / "vidtok").glob("vidtok_fsq_*.toml")):
        cfg = load_recipe(path, registry=registry).model.regularizer.config
        got = {k: getattr(cfg, k) for k in VIDTOK_SETTINGS}
        assert got == VIDTOK_SETTINGS, path.name
        assert cfg.entropy_inv_temperature == 100.0 and cfg.diversity_gamma == 1.0
