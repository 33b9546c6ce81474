"""Residual blocks shared by the fusion plugins: 2-D per frame, 1-D per pixel over time, and 3-D.

All follow the VidTok layout norm1 -> swish -> conv1 -> norm2 -> swish -> dropout -> conv2 (+ skip),
with LayerNorm over channels, so state-dict keys match the original checkpoints.

``forward_channels_last`` is the form exported graphs use (for whole clips; the 2-D block also in
step graphs, having no state): the same arithmetic on a (B, T, H, W, C) residual stream (see
:func:`~vidtok_kit.model.layers.to_channels_last`). With channels last no norm needs a transpose,
every transpose inside a block sits next to a convolution, where ONNX Runtime folds it into the
conv's layout reorder, and the pair between two blocks cancels: in the released decoder this
removed about eight full-size transposes per resolution-level block.
"""

from __future__ import annotations

from torch import Tensor, nn

from vidtok_kit.model.layers import (
    ChannelNorm,
    StreamState,
    TimeConv,
    TimeMode,
    conv2d_channels_last,
    from_channels_last,
    from_frames,
    swish,
    to_channels_last,
    to_frames,
)
from vidtok_kit.model.shortcuts import exporting_graph

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
        if exporting_graph():
            return from_channels_last(self.forward_channels_last(to_channels_last(x)))
        return from_frames(self.forward_frames(to_frames(x)), x.shape[0])

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """(B, T, H, W, C_in) -> (B, T, H, W, C_out): :meth:`forward_frames` in the exported layout."""
        b, t, h, w, c = x.shape
        frames = x.reshape(b * t, h, w, c)
        y = conv2d_channels_last(self.conv1, swish(self.norm1.forward_channels_last(frames)))
        y = conv2d_channels_last(self.conv2, self.dropout(swish(self.norm2.forward_channels_last(y))))
        skip = frames if self.nin_shortcut is None else conv2d_channels_last(self.nin_shortcut, frames)
        # -1, not y.shape[-1]: a Shape of a conv output makes ONNX Runtime materialise an NCHW copy
        return (skip + y).reshape(b, t, h, w, -1)


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
        """(B, C, T, H, W) -> same, computed on the 5-D tensor (per-pixel convs as (3, 1, 1) Conv3d).

        An exported whole clip runs channels last; streamed steps keep their (B, C, T, ...) state.
        """
        if state is None and exporting_graph():
            return from_channels_last(self.forward_channels_last(to_channels_last(x)))
        return self.forward_pixels(x, state)

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """(B, T, H, W, C) -> same, a whole clip in the exported layout (time convs over (B, T, H*W, C))."""
        b, t, h, w, c = x.shape
        pixels = x.reshape(b, t, h * w, c)
        y = self.conv1.forward_channels_last(swish(self.norm1.forward_channels_last(pixels)))
        y = self.conv2.forward_channels_last(self.dropout(swish(self.norm2.forward_channels_last(y))))
        return x + y.reshape(b, t, h, w, c)  # same T: a causal front of k - 1 frames, or symmetric padding


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
