"""Fully 3-D spatial sampling: the paper's Variant 1 (Table 2, "fully 3D architecture").

Paper: VidTok, arXiv:2412.13061, §4.3 Table 2. The paper does not spell the variant out; here the
2-D convs of :mod:`conv2d` become 3x3x3 convs (causal in time, stride 1 in time, 2 in space),
with the same right/bottom zero padding, so only the kernel's time extent changes.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import SpatialSamplerPair
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode

__all__ = ["Conv3dSpatialDown", "Conv3dSpatialSampler", "Conv3dSpatialUp"]


@attrs.frozen(kw_only=True)
class Conv3dSpatialConfig:
    """No options: kernel 3x3x3."""


class Conv3dSpatialDown(nn.Module):
    """Zero-pad right/bottom by one, then a 3x3x3 conv with spatial stride 2."""

    def __init__(self, config: Conv3dSpatialConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.conv = TimeConv(channels, channels, 3, mode=mode, spatial_stride=2, spatial_padding=0)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, T, H/2, W/2)."""
        return self.conv(F.pad(x, (0, 1, 0, 1)), state)


class Conv3dSpatialUp(nn.Module):
    """Nearest x2 in H and W, then a 3x3x3 conv."""

    def __init__(self, config: Conv3dSpatialConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.conv = TimeConv(channels, channels, 3, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, T, 2H, 2W)."""
        up = F.interpolate(x.to(torch.float32), scale_factor=(1.0, 2.0, 2.0), mode="nearest").to(x.dtype)
        return self.conv(up, state)


class Conv3dSpatialSampler(SpatialSamplerPair):
    name = "conv3d"
    Config = Conv3dSpatialConfig
    Down = Conv3dSpatialDown
    Up = Conv3dSpatialUp


@hookimpl
def vidtok_kit_register_spatial_samplers() -> list[type[SpatialSamplerPair]]:
    return [Conv3dSpatialSampler]
