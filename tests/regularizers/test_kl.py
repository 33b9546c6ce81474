"""KL: deterministic posterior mean by default, a sample when asked, the original's KL value."""

from __future__ import annotations

import torch
from vidtok_kit.plugins.regularizers.kl import KLConfig, KLRegularizer


def test_mean_is_deterministic_and_sample_is_not() -> None:
    reg = KLRegularizer(KLConfig(), z_channels=3)
    h = torch.randn(2, 6, 2, 4, 4)
    a, b = reg(h), reg(h)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.latent, h[:, :3])
    assert a.indices is None
    s1, s2 = reg(h, sample=True), reg(h, sample=True)
    assert not torch.equal(s1.latent, s2.latent)


def test_sample_has_the_posterior_statistics() -> None:
    reg = KLRegularizer(KLConfig(), z_channels=1)
    h = torch.cat([torch.full((4000, 1, 1, 1, 1), 0.5), torch.full((4000, 1, 1, 1, 1), 2 * torch.log(torch.tensor(0.3)))], 1)
    z = reg(h, sample=True).latent
    assert abs(float(z.mean()) - 0.5) < 0.03 and abs(float(z.std()) - 0.3) < 0.03


def test_kl_value_and_logvar_clamp() -> None:
    reg = KLRegularizer(KLConfig(kl_weight=1e-6), z_channels=2)
    mean, logvar = torch.randn(3, 2, 1, 2, 2), torch.randn(3, 2, 1, 2, 2)
    logvar[0, 0, 0, 0, 0] = 100.0  # clamped to 20
    out = reg(torch.cat([mean, logvar], 1))
    lv = logvar.clamp(-30, 20)
    want = 0.5 * (mean**2 + lv.exp() - 1 - lv).sum() / 3
    torch.testing.assert_close(out.logs["kl_loss"], want)
    torch.testing.assert_close(out.loss, 1e-6 * want)
