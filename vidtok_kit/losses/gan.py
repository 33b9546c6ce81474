"""Adversarial loss terms: hinge / non-saturating GAN losses, LeCam regulariser, adaptive weight.

Papers:
* hinge loss: Lim & Ye, "Geometric GAN", arXiv:1705.02894;
* non-saturating loss: Goodfellow et al., "Generative Adversarial Nets", arXiv:1406.2661, §3;
* LeCam regulariser: Tseng et al., "Regularizing Generative Adversarial Networks under Limited
  Data", arXiv:2104.03310, eq. 3;
* adaptive weight: Esser et al., "Taming Transformers for High-Resolution Image Synthesis",
  arXiv:2012.09841, eq. 7.

Adapted from VidTok ``vidtok/modules/losses.py`` (``hinge_d_loss``, ``non_saturate_gen_loss``,
``lecam_reg``, ``LeCAM_EMA`` after SEED-Voken's Open-MAGVIT2, ``calculate_adaptive_weight``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LeCamEMA",
    "adaptive_weight",
    "hinge_d_loss",
    "hinge_gen_loss",
    "lecam_reg",
    "non_saturating_gen_loss",
    "vanilla_d_loss",
]


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss ``0.5 (mean relu(1 - real) + mean relu(1 + fake))``.

    :param logits_real: discriminator logits on real data, any shape.
    :param logits_fake: logits on reconstructions, any shape.
    :return: scalar loss.
    """
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator logistic loss ``0.5 (mean softplus(-real) + mean softplus(fake))``.

    Kept because the original exposes ``disc_loss = "vanilla"``; no released config uses it.

    :param logits_real: logits on real data.
    :param logits_fake: logits on reconstructions.
    :return: scalar loss.
    """
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def non_saturating_gen_loss(logits_fake: Tensor) -> Tensor:
    """Generator loss ``BCE-with-logits(mean logit of each sample, 1)``, averaged over samples.

    The per-sample mean comes *before* the sigmoid, as in VidTok (``gen_loss_cross_entropy``):
    the generator is judged on the average patch score of each image, not patch by patch.

    :param logits_fake: ``(N, …)`` logits on reconstructions; dim 0 indexes samples.
    :return: scalar loss.
    """
    per_sample = logits_fake.reshape(logits_fake.shape[0], -1).mean(dim=1)
    return F.binary_cross_entropy_with_logits(per_sample, torch.ones_like(per_sample))


def hinge_gen_loss(logits_fake: Tensor) -> Tensor:
    """Generator loss ``-mean(logits_fake)`` (used when ``gen_loss_cross_entropy`` is off).

    :param logits_fake: logits on reconstructions.
    :return: scalar loss.
    """
    return -logits_fake.mean()


def lecam_reg(logits_real: Tensor, logits_fake: Tensor, ema_real: Tensor, ema_fake: Tensor) -> Tensor:
    """LeCam regulariser ``mean(relu(real - ema_fake)^2) + mean(relu(ema_real - fake)^2)``.

    It keeps real and fake predictions from drifting apart beyond each other's running means,
    which stabilises the discriminator when it starts winning.

    :param logits_real: logits on real data.
    :param logits_fake: logits on reconstructions.
    :param ema_real: running mean of real logits (scalar tensor).
    :param ema_fake: running mean of fake logits (scalar tensor).
    :return: scalar regulariser.
    """
    return F.relu(logits_real - ema_fake).pow(2).mean() + F.relu(ema_real - logits_fake).pow(2).mean()


class LeCamEMA(nn.Module):
    """LeCam regulariser with its exponential moving averages held as buffers.

    The original kept the EMAs as Python floats (``.item()`` every step, lost on resume);
    buffers avoid the host sync and travel with the loss module's checkpoint.

    :param decay: EMA decay (0.999 in VidTok).
    :param init: initial value of both averages.
    """

    logits_real_ema: Tensor
    logits_fake_ema: Tensor

    def __init__(self, *, decay: float = 0.999, init: float = 0.0) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("logits_real_ema", torch.tensor(float(init)))
        self.register_buffer("logits_fake_ema", torch.tensor(float(init)))

    @torch.no_grad()
    def update(self, logits_real: Tensor, logits_fake: Tensor) -> None:
        """Fold this step's mean logits into the averages.

        :param logits_real: logits on real data.
        :param logits_fake: logits on reconstructions.
        """
        d = self.decay
        self.logits_real_ema.mul_(d).add_(logits_real.detach().float().mean(), alpha=1 - d)
        self.logits_fake_ema.mul_(d).add_(logits_fake.detach().float().mean(), alpha=1 - d)

    def forward(self, logits_real: Tensor, logits_fake: Tensor) -> Tensor:
        """Update the averages (in training mode only), then return the regulariser.

        The update comes first, as in the original. Evaluation passes do not move the
        averages (the original also updated them during validation).

        :param logits_real: logits on real data.
        :param logits_fake: logits on reconstructions.
        :return: scalar regulariser.
        """
        if self.training:
            self.update(logits_real, logits_fake)
        return lecam_reg(logits_real, logits_fake, self.logits_real_ema, self.logits_fake_ema)


def adaptive_weight(
    nll_loss: Tensor, g_loss: Tensor, last_layer_weight: Tensor, scale: float = 0.2
) -> Tensor:
    """Balance the GAN term against reconstruction at the decoder's last layer (taming eq. 7).

    ``scale * clamp(||d nll / d w|| / (||d g / d w|| + 1e-4), 0, 1e4)``, detached, so the GAN
    gradient reaching the decoder output has ``scale`` times the reconstruction gradient's norm.

    :param nll_loss: scalar reconstruction loss, still attached to the graph.
    :param g_loss: scalar generator loss, still attached to the graph.
    :param last_layer_weight: the weight the norms are measured at (decoder ``conv_out``).
    :param scale: the ``disc_weight`` factor.
    :return: scalar, detached weight.
    """
    nll_grads = torch.autograd.grad(nll_loss, last_layer_weight, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer_weight, retain_graph=True)[0]
    weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    return torch.clamp(weight, 0.0, 1e4).detach() * scale
