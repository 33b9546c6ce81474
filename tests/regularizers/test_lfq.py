"""LFQ: sign quantization, bit indices, and entropy terms within their analytic bounds."""

from __future__ import annotations

import math

import pytest
import torch
from vidtok_kit.plugins.regularizers.lfq import LFQConfig, LFQRegularizer

from vidtok_kit.testing import RegularizerContract


class TestLFQContract(RegularizerContract):
    component = LFQRegularizer


class TestLFQ262144Contract(RegularizerContract):
    """The Table 3 size: 18 channels, 2^18 codes, entropy loss on."""

    component = LFQRegularizer
    z_channels = 18

    def make_config(self) -> LFQConfig:
        return LFQConfig(entropy_loss_weight=0.1, entropy_loss_annealing_steps=2000, entropy_loss_annealing_factor=3.0)


def test_codes_are_signs_and_indices_are_bits() -> None:
    reg = LFQRegularizer(LFQConfig(codebook_scale=0.5), z_channels=5).eval()
    h = torch.randn(2, 5, 2, 3, 3)
    out = reg(h)
    assert torch.equal(out.latent, torch.where(h > 0, 0.5, -0.5))
    bits = (h > 0).long().movedim(1, -1)
    assert torch.equal(out.indices.long(), (bits * 2 ** torch.arange(5)).sum(-1))
    assert reg.codebook_size == 32 and out.indices.dtype == torch.uint8
    every = torch.arange(32).reshape(1, 1, 1, 32)
    assert torch.equal(reg(reg.indices_to_latent(every)).indices.long(), every)


def test_straight_through_gradient_is_identity() -> None:
    reg = LFQRegularizer(LFQConfig(), z_channels=4).train()
    h = torch.randn(1, 4, 2, 2, 2, requires_grad=True)
    upstream = torch.randn(1, 4, 2, 2, 2)
    (reg(h).latent * upstream).sum().backward()
    torch.testing.assert_close(h.grad, upstream)


@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.02, 1.0], ids=["zero", "small", "medium", "saturated"])
def test_entropy_terms_within_analytic_bounds(scale: float) -> None:
    """0 <= mean_n H(p_n) <= H(mean_n p_n) <= d log 2; both are d log 2 at z = 0 and 0 when saturated."""
    d = 6
    reg = LFQRegularizer(LFQConfig(), z_channels=d)
    z = torch.randn(200, d, generator=torch.Generator().manual_seed(0)) * scale
    if scale == 1.0:
        z = z.sign() * (0.5 + z.abs())  # |z| >= 0.5: every bit is certain
    terms = reg.entropy_terms(z)
    cap = d * math.log(2)
    assert -1e-6 <= terms.per_token <= terms.codebook + 1e-5 <= cap + 1e-5
    if scale == 0.0:
        assert terms.per_token == pytest.approx(cap, rel=1e-5) and terms.codebook == pytest.approx(cap, rel=1e-5)
    if scale == 1.0:
        assert terms.per_token < 1e-3
        assert terms.codebook > 0.8 * math.log(64)  # 200 random sign patterns cover many of 64 codes


def test_entropy_equals_direct_formula() -> None:
    reg = LFQRegularizer(LFQConfig(entropy_inv_temperature=10.0), z_channels=5)
    z = (torch.randn(50, 5, generator=torch.Generator().manual_seed(1)) * 0.1).requires_grad_(True)
    codebook = reg.indices_to_codes(torch.arange(32))
    logp = (2 * 10.0 * z @ codebook.T).log_softmax(-1)
    p = logp.exp()
    q = p.mean(0)
    want = -(p * logp).sum(-1).mean() + (q * q.log()).sum()
    got = reg.entropy_terms(z).loss()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g, g_want = torch.autograd.grad(got, z, retain_graph=True)[0], torch.autograd.grad(want, z)[0]
    torch.testing.assert_close(g, g_want, rtol=1e-4, atol=1e-5)


def test_training_loss_is_entropy_plus_commitment() -> None:
    reg = LFQRegularizer(LFQConfig(entropy_loss_weight=0.1, commitment_loss_weight=0.25), z_channels=4).train()
    h = torch.randn(1, 4, 2, 3, 3)
    out = reg(h)
    terms = reg.entropy_terms(h.movedim(1, -1).reshape(-1, 4))
    commitment = ((h - torch.where(h > 0, 1.0, -1.0)) ** 2).mean()
    torch.testing.assert_close(out.loss, 0.1 * terms.loss() + 0.25 * commitment)
    assert reg.eval()(h).loss == 0


def test_too_many_channels_for_the_entropy_loss_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"z_channels <= 26"):
        LFQRegularizer(LFQConfig(entropy_loss_weight=0.1), z_channels=32)
    reg = LFQRegularizer(LFQConfig(entropy_loss_weight=0.0), z_channels=32)
    assert reg.codebook_size == 2**32 and reg.index_dtype == torch.int64
