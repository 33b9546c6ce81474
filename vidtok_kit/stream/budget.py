"""Choosing chunk (and, if needed, tile) sizes from a memory budget.

A streaming process peaks at its runtime (interpreter, torch, codecs: :data:`RUNTIME_BYTES`), the
model's weights, and a step's activations, which grow linearly with the frames in the chunk. The activation cost per frame is estimated from the architecture: the
largest per-level feature map (channels x pixels, divided by how much time was already
downsampled) times :data:`ACTIVATION_FACTOR`, the number of such maps alive at the peak
(block input, conv output, norm, activation, layout copies, causal-context concatenations),
calibrated by measuring peak RSS on CPU (see ``benchmarks/streaming.py``). The per-frame mid
attention matrix is added on top. When even the smallest chunk does not fit, frames are tiled.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import attrs

from vidtok_kit.errors import InputError

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = [
    "ACTIVATION_FACTOR",
    "WHOLE_CLIP_ACTIVATION_FACTOR",
    "DEFAULT_MAX_MEMORY",
    "MAX_CHUNK_FRAMES",
    "MAX_WINDOW_FRAMES",
    "RUNTIME_BYTES",
    "StreamPlan",
    "activation_bytes",
    "parse_memory",
    "plan_stream",
]

#: live feature maps of the largest size at a step's peak: the growth of peak RSS per frame of a
#: step, measured on CPU (fp32, 4x8x8 model at 256x256, 4..32 frames per step) was 12.2x (encode)
#: and 12.5x (decode) the largest map
ACTIVATION_FACTOR = 13
#: the same for a whole clip run as one step with the fast arithmetic (channels-last, AlphaBlender
#: upsampler from the low-rate frames, no state copies), encode / decode: the peak grew by 6.1x /
#: 3.2x the largest map per frame at 128x128 and 6.1x / 3.5x at 64x64 (fp32, 4x8x8, whole clips
#: of 9..140 frames, benchmarks/cli.py's model); these leave 30-40% headroom
WHOLE_CLIP_ACTIVATION_FACTOR = {"encode": 8, "decode": 5}
#: what the process holds besides weights and activations (interpreter, torch, codecs; ~0.4 GiB measured)
RUNTIME_BYTES = 512 * 2**20
#: budget when neither a chunk size nor ``--max-memory`` is given
DEFAULT_MAX_MEMORY = 4 * 2**30
#: a causal chunk never exceeds this many frames (beyond it, throughput no longer improves)
MAX_CHUNK_FRAMES = 64
#: non-causal windows may be longer: the longer the window, the smaller the overlap's share
MAX_WINDOW_FRAMES = 256

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str | int) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"`` or a byte count -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise InputError(f"cannot read memory size {text!r}: use e.g. 4G, 512M or a number of bytes")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value <= 0:
        raise InputError(f"memory size must be positive, got {text!r}")
    return int(value)


def activation_bytes(
    model: VideoTokenizer, height: int, width: int, which: Literal["encode", "decode"], itemsize: int, *,
    factor: float = ACTIVATION_FACTOR,
) -> int:
    """Estimated activation bytes per *output-side* frame: per input frame (encode) or per output frame (decode).

    ``height`` x ``width`` are pixel sizes in both cases.
    """
    cfg = model.config
    largest = 0
    spatial, temporal = 1, 1
    levels = range(cfg.num_levels) if which == "encode" else reversed(range(cfg.num_levels))
    if which == "decode":  # the deepest level runs at latent size, one frame per tdf output frames
        spatial, temporal = model.spatial_factor, model.temporal_factor
    for i in levels:
        channels = cfg.base_channels * cfg.channel_mult[i]
        in_channels = cfg.base_channels * cfg.channel_mult[i - 1 if which == "encode" and i else i]
        size = max(channels, in_channels) * (height // spatial) * (width // spatial) / temporal
        largest = max(largest, int(size))
        if which == "encode":
            if i in cfg.spatial_down:
                spatial *= 2
            if i in cfg.temporal_down:
                temporal *= 2
        else:
            if i in cfg.spatial_up:
                spatial //= 2
            if i in cfg.temporal_up:
                temporal //= 2
            # after upsampling the level's output is also alive at its new size
            largest = max(largest, int(channels * (height // spatial) * (width // spatial) / temporal))
    tokens = (height // model.spatial_factor) * (width // model.spatial_factor)
    attention = tokens * tokens * 4 / model.temporal_factor  # fp32 scores per latent frame
    return int(factor * largest * itemsize + attention)


@attrs.frozen(kw_only=True)
class StreamPlan:
    """How a stream is cut: ``chunk`` frames (encode) or latents (decode) per step, optional tiles."""

    chunk: int
    tile: int | None = None  #: spatial tile side in input units (pixels / latents); None = whole frame
    tile_overlap: int = 0
    estimated_bytes: int = 0


def plan_stream(
    model: VideoTokenizer,
    height: int,
    width: int,
    which: Literal["encode", "decode"],
    *,
    max_memory: int,
    itemsize: int = 4,
    max_frames: int = MAX_CHUNK_FRAMES,
    factor: float = ACTIVATION_FACTOR,
) -> StreamPlan:
    """The largest chunk that fits ``max_memory`` bytes, tiling frames when one step does not fit.

    ``height`` x ``width`` are the input sizes of the step: pixels (encode) or latents (decode).
    Encode chunks are multiples of the temporal factor (input frames); decode chunks are latents.
    ``max_frames`` caps a step (frames on the pixel side); ``factor``: live maps per frame
    (:data:`ACTIVATION_FACTOR` for streamed steps, :data:`WHOLE_CLIP_ACTIVATION_FACTOR` for a
    whole clip with the fast arithmetic).
    """
    tdf, sf = model.temporal_factor, model.spatial_factor
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    free = max_memory - RUNTIME_BYTES - weights
    px_h, px_w = (height, width) if which == "encode" else (height * sf, width * sf)
    unit_frames = tdf  # frames produced or consumed per latent

    def cost(h: int, w: int, latents: int) -> int:
        return activation_bytes(model, h, w, which, itemsize, factor=factor) * latents * unit_frames

    if free > 0 and cost(px_h, px_w, 1) <= free:
        latents = max(1, min(free // cost(px_h, px_w, 1), max_frames // unit_frames or 1))
        return StreamPlan(
            chunk=int(latents) * (tdf if which == "encode" else 1),
            estimated_bytes=RUNTIME_BYTES + weights + cost(px_h, px_w, int(latents)),
        )
    # one latent step of the whole frame does not fit: tile (side in pixels, a multiple of 2 * sf)
    overlap_px = 4 * sf
    side = max(px_h, px_w)
    while side > 2 * overlap_px and (free <= 0 or cost(min(side, px_h), min(side, px_w), 1) > free):
        side = (side * 3 // 4) // (2 * sf) * (2 * sf)
    if free <= 0 or cost(min(side, px_h), min(side, px_w), 1) > free:
        raise InputError(
            f"max memory {max_memory / 2**30:.2f} GiB is too small for this model "
            f"({RUNTIME_BYTES / 2**30:.2f} GiB runtime, {weights / 2**30:.2f} GiB of weights and at least one {side}x{side} tile)"
        )
    scale = 1 if which == "encode" else sf
    return StreamPlan(
        chunk=tdf if which == "encode" else 1,
        tile=side // scale,
        tile_overlap=overlap_px // scale,
        estimated_bytes=RUNTIME_BYTES + weights + cost(min(side, px_h), min(side, px_w), 1),
    )
