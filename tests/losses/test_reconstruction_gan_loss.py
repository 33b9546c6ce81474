"""ReconstructionGANLoss against VidTok's GeneralLPIPSWithDiscriminator semantics, by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidtok_kit.losses import (
    ENV_LPIPS_WEIGHTS,
    ENV_VGG16_WEIGHTS,
    LPIPS,
    LPIPSWeightsError,
    ReconstructionGANLoss,
    adaptive_weight,
    hinge_d_loss,
    lecam_reg,
    non_saturating_gen_loss,
)

Config = ReconstructionGANLoss.Config


def _clip(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _loss(**kw) -> ReconstructionGANLoss:
    torch.manual_seed(0)
    kw.setdefault("perceptual_weight", 0.0)
    return ReconstructionGANLoss(Config(**kw))


class _Decoder(nn.Module):
    """A one-layer stand-in decoder: the adaptive weight needs a last layer in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_out = nn.Conv3d(3, 3, kernel_size=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_out(z)


def test_defaults_are_vidtok_release_values() -> None:
    cfg = Config()
    assert (cfg.perceptual_weight, cfg.disc_start, cfg.disc_weight, cfg.disc_type) == (1.0, 20001, 0.2, "2d")
    assert (cfg.lecam_loss_weight, cfg.gen_loss_cross_entropy, cfg.learn_logvar) == (0.005, True, True)
    assert cfg.regularization_weights == {"aux_loss": 1.0, "kl_loss": 1e-6}
    with pytest.raises(ValueError):
        Config(disc_type="4d")


def test_nll_by_hand_with_perceptual_weight_zero(monkeypatch) -> None:
    def no_lpips(*a, **k):
        raise AssertionError("LPIPS must not be built when perceptual_weight == 0")

    monkeypatch.setattr(LPIPS, "from_files", no_lpips)
    loss_fn = _loss()
    assert loss_fn.perceptual_loss is None
    with torch.no_grad():
        loss_fn.logvar.fill_(0.3)
    x, x_hat = _clip(2, 3, 3, 4, 4, seed=1), _clip(2, 3, 3, 4, 4, seed=2)
    regs = {"aux_loss": torch.tensor(0.7), "kl_loss": torch.tensor(5.0), "unweighted": torch.tensor(9.0)}
    total, logs = loss_fn.generator_loss(x, x_hat, regs, step=0)

    # per-frame sum over C·H·W (48 values), mean over B·T = 6 frames
    nll = ((x - x_hat).abs() / torch.exp(torch.tensor(0.3)) + 0.3).sum() / 6
    torch.testing.assert_close(logs["nll_loss"], nll)
    torch.testing.assert_close(total, nll + 1.0 * 0.7 + 1e-6 * 5.0)
    assert logs["unweighted"].item() == 9.0  # logged, never added
    assert all(not v.requires_grad for v in logs.values())
    assert logs["p_loss"].item() == 0.0


def test_gan_term_exactly_zero_before_disc_start() -> None:
    loss_fn = _loss(disc_start=10)
    calls = []
    loss_fn.discriminator.register_forward_hook(lambda *a: calls.append(1))
    x, x_hat = _clip(1, 3, 2, 32, 32, seed=1), _clip(1, 3, 2, 32, 32, seed=2)
    total, logs = loss_fn.generator_loss(x, x_hat, {}, step=9)
    torch.testing.assert_close(total, logs["nll_loss"], rtol=0, atol=0)
    assert (
        logs["g_loss"].item() == 0.0 and logs["d_weight"].item() == 0.0 and logs["disc_factor"].item() == 0.0
    )
    assert calls == [] and not loss_fn.gan_active(9) and loss_fn.gan_active(10)

    d_loss, d_logs = loss_fn.discriminator_loss(x, x_hat, step=9)
    assert d_loss.item() == 0.0 and d_logs["disc_factor"].item() == 0.0
    d_loss.backward()  # still a valid graph for trainers that always step both optimizers


def test_gradients_reach_logvar() -> None:
    loss_fn = _loss()
    x = _clip(2, 3, 2, 4, 4, seed=3)
    x_hat = _clip(2, 3, 2, 4, 4, seed=4).requires_grad_(True)
    total, _ = loss_fn.generator_loss(x, x_hat, None, step=0)
    total.backward()
    # d/dlogvar of sum(rec·e^-lv + lv)/N at lv = 0: sum(1 - rec)/N
    expected = (1 - (x - x_hat.detach()).abs()).sum() / 4
    torch.testing.assert_close(loss_fn.logvar.grad, expected)
    assert x_hat.grad is not None
    assert loss_fn.autoencoder_parameters() == [loss_fn.logvar]
    assert _loss(learn_logvar=False).autoencoder_parameters() == []


def test_generator_gan_term_after_disc_start() -> None:
    loss_fn = _loss(disc_start=5)
    dec = _Decoder()
    x, z = _clip(1, 3, 2, 32, 32, seed=5), _clip(1, 3, 2, 32, 32, seed=6)
    x_hat = dec(z)
    total, logs = loss_fn.generator_loss(x, x_hat, {}, step=5, last_layer=dec.conv_out.weight)

    # recompute by hand from the same graph pieces (disc in train mode: batch statistics)
    frames = x_hat.permute(0, 2, 1, 3, 4).reshape(2, 3, 32, 32)
    g = non_saturating_gen_loss(loss_fn.discriminator(frames))
    nll = (x - x_hat).abs().sum() / 2
    w = adaptive_weight(nll, g, dec.conv_out.weight, scale=0.2)
    torch.testing.assert_close(logs["g_loss"], g.detach())
    torch.testing.assert_close(logs["d_weight"], w)
    torch.testing.assert_close(total, nll + w * g)
    total.backward()
    assert dec.conv_out.weight.grad is not None

    with pytest.raises(ValueError, match="last_layer"):
        loss_fn.generator_loss(x, dec(z), {}, step=5)
    with torch.no_grad():  # validation: no gradients, adaptive weight 0 as in the original
        _, val_logs = loss_fn.generator_loss(x, dec(z), {}, step=5)
    assert val_logs["d_weight"].item() == 0.0


def test_discriminator_loss_hinge_plus_lecam() -> None:
    loss_fn = _loss(disc_start=0)
    x, x_hat = _clip(1, 3, 2, 32, 32, seed=7), _clip(1, 3, 2, 32, 32, seed=8).requires_grad_(True)
    loss, logs = loss_fn.discriminator_loss(x, x_hat, step=0)
    fold = lambda v: v.detach().permute(0, 2, 1, 3, 4).reshape(2, 3, 32, 32)  # noqa: E731
    with torch.no_grad():
        real, fake = loss_fn.discriminator(fold(x)), loss_fn.discriminator(fold(x_hat))
    ema_r, ema_f = 0.001 * real.mean(), 0.001 * fake.mean()
    expected = hinge_d_loss(real, fake) + 0.005 * lecam_reg(real, fake, ema_r, ema_f)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss_fn.lecam.logits_real_ema, ema_r)
    loss.backward()
    assert x_hat.grad is None  # reconstructions are detached for the D step
    assert all(p.grad is not None for p in loss_fn.discriminator_parameters())
    assert {"disc_loss", "logits_real", "logits_fake", "lecam_loss", "non_saturated_d_loss"} <= set(logs)


def test_3d_discriminator_path() -> None:
    loss_fn = _loss(disc_type="3d", disc_start=0)
    dec = _Decoder()
    x, z = _clip(1, 3, 16, 24, 24, seed=9), _clip(1, 3, 16, 24, 24, seed=10)
    total, logs = loss_fn.generator_loss(x, dec(z), {}, step=0, last_layer=dec.conv_out.weight)
    assert torch.isfinite(total) and logs["d_weight"].item() > 0
    d_loss, _ = loss_fn.discriminator_loss(x, dec(z), step=0)
    assert torch.isfinite(d_loss)


def test_perceptual_term_broadcast_to_every_pixel() -> None:
    lpips = LPIPS.random_init(0)
    loss_fn = ReconstructionGANLoss(Config(perceptual_weight=0.5), perceptual_model=lpips)
    x, x_hat = _clip(1, 3, 2, 16, 16, seed=11), _clip(1, 3, 2, 16, 16, seed=12)
    _, logs = loss_fn.generator_loss(x, x_hat, {}, step=0)
    fold = lambda v: v.permute(0, 2, 1, 3, 4).reshape(2, 3, 16, 16)  # noqa: E731
    p = lpips(fold(x), fold(x_hat))  # (2, 1, 1, 1): one number per frame
    nll = ((fold(x) - fold(x_hat)).abs() + 0.5 * p).sum() / 2
    torch.testing.assert_close(logs["nll_loss"], nll)
    torch.testing.assert_close(logs["p_loss"], p.mean())


def test_missing_lpips_weights_error_is_actionable(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VGG16_WEIGHTS, raising=False)
    monkeypatch.delenv(ENV_LPIPS_WEIGHTS, raising=False)
    with pytest.raises(LPIPSWeightsError) as info:
        ReconstructionGANLoss(Config(perceptual_weight=1.0))
    msg = str(info.value)
    assert ENV_VGG16_WEIGHTS in msg and "vgg16_weights" in msg and "perceptual_weight = 0" in msg
    assert "\n" not in msg


def test_state_dict_excludes_frozen_lpips_and_loads_across_settings() -> None:
    with_lpips = ReconstructionGANLoss(Config(perceptual_weight=1.0), perceptual_model=LPIPS.random_init(0))
    without = _loss()
    assert "perceptual_loss" in dict(with_lpips.named_children())  # moved by .to(), yet not saved
    sd = with_lpips.state_dict()
    assert not any(k.startswith("perceptual_loss.") for k in sd)
    assert {"logvar", "discriminator.main.0.weight", "lecam.logits_real_ema"} <= set(sd)
    without.load_state_dict(sd, strict=True)
    before = {k: v.clone() for k, v in with_lpips.perceptual_loss.state_dict().items()}
    with_lpips.load_state_dict(without.state_dict(), strict=True)  # LPIPS weights untouched
    assert all(torch.equal(v, with_lpips.perceptual_loss.state_dict()[k]) for k, v in before.items())
    # nested inside a bigger module (a trainer) the hooks still apply
    outer = nn.ModuleDict({"loss": with_lpips})
    assert not any("perceptual_loss" in k for k in outer.state_dict())
    outer.load_state_dict({f"loss.{k}": v for k, v in sd.items()}, strict=True)
