"""Training losses for VidTok tokenizers: LPIPS, PatchGAN discriminators, GAN terms, and the
combined :class:`ReconstructionGANLoss` (VidTok's ``GeneralLPIPSWithDiscriminator``).

Nothing here downloads weights: LPIPS reads local files (see :meth:`LPIPS.from_files`), and
``perceptual_weight = 0`` trains without it.
"""

from __future__ import annotations

from vidtok_kit.losses.discriminator import (
    DISCRIMINATORS,
    NLayerDiscriminator,
    NLayerDiscriminator3D,
    build_discriminator,
    weights_init,
)
from vidtok_kit.losses.gan import (
    LeCamEMA,
    adaptive_weight,
    hinge_d_loss,
    hinge_gen_loss,
    lecam_reg,
    non_saturating_gen_loss,
    vanilla_d_loss,
)
from vidtok_kit.losses.lpips import ENV_LPIPS_WEIGHTS, ENV_VGG16_WEIGHTS, LPIPS, LPIPSWeightsError
from vidtok_kit.losses.vae_loss import ReconstructionGANLoss
from vidtok_kit.losses.vgg import VGG16Features, VGG16Outputs

__all__ = [
    "DISCRIMINATORS",
    "ENV_LPIPS_WEIGHTS",
    "ENV_VGG16_WEIGHTS",
    "LPIPS",
    "LPIPSWeightsError",
    "LeCamEMA",
    "NLayerDiscriminator",
    "NLayerDiscriminator3D",
    "ReconstructionGANLoss",
    "VGG16Features",
    "VGG16Outputs",
    "adaptive_weight",
    "build_discriminator",
    "hinge_d_loss",
    "hinge_gen_loss",
    "lecam_reg",
    "non_saturating_gen_loss",
    "vanilla_d_loss",
    "weights_init",
]
