"""Nearest-neighbour x2 upsampling followed by a 3x3 convolution, computed on the small image.

VidTok's spatial upsampler repeats every pixel 2x2 and then runs a 3x3 convolution (padding 1) on
the big image. Each output pixel ``(2i + a, 2j + b)`` then sees only a 2x2 neighbourhood of the
*small* image, with the 3x3 taps that land on the same small pixel summed together. So the same
numbers come from four 2x2 convolutions ("phases") on the small image and an interleave: 16
multiply-accumulates per output pixel and channel pair instead of 36 (2.25x fewer), and the 4x
larger nearest-upsampled copy is never built. Results equal the direct computation up to float
rounding (the folded taps are summed in fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidtok_kit.model.shortcuts import exporting_graph

__all__ = ["fold_nearest_up_kernel", "nearest_up_conv2d"]

# _ROWS[a][p, i]: which 3x3 tap rows i land on small-image row offset p (p = 0: the row above
# for a = 0, the same row for a = 1) in output phase a.
_ROWS = ((( 1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))  # fmt: skip


_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def fold_nearest_up_kernel(weight: Tensor) -> Tensor:
    """(C_out, C_in, 3, 3) -> (4 * C_out, C_in, 2, 2): the four phase kernels, phase-major (a, b).

    Folded in fp32 and cast back, so bf16 weights lose no more than one rounding.
    """
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"expected a 3x3 kernel, got {tuple(weight.shape)}")
    rows = torch.tensor(_ROWS, dtype=torch.float32, device=weight.device)  # (2, 2, 3)
    folded = torch.einsum("api,bqj,ocij->abocpq", rows, rows, weight.float())
    return folded.reshape(4 * weight.shape[0], *weight.shape[1:2], 2, 2).to(weight.dtype)


def nearest_up_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, *, functional: bool | None = None) -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`` for 3x3 ``weight``.

    (N, C_in, H, W) -> (N, C_out, 2H, 2W), in ``x``'s memory format (eager).

    :param functional: interleave the phases by stacking (for compilers and exporters) instead of
        writing them into a buffer; None decides by whether a graph is being compiled or exported.
    """
    n, _, h, w = x.shape
    c_out = weight.shape[0]
    phase_bias = None if bias is None else bias.repeat(4)
    # a 2x2 kernel with padding 1 gives (H + 1) x (W + 1) positions; phase (a, b) reads the
    # window starting at small row i - 1 + a, i.e. positions a .. a + H - 1
    phases = F.conv2d(x, fold_nearest_up_kernel(weight), phase_bias, padding=1)
    windows = [phases[:, k * c_out : (k + 1) * c_out, a : a + h, b : b + w] for k, (a, b) in enumerate(_PHASES)]
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if functional is None:
        functional = torch.compiler.is_compiling() or exporting_graph()
    if functional:
        # functional interleave: a compiler fuses it into one kernel, while writes into slices of
        # a buffer would become whole-buffer scatters after functionalization (and exporters
        # would write them as scatter operators). Asking for x's memory format lets the compiler
        # write the interleave channels-last, as the next layers read it (no layout copy there).
        rows = [torch.stack(windows[2 * a : 2 * a + 2], dim=-1) for a in (0, 1)]  # (N, C, H, W, 2) each
        return torch.stack(rows, dim=3).reshape(n, c_out, 2 * h, 2 * w).contiguous(memory_format=fmt)
    out = torch.empty((n, c_out, 2 * h, 2 * w), dtype=phases.dtype, device=x.device, memory_format=fmt)
    grid = out.unflatten(3, (w, 2)).unflatten(2, (h, 2))  # (N, C, H, 2, W, 2) view: phase-wise writes
    for window, (a, b) in zip(windows, _PHASES):
        grid[:, :, :, a, :, b] = window
    return out
