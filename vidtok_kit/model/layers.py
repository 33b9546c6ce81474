"""Shared primitives: time modes, explicit causal state, channel LayerNorm, time-aware convolutions.

Plugins import nothing from the core but these primitives (and :mod:`vidtok_kit.model.blocks`).
The causal conventions are VidTok's (see ``shared/spec/vidtok-reference.md`` §2):

* v1.0 causal: a temporal convolution is front-padded with **zeros**; time upsampling is nearest.
* v1.1 causal: front padding **replicates the first frame**; time upsampling is linear, with the
  leading frames of the first latent interpolated on their own.
* non-causal: symmetric zero padding; time upsampling is nearest.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from vidtok_kit.model.shortcuts import exporting_graph, keep_channels_last, keeps_channels_last

__all__ = [
    "ChannelNorm",
    "FrameConv",
    "SpatialAttention",
    "StreamState",
    "TimeConv",
    "TimeMode",
    "causal_front_pad",
    "conv2d_channels_last",
    "end_conv",
    "from_channels_last",
    "from_frames",
    "from_pixels",
    "no_autocast",
    "swish",
    "to_channels_last",
    "to_frames",
    "to_pixels",
    "upsample_time",
]


class TimeMode(enum.Enum):
    """How the time axis is treated: the three conventions of the released VidTok models."""

    NONCAUSAL = "noncausal"
    CAUSAL_V1_0 = "v1.0"
    CAUSAL_V1_1 = "v1.1"

    @property
    def causal(self) -> bool:
        return self is not TimeMode.NONCAUSAL

    @classmethod
    def of(cls, causal: bool, version: str) -> TimeMode:
        return cls(version) if causal else cls.NONCAUSAL


class StreamState:
    """Causal context of one streaming call, as plain tensors: ``past`` in, ``present`` out.

    Every causal module that needs frames from before the current chunk calls :meth:`take` once and
    then :meth:`put` once, in a fixed module order, so the list of tensors lines up call after call.
    ``past=None`` means "this is the first chunk": modules then use their first-chunk padding.
    ``final=True`` means "no chunk follows": modules that hold frames back for look-ahead (v1.1
    linear time upsampling, see :func:`upsample_time`) emit them, clamping at the end of the clip.
    Nothing is stored on modules, so the same model can stream several videos at once and export
    the step as a graph with cache tensors as inputs and outputs.
    """

    def __init__(self, past: Sequence[Tensor] | None = None, *, final: bool = False) -> None:
        self.past = tuple(past) if past is not None else None
        self.final = final
        self.present: list[Tensor] = []
        self._cursor = 0

    @property
    def first(self) -> bool:
        return self.past is None

    def take(self) -> Tensor | None:
        if self.past is None:
            return None
        if self._cursor >= len(self.past):
            raise ValueError(f"stream state has {len(self.past)} tensors but the model asked for more")
        tensor = self.past[self._cursor]
        self._cursor += 1
        return tensor

    def put(self, tensor: Tensor) -> None:
        self.present.append(tensor)


def swish(x: Tensor) -> Tensor:
    return F.silu(x)


# -- layout helpers: the 2-D parts run per frame, the 1-D parts per pixel ---------------------------


def to_frames(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    return rearrange(x, "b c t h w -> (b t) c h w")


def from_frames(x: Tensor, batch: int) -> Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    return rearrange(x, "(b t) c h w -> b c t h w", b=batch)


def to_channels_last(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B, T, H, W, C): the layout of an exported residual stream (a permuted view).

    Graph runtimes have no memory formats, so the layout PyTorch gets from ``channels_last_3d``
    is written into the graph. ONNX Runtime's CPU provider folds a transpose between this layout
    and NCHW into the blocked-layout reorder of the convolution it feeds or follows, and channel
    LayerNorm needs no transpose at all in it: see :meth:`ResBlock2d.forward_channels_last`.
    """
    return x.permute(0, 2, 3, 4, 1)


def from_channels_last(x: Tensor) -> Tensor:
    """(B, T, H, W, C) -> (B, C, T, H, W)."""
    return x.permute(0, 4, 1, 2, 3)


def conv2d_channels_last(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 2-D conv of (N, H, W, C) images -> (N, H', W', C_out), with the transposes next to the conv
    (where a graph runtime folds them into its input and output reorders)."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def to_pixels(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B*H*W, C, T)."""
    return rearrange(x, "b c t h w -> (b h w) c t")


def from_pixels(x: Tensor, batch: int, height: int) -> Tensor:
    """(B*H*W, C, T) -> (B, C, T, H, W)."""
    return rearrange(x, "(b h w) c t -> b c t h w", b=batch, h=height)


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis only (every released VidTok model uses it, eps 1e-6).

    The inner module is named ``norm`` so keys read ``...norm1.norm.weight`` as in the original.
    On a (B, C, ...) tensor it exports as transpose, LayerNormalization, transpose (its decomposition
    into reductions over axis 1 measured slower in ONNX Runtime, 1.07x the whole encoder's time);
    the resolution-level blocks export channels last (:meth:`forward_channels_last`), without them.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        # explicit last index: the legacy ONNX exporter writes movedim(-1, 1) as an invalid perm
        last = x.ndim - 1
        return self.norm(x.movedim(1, last)).movedim(last, 1)

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """The norm of a tensor whose channels are already its last axis (no transposes)."""
        return self.norm(x)


def causal_front_pad(x: Tensor, frames: int, mode: TimeMode, state: StreamState | None, *, dim: int = 2) -> Tensor:
    """Prepend ``frames`` frames of causal context along ``dim`` (the time axis: 2 in (B, C, T, ...),
    1 in an exported channels-last stream).

    First chunk: zeros (v1.0) or copies of the first frame (v1.1). Later chunks: the tail of the
    previous chunk, taken from ``state``; the new tail is put back for the next chunk.
    """
    if frames == 0:
        return x
    past = state.take() if state is not None else None
    if past is None:
        front = _first_chunk_front(x, frames, mode, dim=dim)
        if keeps_channels_last(x):
            # keep a channels-last stream channels-last: torch.cat keeps that layout only if
            # every part has it, and the expanded front does not
            front = front.contiguous(memory_format=torch.channels_last_3d)
        padded = torch.cat([front, x], dim=dim)
    else:
        padded = torch.cat([past.to(x.dtype), x], dim=dim)
    if state is not None:
        # a copy: a view would keep the whole padded chunk alive until the next step
        state.put(padded.narrow(dim, padded.shape[dim] - frames, frames).clone())
    return padded


def _first_chunk_front(x: Tensor, frames: int, mode: TimeMode, *, dim: int) -> Tensor:
    """The causal context of a first chunk along ``dim``: zeros (v1.0) or copies of frame 0 (v1.1)."""
    first = x.narrow(dim, 0, 1)
    front = first.expand(*first.shape[:dim], frames, *first.shape[dim + 1 :])
    return torch.zeros_like(front) if mode is TimeMode.CAUSAL_V1_0 else front


class TimeConv(nn.Module):
    """A 3-D (or 1-D over time) convolution whose time axis is causal or symmetric.

    Causal: ``kernel_t - stride_t`` frames of front context (see :func:`causal_front_pad`), no
    temporal padding inside the conv. Non-causal: symmetric zero padding ``time_padding``.
    Wraps the conv as ``.conv`` so causal keys match the original ``CausalConv3d`` layout.

    Fast form (:func:`~vidtok_kit.model.shortcuts.set_arithmetic`): a stride-1 per-pixel time
    conv of a whole channels-last clip runs as one dilated 2-D conv.
    """

    #: use the exact shortcut (see :mod:`vidtok_kit.model.shortcuts`)
    fast_arithmetic = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        mode: TimeMode,
        dims: int = 3,
        time_stride: int = 1,
        spatial_stride: int = 1,
        spatial_padding: int | None = None,
        time_padding: int | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.kernel_size = kernel_size
        self.time_stride = time_stride
        self.front = kernel_size - time_stride if mode.causal else 0
        t_pad = 0 if mode.causal else (kernel_size // 2 if time_padding is None else time_padding)
        if dims == 1:
            self.conv: nn.Module = nn.Conv1d(in_channels, out_channels, kernel_size, stride=time_stride, padding=t_pad)
        else:
            s_pad = kernel_size // 2 if spatial_padding is None else spatial_padding
            self.conv = nn.Conv3d(
                in_channels,
                out_channels,
                kernel_size,
                stride=(time_stride, spatial_stride, spatial_stride),
                padding=(t_pad, s_pad, s_pad),
            )

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        if self._as_dilated_conv2d(x, state):
            return _time_conv_channels_last(x, self.conv, self.front, self.mode)
        if self.front:
            x = causal_front_pad(x, self.front, self.mode, state)
        return keep_channels_last(self._conv(x), x)

    def _as_dilated_conv2d(self, x: Tensor, state: StreamState | None) -> bool:
        """A per-pixel stride-1 time conv of a whole channels-last clip, with the fast arithmetic.

        Whole clips only: streamed steps keep one conv algorithm for first and later chunks, so a
        zero initial state reproduces the first step bit for bit.
        """
        conv = self.conv
        return (
            state is None
            and isinstance(conv, nn.Conv1d)
            and x.ndim == 5
            and conv.stride[0] == 1
            and self.fast_arithmetic
            and keeps_channels_last(x)  # a layout trick: never while a graph is exported
        )

    def _conv(self, x: Tensor) -> Tensor:
        if x.ndim == 5 and isinstance(self.conv, nn.Conv1d):
            conv = self.conv
            if exporting_graph():
                b, c, t, h, w = x.shape
                y = self._conv_time_rows(x.reshape(b, c, t, h * w))
                # no y.shape: a Shape of a conv output makes ONNX Runtime keep an NCHW copy of it
                return y.reshape(b, conv.out_channels, -1, h, w)
            # a per-pixel 1-D conv run on (B, C, T, H, W) directly as a (k, 1, 1) Conv3d with the
            # same weights: no (B*H*W, C, T) copies, and ~2x faster in oneDNN (same numbers).
            return F.conv3d(x, conv.weight[..., None, None], conv.bias, (conv.stride[0], 1, 1), (conv.padding[0], 0, 0))
        return self.conv(x)

    def _conv_time_rows(self, x: Tensor) -> Tensor:
        """The per-pixel time conv of (B, C, T, P) as a (k, 1) 2-D conv: graph runtimes give 2-D convs
        their fast kernels and blocked layouts, 3-D ones a generic path (same numbers)."""
        conv = self.conv
        if not isinstance(conv, nn.Conv1d):
            raise TypeError("only a per-pixel (1-D) time conv runs as rows of a 2-D conv")
        padding = conv.padding[0]
        assert isinstance(padding, int)  # TimeConv never builds string paddings
        return F.conv2d(x, conv.weight[..., None], conv.bias, (conv.stride[0], 1), (padding, 0))

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """A whole clip's per-pixel time conv in the exported channels-last layout: (B, T, P, C) ->
        (B, T', P, C_out), P the pixels of a frame (see :func:`to_channels_last`)."""
        if self.front:
            x = causal_front_pad(x, self.front, self.mode, None, dim=1)
        return self._conv_time_rows(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _time_conv_channels_last(x: Tensor, conv: nn.Conv1d, front: int, mode: TimeMode) -> Tensor:
    """A stride-1 per-pixel time conv of a channels-last (B, C, T, H, W) clip as one dilated 2-D conv.

    In channels-last memory the clip is a (T*H, W) image with C channels, and frame t + k of
    pixel (h, w) is row (t + k) * H + h: a (k, 1) kernel with row dilation H. Same numbers as the
    (k, 1, 1) Conv3d, but compiled graphs keep this image in channels-last order (the reshape
    demands it), where they may hand a Conv3d a channels-first buffer that runs ~3x slower.
    The causal front frames are concatenated in the (B, T, H, W, C) view, whose row-major order
    *is* channels-last: padding along dim 2 of the (B, C, T, H, W) view let compiled graphs build
    the padded clip channels-first and transpose it twice (a third of bf16 encode time).
    """
    b, c, t, h, w = x.shape
    pixels = x.permute(0, 2, 3, 4, 1)  # (B, T, H, W, C), contiguous
    if front:
        pixels = torch.cat([_first_chunk_front(pixels, front, mode, dim=1), pixels], dim=1)
    image = pixels.reshape(b, (t + front) * h, w, c).permute(0, 3, 1, 2)
    pad = conv.padding[0]
    y = F.conv2d(image, conv.weight[..., None], conv.bias, padding=(pad * h, 0), dilation=(h, 1))
    frames = y.shape[2] // h
    return y.permute(0, 2, 3, 1).reshape(b, frames, h, w, -1).permute(0, 4, 1, 2, 3)


def upsample_time(x: Tensor, mode: TimeMode, lead_frames: int = 1, state: StreamState | None = None) -> Tensor:
    """Double the frame count of (B, C, T, ...) the way each VidTok convention does.

    v1.1 uses linear interpolation (align_corners=False, edges clamped) and interpolates the first
    ``lead_frames`` frames separately from the rest, exactly as the original's first chunk does.
    Computed in fp32 like the original, then cast back.

    Streaming (``state`` given, v1.1): output frames ``2i, 2i+1`` need input ``i + 1``, so the
    last input frame of a chunk is held back in the state and its outputs are emitted with the
    next chunk (or, on the ``final`` chunk, with the end clamp): every later layer sees the same
    frames as in a whole-clip run, one input frame late. Nearest upsampling is local: no state.
    """
    dtype = x.dtype
    if mode is not TimeMode.CAUSAL_V1_1:
        return x.repeat_interleave(2, dim=2)
    if state is not None:
        return _linear_double_stream(x, lead_frames, state).to(dtype)
    lead = min(lead_frames, x.shape[2])
    parts = [p for p in (x[:, :, :lead], x[:, :, lead:]) if p.shape[2] > 0]
    return torch.cat([_linear_double(p.float()) for p in parts], dim=2).to(dtype)


def _linear_double_stream(x: Tensor, lead_frames: int, state: StreamState) -> Tensor:
    """One streaming step of v1.1 time upsampling; state = the last two input frames (a, held).

    First chunk: the ``lead_frames`` frames are doubled on their own (both edges clamped), as in
    :func:`upsample_time`; the rest starts with a clamped left edge. Every step emits the outputs
    of the held frame and of all new frames but the last, which becomes the new held frame (with
    its left neighbour, so the next step can form ``.75 x[i] + .25 x[i-1]``). ``final`` emits
    everything with the right edge clamped. The arithmetic is :func:`_linear_double`'s, term for
    term, so streamed frames equal whole-clip frames bit for bit.
    """
    past = state.take()
    parts: list[Tensor] = []
    if past is None:
        lead = min(lead_frames, x.shape[2])
        if lead < lead_frames and not state.final:
            raise ValueError(
                f"the first chunk reaching a v1.1 time upsampler has {x.shape[2]} frames, fewer than the "
                f"{lead_frames} frames of latent 0: start the stream with at least one whole latent"
            )
        parts.append(_linear_double(x[:, :, :lead].float()))
        x = x[:, :, lead:]
        if x.shape[2] == 0:
            # Nothing after latent 0 yet: the next chunk starts the clamped part (empty state).
            state.put(x)
            return parts[0]
        extended = torch.cat([x[:, :, :1], x], dim=2)
    elif past.shape[2] == 0:
        extended = torch.cat([x[:, :, :1], x], dim=2)
    else:
        extended = torch.cat([past.to(x.dtype), x], dim=2)
    if state.final:
        parts.append(_linear_interior(torch.cat([extended, extended[:, :, -1:]], dim=2).float()))
    elif extended.shape[2] > 2:
        parts.append(_linear_interior(extended.float()))
    state.put(extended[:, :, -2:].clone())  # a copy, not a view that pins the whole chunk
    if not parts:  # a single new frame after an empty state: it is held, nothing to emit yet
        return x.new_empty((*x.shape[:2], 0, *x.shape[3:]), dtype=torch.float32)
    return torch.cat(parts, dim=2)


def _linear_double(x: Tensor) -> Tensor:
    """Linear x2 along dim 2 with align_corners=False: out[2i] = .75 x[i] + .25 x[i-1], clamped.

    Written with slicing instead of F.interpolate so it exports to ONNX/TensorRT as plain
    arithmetic and works for any tensor rank.
    """
    prev = torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)
    nxt = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    even = 0.75 * x + 0.25 * prev
    odd = 0.75 * x + 0.25 * nxt
    return torch.stack([even, odd], dim=3).flatten(2, 3)


def _linear_interior(e: Tensor) -> Tensor:
    """Linear x2 of frames ``e[1:-1]`` whose neighbours ``e[0]`` and ``e[-1]`` are given (2(n-2) frames)."""
    mid = e[:, :, 1:-1]
    even = 0.75 * mid + 0.25 * e[:, :, :-2]
    odd = 0.75 * mid + 0.25 * e[:, :, 2:]
    return torch.stack([even, odd], dim=3).flatten(2, 3)


class SpatialAttention(nn.Module):
    """VidTok's mid attention: single head over the H*W tokens of each frame, no cross-frame mixing.

    q/k/v/proj_out are 1x1x1 :class:`TimeConv` (kernel 1 needs no causal context).
    """

    def __init__(self, channels: int, *, mode: TimeMode) -> None:
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.q = TimeConv(channels, channels, 1, mode=mode)
        self.k = TimeConv(channels, channels, 1, mode=mode)
        self.v = TimeConv(channels, channels, 1, mode=mode)
        self.proj_out = TimeConv(channels, channels, 1, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> same."""
        b, _, t, h, w = x.shape
        y = self.norm(x)
        q, k, v = (rearrange(m(y), "b c t h w -> b t (h w) c") for m in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v)
        y = rearrange(y, "b t (h w) c -> b c t h w", h=h)
        return x + self.proj_out(y)


class FrameConv(nn.Module):
    """A 2-D convolution applied to every frame; same ``.conv`` key level as :class:`TimeConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        return from_frames(self.conv(to_frames(x)), x.shape[0])


def end_conv(in_channels: int, out_channels: int, *, kind: str, mode: TimeMode) -> nn.Module:
    """conv_in / conv_out: 3x3x3 (VidTok) or 3x3 per frame."""
    if kind == "2d":
        return FrameConv(in_channels, out_channels)
    return TimeConv(in_channels, out_channels, 3, mode=mode)


def no_autocast(x: Tensor) -> contextlib.AbstractContextManager[Any]:
    """Disable autocast for ``x``'s device (quantizers and KL run in fp32); a no-op on meta."""
    if x.device.type in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()
