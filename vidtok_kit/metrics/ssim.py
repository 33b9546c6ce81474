"""Per-frame SSIM with the settings of the VidTok / taming evaluation.

SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 2004. Settings follow VidTok's ``scripts/inference_evaluate.py``
(see ``shared/spec/vidtok-reference.md`` section 5, Evaluation): an 11x11 Gaussian window with
sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``, data range 1, 'valid' filtering (no padding, so border
pixels are never averaged with zeros), and Wang's automatic downsampling: the frame is first
average-pooled by ``f = max(1, round(min(H, W) / 256))`` so that large frames are judged at
roughly the viewing scale SSIM was calibrated for. Statistics use population (not sample)
covariance, as in Wang's MATLAB code and pytorch-msssim; skimage's default ``N / (N - 1)``
correction is deliberately not applied. The per-frame score is the mean of the SSIM map over
channels and pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.metrics.psnr import _as_float, _check_video_pair

__all__ = ["ssim_downsample_factor", "ssim_per_frame"]

WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03
DATA_RANGE = 1.0


def ssim_downsample_factor(height: int, width: int) -> int:
    """Wang's automatic downsampling factor for a frame of this size.

    Python's ``round`` (half to even) is kept on purpose: the reference uses it, so a
    384-pixel side gives 2 and a 640-pixel side also gives 2.

    :param height: frame height in pixels
    :param width: frame width in pixels
    :return: the average-pooling factor ``max(1, round(min(height, width) / 256))``
    """
    return max(1, round(min(height, width) / 256))


def _gaussian_1d(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian; its outer product with itself is the 2-D SSIM window."""
    coords = torch.arange(size, dtype=torch.float64) - (size // 2)
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _filter_valid(img: Tensor, g: Tensor) -> Tensor:
    """Depthwise 'valid' Gaussian filter of ``(N, C, H, W)``, separable: rows then columns."""
    c = img.shape[1]
    k = g.numel()
    out = F.conv2d(img, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(out, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_per_frame(x: Tensor, y: Tensor) -> Tensor:
    """SSIM of every frame for videos with values in [0, 1].

    :param x: reference video ``(B, C, T, H, W)`` in [0, 1]
    :param y: reconstruction of the same shape in [0, 1]
    :return: ``(B, T)`` tensor; 1 for identical frames
    :raises InputError: if the shapes differ or a frame, after downsampling, is smaller than the
        11x11 window ('valid' filtering would leave no pixels)
    """
    _check_video_pair(x, y)
    b, _, _, h, w = x.shape
    x, y = _as_float(x), _as_float(y)
    # contiguous: the permuted view sends conv2d down a ~100x slower strided path on CPU
    img1 = rearrange(x, "b c t h w -> (b t) c h w").contiguous()
    img2 = rearrange(y, "b c t h w -> (b t) c h w").contiguous()

    f = ssim_downsample_factor(h, w)
    if f > 1:
        img1 = F.avg_pool2d(img1, kernel_size=f)
        img2 = F.avg_pool2d(img2, kernel_size=f)
    if min(img1.shape[-2:]) < WINDOW_SIZE:
        raise InputError(
            f"SSIM needs frames of at least {WINDOW_SIZE}x{WINDOW_SIZE} after {f}x downsampling, "
            f"got {h}x{w} -> {tuple(img1.shape[-2:])}"
        )

    g = _gaussian_1d(WINDOW_SIZE, SIGMA, dtype=img1.dtype, device=img1.device)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2

    mu1 = _filter_valid(img1, g)
    mu2 = _filter_valid(img2, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(img1 * img1, g) - mu1_sq
    sigma2_sq = _filter_valid(img2 * img2, g) - mu2_sq
    sigma12 = _filter_valid(img1 * img2, g) - mu12

    ssim_map = ((2 * mu12 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    per_frame = ssim_map.mean(dim=(1, 2, 3))
    return rearrange(per_frame, "(b t) -> b t", b=b)
