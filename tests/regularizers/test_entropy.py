"""The memory-light entropy terms equal the literal tokens x codebook formula, values and gradients."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from vidtok_kit.model.entropy import (
    annealed_weight,
    dense_entropy,
    distributed_mean,
    entropy,
    factorized_entropy,
    product_distribution_mean,
)


def direct_terms(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's computation on an explicit (N, K) logit matrix (exact logs, no clamp)."""
    logp = logits.log_softmax(dim=-1)
    p = logp.exp()
    per_token = -(p * logp).sum(dim=-1).mean()
    q = p.mean(dim=0)
    return per_token, -(q * q.clamp_min(1e-38).log()).sum()


def full_logits(per_channel: list[torch.Tensor]) -> torch.Tensor:
    """(N, K) logits of the product codebook, channel 0 the least-significant digit."""
    out = per_channel[-1]
    for lg in reversed(per_channel[:-1]):
        out = (out[:, :, None] + lg[:, None, :]).flatten(1)
    return out


@pytest.mark.parametrize("levels", [(3, 4, 5), (2,) * 7, (8, 8), (6,)])
@pytest.mark.parametrize("scale", [0.3, 20.0], ids=["flat", "peaked"])
def test_factorized_entropy_equals_direct_formula(levels: tuple[int, ...], scale: float) -> None:
    gen = torch.Generator().manual_seed(len(levels))
    z = torch.randn(40, len(levels), generator=gen).requires_grad_(True)
    values = [torch.linspace(-1, 1, lv) for lv in levels]
    logits = [scale * z[:, c : c + 1] * values[c] for c in range(len(levels))]
    got = factorized_entropy(logits, chunk_elements=16)  # forces several token chunks
    want = direct_terms(full_logits(logits))
    torch.testing.assert_close(got.per_token, want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.codebook, want[1], rtol=1e-5, atol=1e-5)
    g_got = torch.autograd.grad(got.loss(0.7), z, retain_graph=True)[0]
    g_want = torch.autograd.grad(want[0] - 0.7 * want[1], z)[0]
    assert g_want.abs().max() > 1e-3  # the check is not vacuous
    torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)


def test_product_mean_is_a_distribution_in_index_order() -> None:
    gen = torch.Generator().manual_seed(0)
    probs = [torch.rand(7, lv, generator=gen).softmax(-1) for lv in (2, 3, 4)]
    q = product_distribution_mean(probs, chunk_elements=1)
    assert q.shape == (24,) and torch.allclose(q.sum(), torch.tensor(1.0))
    # code (k0, k1, k2) sits at k0 + 2*k1 + 6*k2
    want = torch.einsum("na,nb,nc->cba", *probs).flatten() / 7
    torch.testing.assert_close(q, want)


def test_dense_entropy_equals_direct_formula_with_codebook_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(33, 4, generator=gen).requires_grad_(True)
    codebook = torch.randn(50, 4, generator=gen).requires_grad_(True)

    def logits_fn(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return -3.0 * torch.cdist(x, e).pow(2)

    got = dense_entropy(logits_fn, z, codebook, codebook_size=50, chunk_elements=200)  # 4 tokens per chunk
    want = direct_terms(logits_fn(z, codebook))
    torch.testing.assert_close(got.per_token, want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.codebook, want[1], rtol=1e-5, atol=1e-5)
    g_got = torch.autograd.grad(got.loss(), (z, codebook))
    g_want = torch.autograd.grad(want[0] - want[1], (z, codebook))
    for a, b in zip(g_got, g_want):
        assert b.abs().max() > 1e-3
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_entropy_terms_within_analytic_bounds() -> None:
    """0 <= mean H(p_n) <= H(mean p_n) <= log K (concavity of entropy)."""
    gen = torch.Generator().manual_seed(2)
    for scale in (0.01, 1.0, 100.0):
        logits = [scale * torch.randn(64, 4, generator=gen) for _ in range(3)]
        terms = factorized_entropy(logits)
        assert -1e-6 <= terms.per_token <= terms.codebook + 1e-5 <= math.log(64) + 2e-5


def test_entropy_of_zero_probabilities_is_finite_with_finite_gradient() -> None:
    p = torch.tensor([0.0, 0.5, 0.5], requires_grad=True)
    h = entropy(p)
    h.backward()
    assert torch.isclose(h, torch.tensor(math.log(2.0)))
    assert torch.isfinite(p.grad).all()


def test_annealed_weight_is_linear_from_factor_times_weight() -> None:
    assert annealed_weight(0.1, 0, 2000, 3.0) == pytest.approx(0.3)
    assert annealed_weight(0.1, 1000, 2000, 3.0) == pytest.approx(0.2)
    assert annealed_weight(0.1, 2000, 2000, 3.0) == pytest.approx(0.1)
    assert annealed_weight(0.1, 10**6, 2000, 3.0) == pytest.approx(0.1)
    assert annealed_weight(0.1, 0, 0, 3.0) == pytest.approx(0.1)  # no annealing


def test_distributed_mean_is_identity_without_a_process_group() -> None:
    t = torch.rand(5)
    assert distributed_mean(t) is t


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, time, torch
    from vidtok_kit.plugins.regularizers.fsq import FSQRegularizer
    torch.set_num_threads(1)

    def rss_kib():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() // 1024

    reg = FSQRegularizer(FSQRegularizer.Config(levels=(8,) * 6, entropy_loss_weight=0.1,
                                               commitment_loss_weight=0.25), z_channels=6).train()
    gen = torch.Generator().manual_seed(0)
    # the encoder output of one 17x256x256 clip: 5 x 32 x 32 = 5120 tokens of 6 channels
    h = (torch.randn(1, 6, 5, 32, 32, generator=gen) * 0.7).requires_grad_(True)
    before = rss_kib()
    start = time.perf_counter()
    out = reg(h, step=0)
    out.loss.backward()
    seconds = time.perf_counter() - start
    extra_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"extra_mib": extra_mib, "seconds": seconds, "loss": out.loss.item(),
                      "codebook_entropy": out.logs["entropy_codebook"].item(),
                      "grad_abs_sum": h.grad.abs().sum().item()}))
    """
)


def test_fsq_262144_entropy_loss_for_a_256px_clip_stays_under_1gb() -> None:
    """5120 tokens x 262,144 codes would be 5.4 GB per copy in the original; we need far less than 1 GB."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["extra_mib"] < 1024, result
    assert math.isfinite(result["loss"]) and result["grad_abs_sum"] > 0, result
    assert 0 < result["codebook_entropy"] <= math.log(262144)
