"""Per-frame PSNR exactly as VidTok's ``scripts/inference_evaluate.py`` reports it.

The reference flattens ``(B, C, T, H, W)`` videos into frames, takes the per-frame MSE over
``(C, H, W)`` and reports ``-10 * log10(MSE + 1e-8)`` (data range 1, so no peak term), averaged
over frames. Returning the per-frame values instead of the mean lets callers weight clips by
their frame count, which is how the reference's running mean over 16/17-frame clips behaves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidtok_kit.errors import InputError

__all__ = ["psnr_per_frame"]

#: the reference adds this to the MSE so identical frames give 80 dB instead of +inf
PSNR_EPS = 1e-8


def _check_video_pair(x: Tensor, y: Tensor) -> None:
    """Raise a one-line :class:`InputError` unless ``x`` and ``y`` are equal-shaped 5-D videos."""
    if x.ndim != 5 or x.shape != y.shape:
        raise InputError(
            f"expected two videos of the same shape (B, C, T, H, W), got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def _as_float(x: Tensor) -> Tensor:
    """Half/bfloat16 inputs are upcast: a sum of squares over a 256x256 frame overflows fp16."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def psnr_per_frame(x: Tensor, y: Tensor) -> Tensor:
    """PSNR of every frame, in dB, for videos with values in [0, 1].

    :param x: reference video ``(B, C, T, H, W)`` in [0, 1]
    :param y: reconstruction of the same shape in [0, 1] (clamp it first, as the reference does)
    :return: ``(B, T)`` tensor of ``-10 * log10(mean((x - y) ** 2 over C, H, W) + 1e-8)``
    """
    _check_video_pair(x, y)
    x, y = _as_float(x), _as_float(y)
    mse = (x - y).pow(2).mean(dim=(1, 3, 4))  # (B, T): reduce channels and pixels, keep frames
    return -10.0 * torch.log10(mse + PSNR_EPS)
