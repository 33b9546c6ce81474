"""Reconstruction + perceptual + adversarial training loss of VidTok.

Paper: Tang et al., "VidTok: A Versatile and Open-Source Video Tokenizer", arXiv:2412.13061,
section 3 (training); loss design from Esser et al., "Taming Transformers", arXiv:2012.09841.

Adapted from VidTok ``vidtok/modules/losses.py`` ``GeneralLPIPSWithDiscriminator`` with the
settings of every released config (``dims=3``, ``disc_type="2d"``, ``learn_logvar=True``,
``gen_loss_cross_entropy=True``). Semantics kept on purpose, even where surprising:

* frames are folded into the batch, ``(B, C, T, H, W) -> (B·T, C, H, W)``, for L1 and LPIPS;
* LPIPS (one number per frame) is added to *every pixel* of the L1 map;
* ``nll = rec / exp(logvar) + logvar`` is summed over C·H·W and averaged over the B·T frames
  (a per-frame sum, not a mean), with a learnable scalar ``logvar``;
* ``disc_start`` compares against the step the caller passes. The released value 20001 counted
  Lightning optimizer steps, two per iteration, i.e. about 10k iterations.

Deliberate differences: before ``disc_start`` the generator side skips the discriminator
entirely (the original ran it and multiplied by 0: same gradients, wasted compute); LPIPS
weights come from local files only; the frozen LPIPS weights are kept out of this module's
``state_dict`` so checkpoints stay small and load whatever ``perceptual_weight`` is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from einops import rearrange
from torch import Tensor, nn

from vidtok_kit.losses.discriminator import DISCRIMINATORS, build_discriminator
from vidtok_kit.losses.gan import (
    LeCamEMA,
    adaptive_weight,
    hinge_d_loss,
    hinge_gen_loss,
    non_saturating_gen_loss,
    vanilla_d_loss,
)
from vidtok_kit.losses.lpips import LPIPS, LPIPSWeightsError

__all__ = ["ReconstructionGANLoss"]

_D_LOSSES = {"hinge": hinge_d_loss, "vanilla": vanilla_d_loss}
_PERCEPTUAL = "perceptual_loss."


def _fold(x: Tensor) -> Tensor:
    """``(B, C, T, H, W) -> (B·T, C, H, W)``; images pass through."""
    return rearrange(x, "b c t h w -> (b t) c h w") if x.ndim == 5 else x


class ReconstructionGANLoss(nn.Module):
    """L1 + LPIPS reconstruction NLL with learned variance, regulariser terms and a PatchGAN.

    Two entry points, one per optimizer: :meth:`generator_loss` (autoencoder + ``logvar``) and
    :meth:`discriminator_loss` (discriminator). The trainer should keep the discriminator's
    parameters out of the generator step's gradient (``requires_grad_(False)`` or zeroing
    their grads before the discriminator step), as Lightning's optimizer toggling did.

    :param config: loss settings; defaults are VidTok's released values.
    :param perceptual_model: an already-built perceptual network ``(x, y) -> (N, 1, 1, 1)``,
        e.g. :meth:`LPIPS.random_init` in tests; when given, no weight files are read.
    :raises LPIPSWeightsError: ``perceptual_weight > 0`` and no LPIPS weights can be found.
    """

    @attrs.frozen(kw_only=True)
    class Config:
        """Settings of :class:`ReconstructionGANLoss` (names follow the original config)."""

        #: Weight of LPIPS added to the per-pixel L1 term; 0 disables LPIPS entirely.
        perceptual_weight: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
        #: Step from which the GAN terms are on (compared with ``step >=``).
        disc_start: int = attrs.field(default=20001, validator=attrs.validators.ge(0))
        #: Scale of the adaptive GAN weight (``disc_weight``).
        disc_weight: float = attrs.field(default=0.2, validator=attrs.validators.ge(0.0))
        #: Factor on both GAN terms once active; 0 turns the GAN off.
        disc_factor: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
        #: Discriminator kind: ``"2d"`` (per frame) or ``"3d"``.
        disc_type: str = attrs.field(default="2d", validator=attrs.validators.in_(tuple(DISCRIMINATORS)))
        #: Number of down-sampling layers of the PatchGAN.
        disc_num_layers: int = attrs.field(default=3, validator=attrs.validators.ge(1))
        #: Input channels of the discriminator.
        disc_in_channels: int = attrs.field(default=3, validator=attrs.validators.ge(1))
        #: Discriminator loss: ``"hinge"`` or ``"vanilla"``.
        disc_loss: str = attrs.field(default="hinge", validator=attrs.validators.in_(tuple(_D_LOSSES)))
        #: Non-saturating BCE generator loss (True) or ``-mean(logits)`` (False).
        gen_loss_cross_entropy: bool = True
        #: Weight of the LeCam regulariser in the discriminator loss; 0 disables it.
        lecam_loss_weight: float = attrs.field(default=0.005, validator=attrs.validators.ge(0.0))
        #: Initial value of the learned log-variance.
        logvar_init: float = 0.0
        #: Whether ``logvar`` is trained (it is in every released config).
        learn_logvar: bool = True
        #: Regulariser loss name -> weight; names not listed are logged but not added.
        regularization_weights: Mapping[str, float] = attrs.field(
            factory=lambda: {"aux_loss": 1.0, "kl_loss": 1e-6}, converter=dict, hash=False
        )
        #: Local torchvision VGG16 weights; None falls back to ``$VIDTOK_KIT_VGG16_WEIGHTS``.
        vgg16_weights: str | None = None
        #: Local LPIPS ``vgg.pth`` lin heads; None falls back to ``$VIDTOK_KIT_LPIPS_WEIGHTS``.
        lpips_weights: str | None = None

    def __init__(self, config: Config | None = None, *, perceptual_model: nn.Module | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else self.Config()
        self.config = cfg
        self.perceptual_loss: nn.Module | None = None
        if cfg.perceptual_weight > 0:
            if perceptual_model is None:
                try:
                    perceptual_model = LPIPS.from_files(cfg.vgg16_weights, cfg.lpips_weights)
                except LPIPSWeightsError as e:
                    raise LPIPSWeightsError(
                        f"perceptual_weight={cfg.perceptual_weight} needs LPIPS weights: {e}; "
                        "or set perceptual_weight = 0 to train without LPIPS"
                    ) from None
            self.perceptual_loss = perceptual_model
        self.logvar = nn.Parameter(torch.full((), float(cfg.logvar_init)), requires_grad=cfg.learn_logvar)
        self.discriminator = build_discriminator(
            cfg.disc_type, in_channels=cfg.disc_in_channels, n_layers=cfg.disc_num_layers
        )
        self.lecam = LeCamEMA(decay=0.999) if cfg.lecam_loss_weight > 0 else None
        self._d_loss = _D_LOSSES[cfg.disc_loss]
        self.register_state_dict_post_hook(_drop_perceptual_keys)
        self.register_load_state_dict_pre_hook(_perceptual_from_module)

    # -- helpers ---------------------------------------------------------------------------

    def gan_active(self, step: int) -> bool:
        """Whether the GAN terms count at ``step`` (the trainer may skip the D step otherwise).

        :param step: the training step the caller also passes to the loss methods.
        """
        return self.config.disc_factor > 0 and step >= self.config.disc_start

    def _disc_factor(self, step: int) -> float:
        return self.config.disc_factor if step >= self.config.disc_start else 0.0

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Parameters to hand to the autoencoder optimizer (``logvar`` when learned)."""
        return [self.logvar] if self.logvar.requires_grad else []

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters to hand to the discriminator optimizer."""
        return list(self.discriminator.parameters())

    # -- generator side --------------------------------------------------------------------

    def generator_loss(
        self,
        x: Tensor,
        x_hat: Tensor,
        reg_losses: Mapping[str, Tensor] | None,
        step: int,
        last_layer: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss for the autoencoder optimizer.

        :param x: input clip ``(B, C, T, H, W)`` (or images ``(B, C, H, W)``) in ``[-1, 1]``.
        :param x_hat: reconstruction, same shape.
        :param reg_losses: regulariser losses by name (e.g. ``{"aux_loss": …}``); weighted by
            ``regularization_weights``, unlisted names are only logged.
        :param step: training step, compared with ``disc_start``.
        :param last_layer: decoder ``conv_out`` weight for the adaptive GAN weight; required once
            the GAN is active and gradients are enabled.
        :return: ``(total, logs)``; logs hold detached scalars.
        """
        cfg = self.config
        t = x.shape[2] if x.ndim == 5 else 1
        inputs, recons = _fold(x), _fold(x_hat)

        rec_loss = torch.abs(inputs - recons)
        if self.perceptual_loss is not None:
            p_loss = self.perceptual_loss(inputs, recons)
            rec_loss = rec_loss + cfg.perceptual_weight * p_loss  # (N,1,1,1) onto every pixel
        else:
            p_loss = rec_loss.new_zeros(())
        nll = rec_loss / torch.exp(self.logvar) + self.logvar
        nll_loss = nll.sum() / nll.shape[0]  # per-frame sum over C·H·W, mean over B·T

        disc_factor = self._disc_factor(step)
        zero = nll_loss.new_zeros(())
        g_loss, d_weight = zero, zero
        loss = nll_loss
        if self.gan_active(step):
            fake = rearrange(recons, "(b t) c h w -> b c t h w", t=t) if cfg.disc_type == "3d" else recons
            logits_fake = self.discriminator(fake)
            g_loss = (
                non_saturating_gen_loss(logits_fake)
                if cfg.gen_loss_cross_entropy
                else hinge_gen_loss(logits_fake)
            )
            if torch.is_grad_enabled():
                if last_layer is None:
                    raise ValueError(
                        "generator_loss: pass last_layer (the decoder conv_out weight) once the GAN is active"
                    )
                d_weight = adaptive_weight(nll_loss, g_loss, last_layer, scale=cfg.disc_weight)
            # without gradients (validation) the adaptive weight cannot be measured: 0, as the original
            loss = loss + d_weight * disc_factor * g_loss

        logs: dict[str, Tensor] = {}
        for name, value in (reg_losses or {}).items():
            if name in cfg.regularization_weights:
                loss = loss + cfg.regularization_weights[name] * value
            logs[name] = value.detach().mean()
        logs.update(
            total_loss=loss.detach(),
            logvar=self.logvar.detach(),
            nll_loss=nll_loss.detach(),
            rec_loss=rec_loss.detach().mean(),
            p_loss=p_loss.detach().mean(),
            d_weight=d_weight.detach(),
            disc_factor=torch.tensor(disc_factor),
            g_loss=g_loss.detach(),
        )
        return loss, logs

    # -- discriminator side ----------------------------------------------------------------

    def discriminator_loss(self, x: Tensor, x_hat: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss for the discriminator optimizer: (hinge + lecam_weight · LeCam) × disc_factor.

        Before ``disc_start`` it is computed and multiplied by 0, as in the original, so a
        trainer that always steps both optimizers still gets a valid graph; use
        :meth:`gan_active` to skip the step instead.

        :param x: real clip ``(B, C, T, H, W)`` (or images).
        :param x_hat: reconstruction, same shape; detached here.
        :param step: training step, compared with ``disc_start``.
        :return: ``(loss, logs)``; logs hold detached scalars.
        """
        cfg = self.config
        real, fake = x.detach(), x_hat.detach()
        if cfg.disc_type == "2d":
            real, fake = _fold(real), _fold(fake)
        logits_real = self.discriminator(real)
        logits_fake = self.discriminator(fake)
        disc_factor = self._disc_factor(step)
        d_loss = self._d_loss(logits_real, logits_fake)
        logs: dict[str, Tensor] = {}
        if self.lecam is not None:
            lecam_loss = self.lecam(logits_real, logits_fake)
            loss = disc_factor * (cfg.lecam_loss_weight * lecam_loss + d_loss)
            logs["lecam_loss"] = lecam_loss.detach()
        else:
            loss = disc_factor * d_loss
        logs.update(
            disc_loss=loss.detach(),
            logits_real=logits_real.detach().mean(),
            logits_fake=logits_fake.detach().mean(),
            disc_factor=torch.tensor(disc_factor),
            non_saturated_d_loss=d_loss.detach(),
        )
        return loss, logs


def _drop_perceptual_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    """State-dict post hook: the frozen LPIPS weights come from files, not checkpoints."""
    for key in [k for k in state_dict if k.startswith(prefix + _PERCEPTUAL)]:
        del state_dict[key]


def _perceptual_from_module(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load pre hook: ignore LPIPS entries of a checkpoint and keep the module's own weights.

    Checkpoints never need them (see :func:`_drop_perceptual_keys`), and an old checkpoint that
    has them still loads strictly into a loss built with ``perceptual_weight = 0``.
    """
    for key in [k for k in state_dict if k.startswith(prefix + _PERCEPTUAL)]:
        del state_dict[key]
    perceptual = getattr(module, "perceptual_loss", None)
    if perceptual is not None:
        for key, value in perceptual.state_dict().items():
            state_dict[prefix + _PERCEPTUAL + key] = value
