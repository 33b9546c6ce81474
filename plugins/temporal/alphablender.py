"""AlphaBlender temporal sampling: a learned sigmoid blend of a parameter-free and a conv branch.

Paper: VidTok, arXiv:2412.13061, §3.1: ``x = alpha * x1 + (1 - alpha) * x2`` with
``alpha = sigmoid(mix_factor)``. Down: x1 = AvgPool3d (3,1,1)/2 over time, x2 = 3x3x3 conv with time
stride 2. Up: x1 = the x2-interpolated input, x2 = a 3x3x3 conv of it.
Adapted from microsoft/VidTok ``model_3dcausal(_v1_1).py`` / ``model_3dnoncausal.py``
(``TimeDownsampleResCausal2x`` / ``TimeUpsampleResCausal2x``).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import TemporalSamplerPair
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, causal_front_pad, upsample_time

__all__ = ["AlphaBlender", "AlphaBlenderDown", "AlphaBlenderUp"]


@attrs.frozen(kw_only=True)
class AlphaBlenderConfig:
    #: initial pre-sigmoid blend factor (2.0 in VidTok: alpha ~ 0.881 favours the fixed branch)
    mix_factor: float = 2.0


def _avg_pool_time(x: Tensor) -> Tensor:
    """AvgPool3d kernel (3,1,1) stride (2,1,1); in fp32 because CPU avg_pool3d lacks bf16."""
    return F.avg_pool3d(x.float(), (3, 1, 1), stride=(2, 1, 1)).to(x.dtype)


class AlphaBlenderDown(nn.Module):
    """Halves T. Causal: one frame of front context for both branches; non-causal: one zero frame at the end."""

    def __init__(self, config: AlphaBlenderConfig, *, channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.mode = mode
        self.mix_factor = nn.Parameter(torch.tensor([config.mix_factor]))
        self.conv = TimeConv(channels, channels, 3, mode=mode, time_stride=2, time_padding=0)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, T/2, H, W)."""
        alpha = torch.sigmoid(self.mix_factor).to(x.dtype)
        if self.mode.causal:
            pooled = _avg_pool_time(causal_front_pad(x, 1, self.mode, state))
            conv = self.conv(x, state)
        else:
            x = F.pad(x, (0, 0, 0, 0, 0, 1))
            pooled, conv = _avg_pool_time(x), self.conv(x)
        return alpha * pooled + (1 - alpha) * conv


class AlphaBlenderUp(nn.Module):
    """Doubles T: blend of the interpolated input and a 3x3x3 conv of it."""

    def __init__(self, config: AlphaBlenderConfig, *, channels: int, mode: TimeMode, lead_frames: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.lead_frames = lead_frames
        self.mix_factor = nn.Parameter(torch.tensor([config.mix_factor]))
        self.conv = TimeConv(channels, channels, 3, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, 2T, H, W)."""
        alpha = torch.sigmoid(self.mix_factor).to(x.dtype)
        up = upsample_time(x, self.mode, self.lead_frames, state)
        return alpha * up + (1 - alpha) * self.conv(up, state)


class AlphaBlender(TemporalSamplerPair):
    name = "alphablender"
    Config = AlphaBlenderConfig
    Down = AlphaBlenderDown
    Up = AlphaBlenderUp


@hookimpl
def vidtok_kit_register_temporal_samplers() -> list[type[TemporalSamplerPair]]:
    return [AlphaBlender]
