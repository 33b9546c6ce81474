"""VGG16 convolutional trunk for the LPIPS perceptual loss.

Paper: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", arXiv:1409.1556.

Adapted from torchvision ``models/vgg.py`` (configuration "D") and the ``vgg16`` slicing wrapper
of taming-transformers ``taming/modules/losses/lpips.py`` (used verbatim by VidTok
``vidtok/modules/lpips.py``).

Why it is re-written here instead of imported: torchvision is not a dependency of vidtok-kit
(and does not import in every environment we run in), and LPIPS only needs the convolutional
``features`` part. The layers sit in one ``nn.Sequential`` called ``features`` at exactly the
indices of ``torchvision.models.vgg16().features``, so a torchvision checkpoint key
``features.N.weight`` maps onto ``features.N.weight`` here one to one; the five relu stages are
read off at the same boundaries taming's ``slice1`` … ``slice5`` used.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["VGG16_CONFIG", "VGG16_STAGE_ENDS", "VGG16Features", "VGG16Outputs"]

#: torchvision ``cfgs["D"]``: conv output widths, ``"M"`` = 2x2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512,
)  # fmt: skip

#: Exclusive end index in ``features`` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
#: (taming's slices ``[0,4) [4,9) [9,16) [16,23) [23,30)``). torchvision's final max-pool at
#: index 30 has no parameters and LPIPS never uses it, so it is left out.
VGG16_STAGE_ENDS: tuple[int, ...] = (4, 9, 16, 23, 30)


class VGG16Outputs(NamedTuple):
    """The five relu stages LPIPS compares, each ``(N, C_k, H_k, W_k)``."""

    relu1_2: Tensor
    relu2_2: Tensor
    relu3_3: Tensor
    relu4_3: Tensor
    relu5_3: Tensor


class VGG16Features(nn.Module):
    """VGG16 ``features`` trunk returning the five relu stages used by LPIPS.

    :param device: where to allocate the parameters; ``"meta"`` gives an empty shell that
        :meth:`torch.nn.Module.load_state_dict` (``assign=True``) fills without first paying for
        a random initialisation that would be overwritten anyway.
    """

    #: Channel width of each returned stage.
    channels: tuple[int, ...] = (64, 128, 256, 512, 512)

    def __init__(self, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(v, int)
                # Not in-place (torchvision uses inplace=True): the relu outputs are returned
                # as stage features, and in-place ops on returned tensors invite autograd errors.
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1, device=device), nn.ReLU()]
                in_ch = v
        self.features = nn.Sequential(*layers)
        assert len(self.features) == VGG16_STAGE_ENDS[-1]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise like torchvision (Kaiming normal, fan_out, relu; zero bias).

        Only meaningful for tests: a random trunk is not a perceptual metric.

        :param generator: optional RNG so tests do not disturb the global seed.
        """
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> VGG16Outputs:
        """Run the trunk.

        :param x: images ``(N, 3, H, W)``, already ImageNet-scaled by the caller.
        :return: the relu1_2 … relu5_3 activations.
        """
        outs: list[Tensor] = []
        h = x
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i + 1 in VGG16_STAGE_ENDS:
                outs.append(h)
        return VGG16Outputs(*outs)
