"""PatchGAN discriminators (per-frame 2-D and spatio-temporal 3-D).

Paper: Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks"
(pix2pix), arXiv:1611.07004, section 3.2.2 "PatchGAN".

Adapted from taming-transformers ``taming/modules/discriminator/model.py``
(``NLayerDiscriminator``, ``weights_init``), which VidTok uses unchanged for ``disc_type = "2d"``
(the setting of every released config). The layer list lives in ``self.main`` so the state-dict
keys (``main.0.weight`` …) match the original ``discriminator.*`` checkpoint entries.

The 3-D variant (``disc_type = "3d"``, unused by the released configs) lifts the same stack to
``Conv3d`` 4x4x4 / ``BatchNorm3d``. Strides chosen here: ``(2, 2, 2)`` in the first two layers,
``(1, 2, 2)`` in any further down-sampling layer (n_layers > 2), and 1 in the last two layers,
the common "halve time only twice" choice (sgm / VidTok-style 3-D PatchGANs) so that a 17-frame
clip is not collapsed to nothing. Padding is 1 everywhere as in pix2pix, so each stride-1 4x4x4
conv shortens every axis by one: with n_layers = 3 the 3-D discriminator needs at least 16 frames
and 24x24 pixels (see :meth:`NLayerDiscriminator3D.out_size`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor, nn

from vidtok_kit.errors import ComponentError

__all__ = [
    "DISCRIMINATORS",
    "NLayerDiscriminator",
    "NLayerDiscriminator3D",
    "build_discriminator",
    "weights_init",
]


@torch.no_grad()
def weights_init(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """pix2pix/taming init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0.

    Conv biases (only the first and last conv have one) keep PyTorch's default init, exactly
    as taming's ``weights_init`` leaves them.

    :param module: applied to ``module`` and all its submodules.
    :param generator: optional private RNG (tests).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class NLayerDiscriminator(nn.Module):
    """2-D PatchGAN applied to each frame independently.

    Layers (n_layers = 3, ndf = 64): Conv4x4 s2 3→64 + LReLU(0.2); Conv4x4 s2 64→128 (no bias)
    + BN + LReLU; Conv4x4 s2 128→256 + BN + LReLU; Conv4x4 s1 256→512 + BN + LReLU;
    Conv4x4 s1 512→1. Biases are dropped before BatchNorm because BN's shift makes them redundant.

    :param in_channels: image channels.
    :param ndf: width of the first layer; doubles per layer up to ``8 * ndf``.
    :param n_layers: number of stride-2 convolutions.
    """

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.n_layers = n_layers
        seq: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            seq += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        seq.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*seq)
        weights_init(self)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size of the logit map for an ``h x w`` input.

        :return: ``(h', w')``.
        """
        for m in self.main:
            if isinstance(m, nn.Conv2d):
                h = _conv_out(h, 4, m.stride[0], 1)
                w = _conv_out(w, 4, m.stride[1], 1)
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits.

        :param x: ``(N, C, H, W)`` images, or ``(B, C, T, H, W)`` video whose frames are scored
            independently (folded into the batch).
        :return: ``(N, 1, H', W')``, or ``(B, 1, T, H', W')`` for video input.
        """
        if x.ndim == 5:
            t = x.shape[2]
            y = self.main(rearrange(x, "b c t h w -> (b t) c h w"))
            return rearrange(y, "(b t) c h w -> b c t h w", t=t)
        return self.main(x)


class NLayerDiscriminator3D(nn.Module):
    """3-D PatchGAN over ``(T, H, W)`` patches (same stack with Conv3d 4x4x4 / BatchNorm3d).

    Strides: ``(2, 2, 2)`` for layers 0 and 1, ``(1, 2, 2)`` for further down-sampling layers,
    1 for the last two (see module docstring for the reason and the minimum clip size).

    :param in_channels: video channels.
    :param ndf: width of the first layer; doubles per layer up to ``8 * ndf``.
    :param n_layers: number of spatially strided convolutions.
    """

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.n_layers = n_layers
        seq: list[nn.Module] = [
            nn.Conv3d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            if n == n_layers:
                stride: tuple[int, int, int] = (1, 1, 1)
            else:
                stride = (2 if n == 1 else 1, 2, 2)
            seq += [
                nn.Conv3d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=False),
                nn.BatchNorm3d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        seq.append(nn.Conv3d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*seq)
        weights_init(self)

    def out_size(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """Size of the logit volume for a ``t x h x w`` input (each must come out >= 1).

        :return: ``(t', h', w')``.
        """
        for m in self.main:
            if isinstance(m, nn.Conv3d):
                t = _conv_out(t, 4, m.stride[0], 1)
                h = _conv_out(h, 4, m.stride[1], 1)
                w = _conv_out(w, 4, m.stride[2], 1)
        return t, h, w

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits.

        :param x: ``(B, C, T, H, W)`` video.
        :return: ``(B, 1, T', H', W')``.
        """
        return self.main(x)


#: Registered discriminators, by the original ``disc_type`` string.
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "2d": NLayerDiscriminator,
    "3d": NLayerDiscriminator3D,
}


def build_discriminator(name: str, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    """Build a discriminator by its ``disc_type`` name.

    :param name: ``"2d"`` (per-frame PatchGAN, VidTok's choice) or ``"3d"``.
    :param in_channels: input channels.
    :param ndf: first-layer width.
    :param n_layers: number of down-sampling layers.
    :return: the freshly initialised discriminator.
    :raises ComponentError: unknown name; the message lists the available ones.
    """
    try:
        cls = DISCRIMINATORS[name]
    except KeyError:
        raise ComponentError(f"unknown discriminator {name!r}; available: {sorted(DISCRIMINATORS)}") from None
    return cls(in_channels=in_channels, ndf=ndf, n_layers=n_layers)
