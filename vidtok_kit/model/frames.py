"""Frame-count arithmetic of the three VidTok time conventions, as pure functions of integers.

Causal models treat the first frame on its own (latent 0 is image-like) and take ``1 + k * tdf``
frames shape-preservingly; the input is padded in front with copies of frame 0 to a multiple of the
time factor ``tdf``. v1.0 pads ``tdf - 1`` frames and so needs ``T = 1 + k * tdf``; v1.1 pads
``tdf - T % tdf`` and takes any ``T``; non-causal models need ``T`` to be a multiple of ``tdf``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidtok_kit.errors import InputError
from vidtok_kit.model.layers import TimeMode

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "V11_MIN_FIRST_LATENTS",
    "allowed_frames",
    "first_step_latents",
    "frames_to_keep",
    "front_padding",
    "latent_frames",
    "output_frames",
    "repeat_edges",
    "valid_frames",
]

#: A v1.1 decoder's first step (unless it is also the last) needs this many latents, so that
#: every time upsampler has frames after latent 0's and holds exactly two frames afterwards.
V11_MIN_FIRST_LATENTS = 3


def front_padding(frames: int, *, tdf: int, mode: TimeMode) -> int:
    """Copies of frame 0 prepended to a clip of ``frames`` frames before encoding.

    Branch-free in ``frames`` (v1.0 clips are ``1 + k * tdf`` long, so they always take
    ``tdf - 1``), so an exporter tracing a symbolic frame count gets one graph for every length.
    """
    if not mode.causal:
        return 0
    if mode is TimeMode.CAUSAL_V1_0:
        return tdf - 1
    return (tdf - frames % tdf) % tdf


def valid_frames(frames: int, *, tdf: int, mode: TimeMode) -> bool:
    if frames < 1:
        return False
    if mode is TimeMode.CAUSAL_V1_0:
        return frames % tdf == 1 % tdf
    if mode is TimeMode.CAUSAL_V1_1:
        return True
    return frames % tdf == 0


def allowed_frames(*, tdf: int, mode: TimeMode) -> str:
    """Human-readable rule, for error messages."""
    if mode is TimeMode.CAUSAL_V1_0:
        return f"1 + {tdf}k frames (1, {1 + tdf}, {1 + 2 * tdf}, ...)"
    if mode is TimeMode.CAUSAL_V1_1:
        return "any number of frames >= 1"
    return f"a positive multiple of {tdf} frames"


def latent_frames(frames: int, *, tdf: int, mode: TimeMode) -> int:
    """Latent frames for an input of ``frames`` frames (assumed valid)."""
    return (frames + front_padding(frames, tdf=tdf, mode=mode)) // tdf


def output_frames(latents: int, *, tdf: int, mode: TimeMode) -> int:
    """Frames :meth:`VideoTokenizer.decode` returns for ``latents`` latent frames by default."""
    if mode.causal:
        return tdf * (latents - 1) + 1
    return tdf * latents


def frames_to_keep(decoded: int, latents: int, num_frames: int | None, *, default: int) -> int:
    """How many trailing frames of ``decoded`` decoded frames to return: ``num_frames``, or ``default``.

    :raises InputError: ``num_frames`` outside 1..``decoded``.
    """
    keep = default if num_frames is None else num_frames
    if not 1 <= keep <= decoded:
        raise InputError(f"num_frames must be in 1..{decoded} for {latents} latent frames, got {keep}")
    return keep


def first_step_latents(mode: TimeMode, chunk: int) -> int:
    """Latents the first decode step takes when later steps take ``chunk``: at least
    :data:`V11_MIN_FIRST_LATENTS` for v1.1, so every time upsampler can hold frames back."""
    return max(chunk, V11_MIN_FIRST_LATENTS) if mode is TimeMode.CAUSAL_V1_1 else chunk


def repeat_edges(x: Tensor, *, front: int = 0, back: int = 0) -> Tensor:
    """``x`` (B, C, T, ...) with ``front`` copies of frame 0 before it and ``back`` copies of its last frame after.

    The one way frames are padded (front padding of the causal conventions, tail padding of a
    stream's short last chunk), for the model, the streaming driver and the export graphs alike:
    a gather with clamped indices, so a traced symbolic ``front`` still gives one graph.
    """
    import torch

    if isinstance(front, int) and isinstance(back, int) and front == 0 and back == 0:
        return x
    t = x.shape[2]
    index = (torch.arange(t + front + back, device=x.device) - front).clamp(0, t - 1)
    return x.index_select(2, index)
