"""Exact algebraic shortcuts in the layers, switched on by the inference fast path.

Some layers can compute the same function as the original VidTok code with fewer operations or a
faster memory layout: the spatial upsampler as four 2x2 convolutions of the small image
(:mod:`vidtok_kit.model.subpixel`), the AlphaBlender time upsampler from 2-D convolutions of the
low-rate frames, a per-pixel time convolution of a channels-last clip as one dilated 2-D conv.
Results agree with the original arithmetic to float rounding (~1e-6), not bit for bit, so they
are used only inside :func:`fast_arithmetic` (which :class:`vidtok_kit.fast.FastTokenizer`
enters): training, streaming, export, ``vidtok-kit profile`` (the paper's MAC counts) and plain
``model.encode`` / ``decode`` keep the original arithmetic, and streamed chunks keep matching
whole-clip runs to 1e-5.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["fast_arithmetic", "keep_channels_last", "shortcuts_enabled"]

_enabled = False


def shortcuts_enabled() -> bool:
    """True inside :func:`fast_arithmetic`."""
    return _enabled


@contextlib.contextmanager
def fast_arithmetic(enabled: bool = True) -> Iterator[None]:
    """Let the layers use their shortcuts (``enabled=False``: force the original arithmetic)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def keep_channels_last(out: Tensor, like: Tensor) -> Tensor:
    """``out`` in channels-last memory when ``like`` (the layer's input) is, inside :func:`fast_arithmetic`.

    oneDNN's 3-D convolution returns a channels-first output for some channels-last inputs (few
    input channels, small frames), and one channels-first tensor turns the whole residual stream
    channels-first (an add takes its first operand's layout): every later 2-D conv then reads
    per-frame NCHW images and every norm makes a layout copy. A no-op where the layout already holds.
    """
    last = torch.channels_last_3d
    if _enabled and out.ndim == 5 and like.is_contiguous(memory_format=last) and not out.is_contiguous(memory_format=last):
        return out.contiguous(memory_format=last)
    return out
