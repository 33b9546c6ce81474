"""Evaluation metrics: PSNR and SSIM as VidTok reports them, and FVD with a local-only I3D.

PSNR/SSIM reproduce ``scripts/inference_evaluate.py`` of the original VidTok (spec section 5,
Evaluation) and return per-frame values ``(B, T)`` so callers decide how to weight clips. FVD is
not in the original repository; it follows Unterthiner et al. with the 400-d Kinetics I3D logits.
Nothing here downloads weights: :func:`load_i3d` reads a local file.
"""

from __future__ import annotations

from vidtok_kit.metrics.frechet import frechet_distance, gaussian_stats
from vidtok_kit.metrics.fvd import FVDAccumulator, fvd_from_features
from vidtok_kit.metrics.i3d import (
    I3D_WEIGHTS_ENV,
    I3DFeatureExtractor,
    InceptionI3d,
    load_i3d,
    preprocess_for_i3d,
)
from vidtok_kit.metrics.psnr import psnr_per_frame
from vidtok_kit.metrics.ssim import ssim_downsample_factor, ssim_per_frame

__all__ = [
    "FVDAccumulator",
    "I3D_WEIGHTS_ENV",
    "I3DFeatureExtractor",
    "InceptionI3d",
    "frechet_distance",
    "fvd_from_features",
    "gaussian_stats",
    "load_i3d",
    "preprocess_for_i3d",
    "psnr_per_frame",
    "ssim_downsample_factor",
    "ssim_per_frame",
]
