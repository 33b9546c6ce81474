"""Joint space-time sampling by one strided 3-D convolution: the paper's Variant 1 ("fully 3D").

Paper: VidTok, arXiv:2412.13061, §4.3 Table 2: "Variant 1 uses a fully 3D architecture for spatial
and temporal sampling". VidTok's own contribution is to *decouple* the two (2-D spatial sampling,
AlphaBlender in time); the natural fully 3-D counterpart, as in MAGVIT-v2-style causal 3-D VAEs, is a
single 3x3x3 convolution that resamples time and space together. This sampler is that module:

* Down: zero-pad right/bottom by one (as VidTok's spatial downsample), then a 3x3x3 conv with
  stride (2, 2, 2); causal models take one frame of front context, non-causal ones get one zero
  frame at the end (VidTok's non-causal temporal convention).
* Up: double T (the model's time convention: nearest, or v1.1's linear with separate leading
  frames), nearest x2 in H and W, then a 3x3x3 conv.

Because :attr:`TemporalSamplerPair.joint` is set, the encoder/decoder use it *instead of* the
spatial sampler at levels that resample both axes; levels that resample only space keep the
recipe's spatial sampler (``conv3d`` in the Variant 1 recipe). Measured with ``vidtok-kit profile``
this reproduces the paper's 16.98 T MACs for Variant 1 (see
``recipes/ablations/architecture/variant1_fully_3d.toml``).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import TemporalSamplerPair
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, upsample_time

__all__ = ["Joint3dDown", "Joint3dSampler", "Joint3dUp"]


@attrs.frozen(kw_only=True)
class Joint3dConfig:
    """No options: kernel 3x3x3, factor 2 on every axis."""


class Joint3dDown(nn.Module):
    """(B, C, T, H, W) -> (B, C, T/2, H/2, W/2) with one strided 3x3x3 conv."""

    def __init__(self, config: Joint3dConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.mode = mode
        self.conv = TimeConv(
            channels, channels, 3, mode=mode, time_stride=2, time_padding=0, spatial_stride=2, spatial_padding=0
        )

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        x = F.pad(x, (0, 1, 0, 1))  # right/bottom, like VidTok's spatial downsample
        if not self.mode.causal:
            x = F.pad(x, (0, 0, 0, 0, 0, 1))
        return self.conv(x, state)


class Joint3dUp(nn.Module):
    """(B, C, T, H, W) -> (B, C, 2T, 2H, 2W): interpolate all three axes, then a 3x3x3 conv."""

    def __init__(self, config: Joint3dConfig, *, channels: int, mode: TimeMode, lead_frames: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.lead_frames = lead_frames
        self.conv = TimeConv(channels, channels, 3, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        up = upsample_time(x, self.mode, self.lead_frames, state)
        # nearest in space computed in fp32, as VidTok's spatial upsample does
        up = F.interpolate(up.to(torch.float32), scale_factor=(1.0, 2.0, 2.0), mode="nearest").to(x.dtype)
        return self.conv(up, state)


class Joint3dSampler(TemporalSamplerPair):
    name = "joint3d"
    Config = Joint3dConfig
    Down = Joint3dDown
    Up = Joint3dUp
    joint = True


@hookimpl
def vidtok_kit_register_temporal_samplers() -> list[type[TemporalSamplerPair]]:
    return [Joint3dSampler]
