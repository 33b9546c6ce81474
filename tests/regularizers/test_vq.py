"""VQ: chunked nearest-neighbour lookup, straight-through estimator, losses, EMA and dead-code restart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from vidtok_kit.plugins.regularizers.vq import VQConfig, VQRegularizer, nearest_codes

from vidtok_kit.testing import RegularizerContract


class TestPlainVQContract(RegularizerContract):
    component = VQRegularizer

    def make_config(self) -> VQConfig:
        return VQConfig(codebook_size=64)


class TestVQWithEveryTrickContract(RegularizerContract):
    component = VQRegularizer
    z_channels = 3

    def make_config(self) -> VQConfig:
        return VQConfig(codebook_size=300, init="normal", ema_decay=0.9, dead_code_threshold=0.5, entropy_loss_weight=0.1)


def test_chunked_nearest_codes_equal_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(101, 5, generator=gen), torch.randn(37, 5, generator=gen)
    want = torch.cdist(z, codebook).argmin(dim=1)
    assert torch.equal(nearest_codes(z, codebook, chunk_elements=37 * 3), want)  # 3 tokens per chunk
    assert torch.equal(nearest_codes(z, codebook, chunk_elements=1), want)  # 1 token per chunk


def test_latent_is_the_nearest_code_with_identity_straight_through_gradient() -> None:
    reg = VQRegularizer(VQConfig(codebook_size=16, init="normal"), z_channels=4).train()
    h = torch.randn(2, 4, 2, 3, 3, requires_grad=True)
    out = reg(h)
    flat = h.detach().movedim(1, -1).reshape(-1, 4)
    idx = torch.cdist(flat, reg.codebook.detach()).argmin(1)
    assert torch.equal(out.indices.reshape(-1).long(), idx)
    assert torch.equal(reg.indices_to_latent(out.indices), out.latent.detach())
    upstream = torch.randn_like(out.latent)
    (out.latent * upstream).sum().backward()
    torch.testing.assert_close(h.grad, upstream)  # straight through: identity


def test_commitment_and_codebook_losses() -> None:
    reg = VQRegularizer(VQConfig(codebook_size=8, init="normal", commitment_loss_weight=0.25), z_channels=2).train()
    h = torch.randn(1, 2, 1, 4, 4)
    out = reg(h)
    err = F.mse_loss(h, reg.indices_to_latent(out.indices))
    torch.testing.assert_close(out.logs["commitment"], err)
    torch.testing.assert_close(out.logs["codebook_loss"], err)
    torch.testing.assert_close(out.loss, 1.25 * err)
    # the codebook loss moves the used codes towards their tokens
    before = reg.codebook.detach().clone()
    opt = torch.optim.SGD(reg.parameters(), lr=0.5)
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    after = reg(h).logs["codebook_loss"]
    assert after < err
    used = out.indices.unique().long()
    unused = torch.ones(8, dtype=torch.bool)
    unused[used] = False
    assert torch.equal(reg.codebook.detach()[unused], before[unused])


def test_ema_update_follows_assigned_means() -> None:
    cfg = VQConfig(codebook_size=4, init="normal", ema_decay=0.5)
    reg = VQRegularizer(cfg, z_channels=2).train()
    assert not any(True for _ in reg.parameters())
    e0 = reg.codebook.clone()
    h = torch.randn(1, 2, 1, 5, 5)
    out = reg(h)
    flat, idx = h.movedim(1, -1).reshape(-1, 2), out.indices.reshape(-1).long()
    counts = torch.bincount(idx, minlength=4).float()
    sums = torch.zeros(4, 2).index_add_(0, idx, flat)
    size = 0.5 * torch.ones(4) + 0.5 * counts
    embed = 0.5 * e0 + 0.5 * sums
    n = size.sum()
    smoothed = (size + cfg.ema_epsilon) / (n + 4 * cfg.ema_epsilon) * n
    torch.testing.assert_close(reg.cluster_size, size)
    torch.testing.assert_close(reg.codebook, embed / smoothed[:, None])
    assert "codebook_loss" not in out.logs
    assert set(reg.state_dict()) == {"codebook", "embed_sum", "cluster_size"}


def test_dead_codes_are_restarted_from_batch_outputs() -> None:
    cfg = VQConfig(codebook_size=16, init="normal", dead_code_threshold=0.5, usage_decay=0.0)
    reg = VQRegularizer(cfg, z_channels=3).train()
    h = torch.randn(1, 3, 1, 4, 4) * 0.01 + 5.0  # every token near one point: one code wins
    first = reg(h).indices.unique()
    dead = torch.ones(16, dtype=torch.bool)
    dead[first.long()] = False
    assert dead.sum() >= 14 and (reg.cluster_size[dead] == 0).all()
    reg(h)  # restarts the dead codes from this batch's tokens, then quantizes
    tokens = h.movedim(1, -1).reshape(-1, 3)
    for code in reg.codebook.detach()[dead]:
        assert (tokens - code).abs().sum(1).min() == 0, "restarted code is not a batch token"
    assert reg(h).indices.unique().numel() > first.numel()


def test_entropy_loss_reaches_the_codebook_and_is_chunked() -> None:
    reg = VQRegularizer(VQConfig(codebook_size=32, init="normal", entropy_loss_weight=1.0, commitment_loss_weight=0.0,
                                 codebook_loss_weight=0.0, entropy_inv_temperature=2.0), z_channels=3).train()
    h = torch.randn(2, 3, 2, 4, 4, requires_grad=True)
    out = reg(h)
    flat = h.movedim(1, -1).reshape(-1, 3)
    logp = (-2.0 * torch.cdist(flat, reg.codebook).pow(2)).log_softmax(-1)
    p = logp.exp()
    q = p.mean(0)
    want = -(p * logp).sum(-1).mean() + (q * q.log()).sum()
    torch.testing.assert_close(out.loss, want, rtol=1e-4, atol=1e-5)
    g = torch.autograd.grad(out.loss, reg.codebook)[0]
    g_want = torch.autograd.grad(want, reg.codebook)[0]
    assert g_want.abs().max() > 1e-3
    torch.testing.assert_close(g, g_want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(("size", "dtype"), [(256, torch.uint8), (257, torch.int16), (262144, torch.int32)])
def test_indices_use_the_smallest_dtype(size: int, dtype: torch.dtype) -> None:
    reg = VQRegularizer(VQConfig(codebook_size=size, init="normal"), z_channels=2).eval()
    out = reg(torch.randn(1, 2, 1, 2, 2))
    assert out.indices.dtype == dtype
    assert torch.equal(reg.indices_to_latent(out.indices), out.latent)


def test_quantization_runs_in_fp32_under_autocast() -> None:
    reg = VQRegularizer(VQConfig(codebook_size=64, init="normal"), z_channels=4).eval()
    h = torch.randn(1, 4, 2, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = reg(h)
    assert out.latent.dtype == torch.float32
    assert torch.equal(out.indices, reg(h.float()).indices)
