"""Diagonal-Gaussian (KL) regularizer: the continuous VidTok models.

Paper: Auto-Encoding Variational Bayes, arXiv:1312.6114; VidTok, arXiv:2412.13061 §3.2.
Adapted from microsoft/VidTok ``DiagonalGaussianRegularizer`` / ``distributions.py``.
Unlike the original (which samples even at inference), the posterior mean is returned unless the
caller asks for a sample, so encoding is deterministic.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.layers import no_autocast

__all__ = ["KLRegularizer"]


@attrs.frozen(kw_only=True)
class KLConfig:
    #: weight of the KL term in the training loss (VidTok: 1e-6)
    kl_weight: float = attrs.field(default=1e-6, validator=attrs.validators.ge(0.0))
    #: clamp of the predicted log-variance, as in the original
    logvar_min: float = -30.0
    logvar_max: float = 20.0


class KLRegularizer(Regularizer):
    """Splits the encoder output into mean and log-variance; latent = mean (or a sample)."""

    name = "kl"
    Config = KLConfig
    discrete = False

    @classmethod
    def encoder_channels(cls, config: Any, z_channels: int) -> int:
        return 2 * z_channels

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, 2z, T, H, W) -> latent (B, z, T, H, W)."""
        cfg = self.config
        with no_autocast(h):
            h = h.float()
            mean, logvar = h.chunk(2, dim=1)
            logvar = logvar.clamp(cfg.logvar_min, cfg.logvar_max)
            latent = mean
            if sample:
                latent = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            # summed over latent elements, averaged over the batch (original ``kl_loss``)
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum() / h.shape[0]
        return RegOut(latent=latent, loss=cfg.kl_weight * kl, indices=None, logs={"kl_loss": kl.detach()})


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [KLRegularizer]
