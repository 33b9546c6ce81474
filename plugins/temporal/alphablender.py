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
from vidtok_kit.model.layers import (
    StreamState,
    TimeConv,
    TimeMode,
    causal_front_pad,
    from_frames,
    to_frames,
    upsample_time,
)
from vidtok_kit.model.shortcuts import exporting_graph, keep_channels_last

__all__ = ["AlphaBlender", "AlphaBlenderDown", "AlphaBlenderUp", "blend_up_from_low_rate", "blend_up_from_tap_images"]


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
        return keep_channels_last(alpha * pooled + (1 - alpha) * conv, x)  # avg_pool3d returns NCDHW


class AlphaBlenderUp(nn.Module):
    """Doubles T: blend of the interpolated input and a 3x3x3 conv of it.

    Fast form (:func:`~vidtok_kit.model.shortcuts.set_arithmetic`): the blend computed from the
    low-rate frames (:func:`blend_up_from_low_rate`), for whole clips without autograd; while a
    graph is traced or exported, the same algebra as whole-tensor operators
    (:func:`blend_up_from_tap_images`), which keeps the frame count dynamic.
    """

    #: use the low-rate form where it applies (see :func:`_may_fold`)
    fast_arithmetic = False

    def __init__(self, config: AlphaBlenderConfig, *, channels: int, mode: TimeMode, lead_frames: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.lead_frames = lead_frames
        self.mix_factor = nn.Parameter(torch.tensor([config.mix_factor]))
        self.conv = TimeConv(channels, channels, 3, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, 2T, H, W)."""
        alpha = torch.sigmoid(self.mix_factor).to(x.dtype)
        if state is None and self.fast_arithmetic:
            if exporting_graph():
                conv = self.conv.conv
                return blend_up_from_tap_images(x, conv.weight, conv.bias, alpha, self.mode, self.lead_frames)
            if _may_fold():
                return self._blend_from_low_rate(x, alpha)
        up = upsample_time(x, self.mode, self.lead_frames, state)
        return alpha * up + (1 - alpha) * self.conv(up, state)

    def _blend_from_low_rate(self, x: Tensor, alpha: Tensor) -> Tensor:
        """The same blend computed from the *low-rate* frames: half the conv MACs, no upsampled copy.

        See :func:`blend_up_from_low_rate`; it is a custom operator so that compiled graphs run it
        as one opaque kernel with its own memory plan (one tap image alive at a time).
        """
        conv = self.conv.conv
        return torch.ops.vidtok_kit.alphablender_up_low_rate(
            x, conv.weight, conv.bias, alpha, self.mode.value, self.lead_frames
        )


def blend_up_from_low_rate(
    x: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, mode: str, lead_frames: int
) -> Tensor:
    """``alpha * up(x) + (1 - alpha) * conv3d(pad(up(x)))`` without building ``up(x)``.

    Time upsampling and padding make every (padded) upsampled frame a fixed weighted sum of input
    frames, and a 2-D convolution commutes with such sums. So each temporal tap ``k`` of the
    3x3x3 kernel runs as a 2-D conv over the T input frames (27 T frame-taps in all instead of
    54 T), and each output frame adds the weighted tap images and input frames it is made of
    (:func:`_tap_weights`, :func:`_upsampled_sources`) in place. Only one tap image is alive at a
    time: the peak is input + output + one input-sized image. Same numbers up to float rounding;
    for inference only (see :func:`_may_fold`).

    Under ``torch.compile`` this runs as one extern kernel: traced as ops, its per-frame in-place
    sums became whole-buffer scatters and the functional form kept all three tap images, the
    output and the next norm's output alive together (the decoder's peak).
    """
    time_mode = TimeMode(mode)
    b, t = x.shape[0], x.shape[2]
    keep = (1 - alpha).to(weight.dtype)
    share = float(alpha)
    out = _empty_output(x, weight.shape[0])
    start = (bias * keep).view(1, -1, 1, 1)
    for frame, sources in enumerate(_upsampled_sources(t, time_mode, lead_frames)):
        acc = out[:, :, frame]
        acc.copy_(start.expand_as(acc))
        for source, w in sources.items():
            acc.add_(x[:, :, source], alpha=w * share)
    frames = to_frames(x)
    for tap, terms in enumerate(_tap_weights(t, time_mode, lead_frames)):
        image = from_frames(F.conv2d(frames, weight[:, :, tap] * keep, None, padding=1), b)
        for frame, sources in enumerate(terms):
            for source, w in sources.items():
                out[:, :, frame].add_(image[:, :, source], alpha=w)
        del image
    return out


def blend_up_from_tap_images(
    x: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, mode: TimeMode, lead_frames: int
) -> Tensor:
    """The low-rate blend as whole-tensor operators, for exported graphs (any frame count).

    The three temporal taps of the kernel run as one 2-D conv of every input frame at once
    (``3 * C_out`` output channels: half the reference's conv MACs). Time upsampling
    and the conv's time padding are linear along time and act frame-wise, so they commute with
    that conv: the tap images are upsampled with :func:`upsample_time` and padded exactly like
    :class:`TimeConv` pads its input (v1.1: copies of frame 0, lead frames doubled on their own;
    v1.0: zeros; non-causal: a zero frame each side), and output frame ``f`` is
    ``tap_0[f] + tap_1[f + 1] + tap_2[f + 2]`` of the padded images. Nothing depends on the frame
    count except through shapes, so one exported graph serves every T; the custom operator's
    per-frame loop (:func:`blend_up_from_low_rate`) would freeze it. Same numbers up to float
    rounding; it builds the upsampled tap images (3x the reference's upsampled clip), which a
    graph runtime plans as ordinary buffers.
    """
    c_out = weight.shape[0]
    taps = weight.permute(2, 0, 1, 3, 4).reshape(3 * c_out, *weight.shape[1:2], *weight.shape[3:])
    # frame-wise 2-D conv: runtimes run (1, 3, 3) 3-D convs far slower (ONNX Runtime CPU: ~5x)
    images = from_frames(F.conv2d(to_frames(x), taps, None, padding=1), x.shape[0])
    if mode is not TimeMode.CAUSAL_V1_1:
        return _nearest_blend(x, images, bias, alpha, causal=mode.causal)
    images = upsample_time(images, mode, lead_frames)
    frames = images.shape[2]
    if mode.causal:
        images = causal_front_pad(images, 2, mode, None)
    else:
        images = F.pad(images, (0, 0, 0, 0, 1, 1))
    conv = (
        images[:, :c_out, :frames]
        + images[:, c_out : 2 * c_out, 1 : frames + 1]
        + images[:, 2 * c_out :, 2 : frames + 2]
        + bias.view(1, -1, 1, 1, 1)
    )
    return alpha * upsample_time(x, mode, lead_frames) + (1 - alpha) * conv


def _nearest_blend(x: Tensor, images: Tensor, bias: Tensor, alpha: Tensor, *, causal: bool) -> Tensor:
    """:func:`blend_up_from_tap_images` for nearest doubling: even and odd output frames at the low
    rate, interleaved once (no upsampled tap images).

    Upsampled frames ``2j`` and ``2j + 1`` are both ``x[j]``, so with tap images ``I_k``:
    causal (two zero frames in front) ``even[j] = I_0[j-1] + I_1[j-1] + I_2[j]``,
    ``odd[j] = I_0[j-1] + I_1[j] + I_2[j]``; non-causal (a zero frame each side)
    ``even[j] = I_0[j-1] + I_1[j] + I_2[j]``, ``odd[j] = I_0[j] + I_1[j] + I_2[j+1]``.
    """
    c_out = images.shape[1] // 3
    t = images.shape[2]
    i0, i1, i2 = images[:, :c_out], images[:, c_out : 2 * c_out], images[:, 2 * c_out :]

    def earlier(y: Tensor) -> Tensor:  # y[j - 1], zero at j = 0
        return F.pad(y, (0, 0, 0, 0, 1, 0))[:, :, :t]

    if causal:
        even, odd = earlier(i0 + i1) + i2, earlier(i0) + (i1 + i2)
    else:
        later = F.pad(i2, (0, 0, 0, 0, 0, 1))[:, :, 1:]  # I_2[j + 1], zero at the end
        even, odd = earlier(i0) + (i1 + i2), (i0 + i1) + later
    keep, base = 1 - alpha, alpha * x + (1 - alpha) * bias.view(1, -1, 1, 1, 1)
    pair = torch.stack([base + keep * even, base + keep * odd], dim=3)  # (B, C, T, 2, H, W)
    return pair.reshape(pair.shape[0], pair.shape[1], 2 * t, *pair.shape[4:])


_blend_up_op = torch.library.custom_op("vidtok_kit::alphablender_up_low_rate", blend_up_from_low_rate, mutates_args=())


@_blend_up_op.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, mode: str, lead_frames: int) -> Tensor:
    return _empty_output(x, weight.shape[0])


def _empty_output(x: Tensor, channels: int) -> Tensor:
    """(B, channels, 2T, H, W) in ``x``'s memory format (channels-last in, channels-last out)."""
    b, _, t = x.shape[:3]
    fmt = torch.channels_last_3d if x.is_contiguous(memory_format=torch.channels_last_3d) else torch.contiguous_format
    return torch.empty((b, channels, 2 * t, *x.shape[3:]), dtype=x.dtype, device=x.device, memory_format=fmt)


def _may_fold() -> bool:
    """The low-rate form is for inference: not under autograd, and not while exporting a graph
    (its per-frame sums would freeze the frame count into an exported graph)."""
    return not (torch.is_grad_enabled() or exporting_graph())


def _upsampled_sources(frames: int, mode: TimeMode, lead_frames: int) -> list[dict[int, float]]:
    """For each frame of ``upsample_time`` of ``frames`` frames: {input frame: weight}.

    The same rules as :func:`~vidtok_kit.model.layers.upsample_time`: nearest doubling, or (v1.1)
    linear doubling with clamped edges, the first ``lead_frames`` frames doubled on their own.
    """
    if mode is not TimeMode.CAUSAL_V1_1:
        return [{i // 2: 1.0} for i in range(2 * frames)]
    lead = min(lead_frames, frames)
    out: list[dict[int, float]] = []
    for start, stop in ((0, lead), (lead, frames)):
        for i in range(start, stop):
            for side in (max(i - 1, start), min(i + 1, stop - 1)):
                weights = {i: 0.75}
                weights[side] = weights.get(side, 0.0) + 0.25
                out.append(weights)
    return out


def _tap_weights(frames: int, mode: TimeMode, lead_frames: int) -> list[list[dict[int, float]]]:
    """For each tap of the 3-tap time conv over the upsampled clip, for each output frame: {input frame: weight}.

    Padding as :class:`TimeConv`: causal, two frames in front (copies of upsampled frame 0 for
    v1.1, zeros for v1.0); non-causal, one zero frame on each side.
    """
    up = _upsampled_sources(frames, mode, lead_frames)
    if mode is TimeMode.CAUSAL_V1_1:
        padded = [up[0], up[0], *up]
    elif mode.causal:
        padded = [{}, {}, *up]
    else:
        padded = [{}, *up, {}]
    return [[padded[frame + tap] for frame in range(len(up))] for tap in range(3)]


class AlphaBlender(TemporalSamplerPair):
    name = "alphablender"
    Config = AlphaBlenderConfig
    Down = AlphaBlenderDown
    Up = AlphaBlenderUp


@hookimpl
def vidtok_kit_register_temporal_samplers() -> list[type[TemporalSamplerPair]]:
    return [AlphaBlender]
