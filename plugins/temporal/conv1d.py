"""Temporal sampling by 1-D convolution over time: the paper's Variant 2 ("w/o AlphaBlender").

Paper: VidTok, arXiv:2412.13061, §4.3 Table 2: "separates spatial and temporal sampling using 2D and
1D convolutions but without AlphaBlender". Assumed here: down = a per-pixel Conv1d k3 with time
stride 2; up = interpolate x2 in time, then a per-pixel Conv1d k3 (causal in causal models).
"""

from __future__ import annotations

import attrs
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import TemporalSamplerPair
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, from_pixels, to_pixels, upsample_time

__all__ = ["Conv1dTemporalDown", "Conv1dTemporalSampler", "Conv1dTemporalUp"]


@attrs.frozen(kw_only=True)
class Conv1dTemporalConfig:
    """No options: kernel 3."""


class Conv1dTemporalDown(nn.Module):
    """Per-pixel strided Conv1d: (B, C, T, H, W) -> (B, C, T/2, H, W)."""

    def __init__(self, config: Conv1dTemporalConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.mode = mode
        self.conv = TimeConv(channels, channels, 3, mode=mode, dims=1, time_stride=2, time_padding=0)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        pixels = to_pixels(x)
        if not self.mode.causal:
            pixels = F.pad(pixels, (0, 1))
        return from_pixels(self.conv(pixels, state), x.shape[0], x.shape[3])


class Conv1dTemporalUp(nn.Module):
    """Interpolate x2 in time, then a per-pixel Conv1d: (B, C, T, H, W) -> (B, C, 2T, H, W)."""

    def __init__(self, config: Conv1dTemporalConfig, *, channels: int, mode: TimeMode, lead_frames: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.lead_frames = lead_frames
        self.conv = TimeConv(channels, channels, 3, mode=mode, dims=1)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        up = upsample_time(x, self.mode, self.lead_frames, state)
        return from_pixels(self.conv(to_pixels(up), state), x.shape[0], x.shape[3])


class Conv1dTemporalSampler(TemporalSamplerPair):
    name = "conv1d"
    Config = Conv1dTemporalConfig
    Down = Conv1dTemporalDown
    Up = Conv1dTemporalUp


@hookimpl
def vidtok_kit_register_temporal_samplers() -> list[type[TemporalSamplerPair]]:
    return [Conv1dTemporalSampler]
