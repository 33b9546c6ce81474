"""Exact algebraic shortcuts in the layers, and a switch back to the original arithmetic.

Some layers compute the same function as the original VidTok code with fewer operations: the
spatial upsampler as four 2x2 convolutions of the small image (:mod:`vidtok_kit.model.subpixel`),
the AlphaBlender time upsampler from 2-D convolutions of the low-rate frames (inference only).
Results agree to float rounding, but the multiply-accumulate count differs from the paper's, so
counting (``vidtok-kit profile``) and checks against the original code's arithmetic run inside
:func:`original_arithmetic`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["original_arithmetic", "shortcuts_enabled"]

_original = False


def shortcuts_enabled() -> bool:
    """False inside :func:`original_arithmetic`."""
    return not _original


@contextlib.contextmanager
def original_arithmetic() -> Iterator[None]:
    """Compute every layer the way the original code does (for counting MACs as the paper does)."""
    global _original
    previous, _original = _original, True
    try:
        yield
    finally:
        _original = previous
