"""GAN loss terms, LeCam EMA and the adaptive weight against hand formulas."""

from __future__ import annotations

import math

import torch

from vidtok_kit.losses import (
    LeCamEMA,
    adaptive_weight,
    hinge_d_loss,
    hinge_gen_loss,
    lecam_reg,
    non_saturating_gen_loss,
    vanilla_d_loss,
)

REAL = torch.tensor([0.5, 2.0, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 0.5])


def test_hinge_d_loss() -> None:
    # relu(1 - real) = [0.5, 0, 2] -> 5/6 ; relu(1 + fake) = [0, 1, 1.5] -> 5/6
    torch.testing.assert_close(hinge_d_loss(REAL, FAKE), torch.tensor(0.5 * (5 / 6 + 5 / 6)))


def test_vanilla_d_loss() -> None:
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = 0.5 * (sum(sp(-r) for r in REAL.tolist()) / 3 + sum(sp(f) for f in FAKE.tolist()) / 3)
    torch.testing.assert_close(vanilla_d_loss(REAL, FAKE), torch.tensor(expected))


def test_non_saturating_gen_loss_uses_per_sample_mean_logit() -> None:
    logits = torch.tensor([[[[1.0, 3.0], [-1.0, 1.0]]], [[[-4.0, 0.0], [0.0, 0.0]]]])  # (2,1,2,2)
    means = [1.0, -1.0]
    expected = sum(math.log1p(math.exp(-m)) for m in means) / 2  # BCE(sigmoid(m), 1)
    torch.testing.assert_close(non_saturating_gen_loss(logits), torch.tensor(expected))
    # not the same as averaging BCE patch by patch
    assert not torch.isclose(non_saturating_gen_loss(logits), non_saturating_gen_loss(logits.reshape(8, 1)))


def test_hinge_gen_loss() -> None:
    torch.testing.assert_close(hinge_gen_loss(FAKE), -FAKE.mean())


def test_lecam_reg_formula() -> None:
    ema_r, ema_f = torch.tensor(0.25), torch.tensor(-0.5)
    # relu(real - ema_f) = [1, 2.5, 0] -> (1 + 6.25) / 3 ; relu(ema_r - fake) = [2.25, 0.25, 0] -> (5.0625 + 0.0625) / 3
    expected = (1 + 6.25) / 3 + (5.0625 + 0.0625) / 3
    torch.testing.assert_close(lecam_reg(REAL, FAKE, ema_r, ema_f), torch.tensor(expected))


def test_lecam_ema_updates_then_regularises() -> None:
    lecam = LeCamEMA(decay=0.999)
    out = lecam(REAL, FAKE)
    ema_r, ema_f = 0.001 * REAL.mean(), 0.001 * FAKE.mean()
    torch.testing.assert_close(lecam.logits_real_ema, ema_r)
    torch.testing.assert_close(lecam.logits_fake_ema, ema_f)
    torch.testing.assert_close(out, lecam_reg(REAL, FAKE, ema_r, ema_f))
    lecam(REAL + 1, FAKE - 1)
    torch.testing.assert_close(lecam.logits_real_ema, 0.999 * ema_r + 0.001 * (REAL + 1).mean())
    torch.testing.assert_close(lecam.logits_fake_ema, 0.999 * ema_f + 0.001 * (FAKE - 1).mean())
    assert set(lecam.state_dict()) == {"logits_real_ema", "logits_fake_ema"}


def test_lecam_ema_frozen_in_eval() -> None:
    lecam = LeCamEMA().eval()
    lecam(REAL, FAKE)
    assert lecam.logits_real_ema.item() == 0.0 and lecam.logits_fake_ema.item() == 0.0


def test_lecam_gradient_flows_to_logits_not_ema() -> None:
    lecam = LeCamEMA()
    real = REAL.clone().requires_grad_(True)
    lecam(real, FAKE).backward()
    assert real.grad is not None and not lecam.logits_real_ema.requires_grad


def test_adaptive_weight_is_gradient_norm_ratio() -> None:
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v = torch.tensor([1.0, -1.0])
    out = w @ v  # [-1, -1]
    nll = (out**2).sum()  # d/dw = 2 out v^T -> [[-2, 2], [-2, 2]], norm 4
    g = 3 * out.sum()  # d/dw = 3 * 1 v^T -> [[3, -3], [3, -3]], norm 6
    got = adaptive_weight(nll, g, w, scale=0.2)
    torch.testing.assert_close(got, torch.tensor(0.2 * 4.0 / (6.0 + 1e-4)))
    assert not got.requires_grad
    (nll + g).backward()  # graph retained for the real backward
    assert w.grad is not None


def test_adaptive_weight_clamped() -> None:
    w = torch.tensor([3.0], requires_grad=True)
    nll = (w**2).sum()  # grad 6
    g = (w * 1e-9).sum()  # grad 1e-9 -> ratio ~6e4 > 1e4
    torch.testing.assert_close(adaptive_weight(nll, g, w, scale=0.5), torch.tensor(0.5 * 1e4))
