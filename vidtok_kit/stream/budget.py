"""Choosing chunk (and, if needed, tile) sizes from a memory budget.

A streaming process peaks at its runtime (interpreter, torch, codecs: :data:`RUNTIME_BYTES`), the
model's weights, and a step's activations, which grow linearly with the frames in the chunk. The activation cost per frame is estimated from the architecture: the
largest per-level feature map (channels x pixels, divided by how much time was already
downsampled) times :data:`ACTIVATION_FACTOR`, the number of such maps alive at the peak
(block input, conv output, norm, activation, layout copies, causal-context concatenations),
calibrated by measuring peak RSS on CPU (see ``benchmarks/streaming.py``). The per-frame mid
attention matrix is added on top. When even the smallest chunk does not fit, frames are tiled.

Tiles shrink a step's activations, not everything: the frames read ahead of the model, a step's
whole-frame input and blended output, and the causal state (kept per tile, so all tiles together
hold the whole frame's) stay whole-frame sized (:func:`frame_bytes`). The plan charges them first;
a frame whose fixed part alone exceeds the budget cannot be made to fit by tiling and is refused
with one line before anything is allocated (:func:`check_frame_budget`). Without these terms a
1536x1536 frame under ``--max-memory 1G`` peaked at 2 GiB and 4096x4096 under 4G at 7.4 GB.
"""

from __future__ import annotations

import os
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
    "MIN_MAP_CHANNELS",
    "RUNTIME_BYTES",
    "READ_AHEAD_FRAMES",
    "STATE_MAPS",
    "StreamPlan",
    "activation_bytes",
    "check_frame_budget",
    "COMPILE_BYTES",
    "split_compile_budget",
    "frame_bytes",
    "parse_memory",
    "plan_stream",
]

#: live feature maps of the largest size at a step's peak: the growth of peak RSS per frame of a
#: step, measured on CPU (fp32, 4x8x8 model at 256x256, 4..32 frames per step) was 12.2x (encode)
#: and 12.5x (decode) the largest map
ACTIVATION_FACTOR = 13
#: the same for a whole clip run as one step with the fast arithmetic (channels-last, AlphaBlender
#: upsampler from the low-rate frames, no state copies), encode / decode. Measured as the growth of
#: peak RSS per frame between whole clips of 68 and 136 frames at 64x64 (fp32, 4x8x8,
#: benchmarks/cli.py's model), with freed memory kept for reuse (:mod:`vidtok_kit.heap`): 8.2 / 13.5
#: the largest map (6.9 / 8.5 with the C library's default, which returns it); a whole decode's
#: maps grow level after level, so the heap cannot reuse the smaller holes
WHOLE_CLIP_ACTIVATION_FACTOR = {"encode": 10, "decode": 16}
#: what the process holds besides weights and activations (interpreter, torch, codecs; ~0.4 GiB measured)
RUNTIME_BYTES = 512 * 2**20
def _default_budget() -> int:
    """Half the machine's physical memory, between 4 and 16 GiB: room for whole clips (the fastest
    form) on a workstation, and the rest of the machine left to the rest of the pipeline."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 8 * 2**30
    return int(min(16 * 2**30, max(4 * 2**30, physical // 2)))


#: budget when neither a chunk size nor ``--max-memory`` is given (:func:`_default_budget`)
DEFAULT_MAX_MEMORY = _default_budget()
#: a causal chunk never exceeds this many frames (beyond it, throughput no longer improves)
MAX_CHUNK_FRAMES = 64
#: non-causal windows may be longer: the longer the window, the smaller the overlap's share
MAX_WINDOW_FRAMES = 256

#: what ``torch.compile`` (Inductor) holds in the process while it compiles a step shape: measured
#: 0.31 GiB on the tiny recipe (a 600M-budget encode peaked at 654 MiB with ``--compile auto``,
#: 355 MiB without); reserved out of the budget whenever compiling may happen
COMPILE_BYTES = 768 * 2**20
#: a feature map narrower than this costs as if it were this wide: kernels' work buffers and
#: blocked layouts do not shrink with the channels. Measured on the tiny recipes (8 channels at full
#: resolution, CPU fp32, 128..384 px): 293 (encode) and 410 (decode) floats per pixel and frame at a
#: step's peak, against 13 x 8 = 104 estimated from the channels; 32 covers both. Models with 128
#: channels and more (every released one) are unaffected.
MIN_MAP_CHANNELS = 32
#: frames decoded from a file ahead of the model (the tokenize pipeline's read chunk)
READ_AHEAD_FRAMES = 8
#: pictures an H.264 encoder may hold while a decode streams frames into it (lookahead, B-frames, references)
X264_FRAMES = 64
#: causal state carried between steps, in largest per-frame feature maps of the whole frame (all
#: tiles together), per ``num_res_blocks ** 2``: measured 3.2 / 1.4 (tiny recipes, 1 block per
#: level, encode / decode) and 15.5 / 15.1 (the released 4x8x8 models, 2 blocks); 4 * blocks**2
#: covers both (an empirical fit, to be re-measured for deeper models)
STATE_MAPS = 4

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
    tokens = (height // model.spatial_factor) * (width // model.spatial_factor)
    attention = tokens * tokens * 4 / model.temporal_factor  # fp32 scores per latent frame
    return int(factor * largest_map(model, height, width, which) * itemsize + attention)


def largest_map(model: VideoTokenizer, height: int, width: int, which: Literal["encode", "decode"]) -> int:
    """Elements of the largest feature map per pixel-side frame (``height`` x ``width`` pixels)."""
    cfg = model.config
    largest = 0
    spatial, temporal = 1, 1
    levels = range(cfg.num_levels) if which == "encode" else reversed(range(cfg.num_levels))
    if which == "decode":  # the deepest level runs at latent size, one frame per tdf output frames
        spatial, temporal = model.spatial_factor, model.temporal_factor
    for i in levels:
        channels = max(MIN_MAP_CHANNELS, cfg.base_channels * cfg.channel_mult[i])
        in_channels = max(MIN_MAP_CHANNELS, cfg.base_channels * cfg.channel_mult[i - 1 if which == "encode" and i else i])
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
    return largest


def _causal(model: VideoTokenizer) -> bool:
    mode = getattr(model, "mode", None)
    return bool(getattr(mode, "causal", True))


def frame_bytes(
    model: VideoTokenizer, height: int, width: int, which: Literal["encode", "decode"], itemsize: int, *, tiled: bool,
) -> int:
    """Bytes a stream holds at whole-frame size whatever the tiles: frames read ahead (fp32 RGB),
    the causal state of every tile, and, when tiled, a step's whole input and blended output.

    ``height`` x ``width`` are pixel sizes.
    """
    pixels = 3 * height * width * 4
    tdf = model.temporal_factor
    # reader side: frames decoded ahead; writer side: a step's frames, and the H.264 encoder's
    # lookahead, B-frame and reference pictures (yuv420, up to ~64 with x264's medium preset)
    held = READ_AHEAD_FRAMES * pixels if which == "encode" else 2 * tdf * pixels + X264_FRAMES * height * width * 3 // 2
    blocks = max(1, int(getattr(model.config, "num_res_blocks", 2)))
    state = STATE_MAPS * blocks**2 * largest_map(model, height, width, which) * itemsize if _causal(model) else 0
    step = 0
    if tiled:  # the chunk (with its front padding) and its prepared copy; decode: output + blend sums
        step = 4 * tdf * pixels if which == "decode" else 2 * 2 * tdf * pixels
    return held + state + step


def split_compile_budget(max_memory: int | None, compile: str) -> tuple[int, str]:
    """``(bytes for the stream planner, compile mode)`` under a total budget of ``max_memory``.

    Compiling is charged :data:`COMPILE_BYTES`. Under a budget too tight to hold it next to the
    runtime with room to spare, ``"auto"`` does not compile (it would cost more memory than the
    model's steps); ``"on"`` keeps compiling on the rest of the budget (the planner may then refuse).
    """
    budget = max_memory or DEFAULT_MAX_MEMORY
    if compile == "off":
        return budget, compile
    if compile == "auto" and budget < RUNTIME_BYTES + 2 * COMPILE_BYTES:
        return budget, "off"
    return max(1, budget - COMPILE_BYTES), compile


def check_frame_budget(
    model: VideoTokenizer, height: int, width: int, *, max_memory: int | None, itemsize: int = 4,
    decode: bool = False, what: str = "frame",
) -> StreamPlan:
    """The encode plan for ``height`` x ``width`` pixel frames, or one :class:`InputError` line
    (prefixed by ``what``) when one frame cannot fit ``max_memory`` even tiled; ``decode`` checks the
    decoder's side too (reconstruct). Call it before reading a frame: it allocates nothing."""
    budget = max_memory or DEFAULT_MAX_MEMORY
    try:
        plan = plan_stream(model, height, width, "encode", max_memory=budget, itemsize=itemsize)
        if decode:
            sf = model.spatial_factor
            plan_stream(model, max(1, height // sf), max(1, width // sf), "decode", max_memory=budget, itemsize=itemsize)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    return plan


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
    px_h, px_w = (height, width) if which == "encode" else (height * sf, width * sf)
    fixed = RUNTIME_BYTES + weights + frame_bytes(model, px_h, px_w, which, itemsize, tiled=False)
    free = max_memory - fixed
    unit_frames = tdf  # frames produced or consumed per latent

    def cost(h: int, w: int, latents: int) -> int:
        return activation_bytes(model, h, w, which, itemsize, factor=factor) * latents * unit_frames

    if free > 0 and cost(px_h, px_w, 1) <= free:
        latents = max(1, min(free // cost(px_h, px_w, 1), max_frames // unit_frames or 1))
        return StreamPlan(
            chunk=int(latents) * (tdf if which == "encode" else 1),
            estimated_bytes=fixed + cost(px_h, px_w, int(latents)),
        )
    fixed = RUNTIME_BYTES + weights + frame_bytes(model, px_h, px_w, which, itemsize, tiled=True)
    free = max_memory - fixed
    if free <= 0:  # tiles cannot shrink what is held at whole-frame size
        raise InputError(
            f"{px_w}x{px_h} frames do not fit: max memory {max_memory / 2**30:.2f} GiB is too small, they need "
            f"{fixed / 2**30:.2f} GiB before any tile runs (runtime, weights, frame buffers and causal state); "
            "use a smaller --size or a larger --max-memory"
        )
    # one latent step of the whole frame does not fit: tile (side in pixels, a multiple of 2 * sf)
    overlap_px = 4 * sf
    side = max(px_h, px_w)
    while side > 2 * overlap_px and (free <= 0 or cost(min(side, px_h), min(side, px_w), 1) > free):
        side = (side * 3 // 4) // (2 * sf) * (2 * sf)
    if free <= 0 or cost(min(side, px_h), min(side, px_w), 1) > free:
        raise InputError(
            f"max memory {max_memory / 2**30:.2f} GiB is too small for this model "
            f"({fixed / 2**30:.2f} GiB runtime, weights and whole-frame buffers, and at least one {side}x{side} tile)"
        )
    scale = 1 if which == "encode" else sf
    return StreamPlan(
        chunk=tdf if which == "encode" else 1,
        tile=side // scale,
        tile_overlap=overlap_px // scale,
        estimated_bytes=fixed + cost(min(side, px_h), min(side, px_w), 1),
    )
