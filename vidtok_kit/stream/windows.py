"""Temporal receptive radius of a non-causal model, which sets how much overlapping windows need.

Non-causal models pad every time convolution symmetrically with zeros, so a window cut out of a
long clip sees zeros where the clip has frames: outputs within the receptive radius of a cut edge
differ from a whole-clip run, outputs farther in are *identical*. If neighbouring windows overlap
by ``2 * radius`` or more and the cross-fade keeps a ``radius`` margin on each side
(:func:`~vidtok_kit.stream.buffers.crossfade_weights`), the joined stream equals the whole clip;
with less overlap it is an approximation whose ramp hides the seam.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from vidtok_kit.model.layers import TimeConv

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["temporal_radius"]


def temporal_radius(model: VideoTokenizer, which: Literal["encode", "decode"]) -> int:
    """Conservative receptive radius in *output* frames: latents for ``encode``, frames for ``decode``.

    Found by running the model once on a tiny clip (``sf x sf`` pixels) with hooks that record every
    time convolution's kernel and its frame rate relative to the output; the radii add up along the
    path (parallel branches are counted as if in series, hence "conservative"). Time resampling is
    counted as one more input frame of the coarser side.
    """
    tdf, sf = model.temporal_factor, model.spatial_factor
    part: nn.Module = model.encoder if which == "encode" else model.decoder
    records: list[tuple[int, int, int]] = []  # (kernel, stride, input frames)
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: records.append((mod.kernel_size, mod.time_stride, args[0].shape[2])))
        for m in part.modules()
        if isinstance(m, TimeConv)
    ]
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            if which == "encode":
                frames = 4 * tdf
                out_frames = frames // tdf
                model.encoder(torch.zeros(1, model.config.in_channels, frames, sf, sf, dtype=dtype, device=device))
            else:
                latents = 4
                out_frames = latents * tdf
                model.decoder(torch.zeros(1, model.config.z_channels, latents, 1, 1, dtype=dtype, device=device))
    finally:
        for h in hooks:
            h.remove()
    radius = 0.0
    for kernel, stride, t_in in records:
        rate = out_frames / t_in  # output frames per input frame of this conv
        radius += rate * (kernel // 2 if stride == 1 else kernel - 1)
    resamplings = int(math.log2(tdf)) if tdf > 1 else 0
    radius += resamplings * (tdf if which == "decode" else 1)
    return math.ceil(radius) + 1
