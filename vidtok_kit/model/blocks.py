"""Residual blocks shared by the fusion plugins: 2-D per frame, 1-D per pixel over time, and 3-D.

All follow the VidTok layout norm1 -> swish -> conv1 -> norm2 -> swish -> dropout -> conv2 (+ skip),
with LayerNorm over channels, so state-dict keys match the original checkpoints.
"""

from __future__ import annotations

from torch import Tensor, nn

from vidtok_kit.model.layers import (
    ChannelNorm,
    StreamState,
    TimeConv,
    TimeMode,
    from_frames,
    swish,
    to_frames,
)

__all__ = ["ResBlock2d", "ResBlock3d", "TemporalResBlock"]


class ResBlock2d(nn.Module):
    """2-D residual block applied to every frame independently (original ``ResnetBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ChannelNorm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward_frames(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, H, W); frames never see each other."""
        return from_frames(self.forward_frames(to_frames(x)), x.shape[0])


class TemporalResBlock(nn.Module):
    """1-D residual block over time, applied to every pixel (original ``ResnetCausalBlock1D``).

    ``conv2`` starts at zero (weight and bias), so a freshly built block is the identity: the
    original does this so the temporal path is learned on top of a working per-frame model.
    """

    def __init__(self, channels: int, *, mode: TimeMode, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(channels)
        self.conv1 = TimeConv(channels, channels, 3, mode=mode, dims=1)
        self.norm2 = ChannelNorm(channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = TimeConv(channels, channels, 3, mode=mode, dims=1)
        nn.init.zeros_(self.conv2.conv.weight)
        nn.init.zeros_(self.conv2.conv.bias)

    def forward_pixels(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(N, C, T) -> (N, C, T); also takes (B, C, T, H, W) directly (see :meth:`forward`)."""
        h = self.conv1(swish(self.norm1(x)), state)
        h = self.conv2(self.dropout(swish(self.norm2(h))), state)
        return x + h

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> same, computed on the 5-D tensor (per-pixel convs as (3, 1, 1) Conv3d)."""
        return self.forward_pixels(x, state)


class ResBlock3d(nn.Module):
    """3-D residual block (original ``ResnetCausalBlock`` / ``ResnetNoncausalBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, *, mode: TimeMode, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(in_channels)
        self.conv1 = TimeConv(in_channels, out_channels, 3, mode=mode)
        self.norm2 = ChannelNorm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = TimeConv(out_channels, out_channels, 3, mode=mode)
        self.nin_shortcut = (
            TimeConv(in_channels, out_channels, 1, mode=mode) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, H, W)."""
        h = self.conv1(swish(self.norm1(x)), state)
        h = self.conv2(self.dropout(swish(self.norm2(h))), state)
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x, state)
        return skip + h
