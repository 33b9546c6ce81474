"""Temporal sampling by a strided 3-D convolution alone: the paper's Variant 1 ("fully 3D").

Paper: VidTok, arXiv:2412.13061, §4.3 Table 2. Assumed here: AlphaBlender's conv branch without the
parameter-free branch: down = 3x3x3 conv with time stride 2; up = interpolate x2, then 3x3x3 conv.
"""

from __future__ import annotations

import attrs
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import TemporalSamplerPair
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, upsample_time

__all__ = ["Conv3dTemporalDown", "Conv3dTemporalSampler", "Conv3dTemporalUp"]


@attrs.frozen(kw_only=True)
class Conv3dTemporalConfig:
    """No options: kernel 3x3x3."""


class Conv3dTemporalDown(nn.Module):
    """(B, C, T, H, W) -> (B, C, T/2, H, W)."""

    def __init__(self, config: Conv3dTemporalConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.mode = mode
        self.conv = TimeConv(channels, channels, 3, mode=mode, time_stride=2, time_padding=0)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        if not self.mode.causal:
            x = F.pad(x, (0, 0, 0, 0, 0, 1))
        return self.conv(x, state)


class Conv3dTemporalUp(nn.Module):
    """(B, C, T, H, W) -> (B, C, 2T, H, W)."""

    def __init__(self, config: Conv3dTemporalConfig, *, channels: int, mode: TimeMode, lead_frames: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.lead_frames = lead_frames
        self.conv = TimeConv(channels, channels, 3, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        return self.conv(upsample_time(x, self.mode, self.lead_frames, state), state)


class Conv3dTemporalSampler(TemporalSamplerPair):
    name = "conv3d"
    Config = Conv3dTemporalConfig
    Down = Conv3dTemporalDown
    Up = Conv3dTemporalUp


@hookimpl
def vidtok_kit_register_temporal_samplers() -> list[type[TemporalSamplerPair]]:
    return [Conv3dTemporalSampler]
