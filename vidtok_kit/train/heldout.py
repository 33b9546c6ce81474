"""Scoring a tokenizer on a held-out clip, against a resampling baseline of equal size.

Used by ``vidtok-kit demo`` and ``benchmarks/train_demo.py``. The baseline answers "is the
tokenizer better than throwing pixels away?": it keeps at least as many numbers as the latent
(subsample time by the model's temporal factor the way a causal model groups frames: frame 0,
then every ``tdf``-th; area-downsample space so that 3 colour channels hold ``>=`` the latent's
``z`` channels worth of values), then upsamples back (bilinear in space, linear in time).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vidtok_kit.errors import InputError

__all__ = ["compare_on_heldout", "evaluate_clips", "heldout_clips", "reconstruct", "resampling_baseline", "score"]


def heldout_clips(recipe: Any, *, multiple: int) -> tuple[Path, list[Tensor]]:
    """Every consecutive ``train.num_frames`` clip of the first validation video (the recipe's
    held-out data; last clip padded), at ``val_sample_fps`` and ``train.resolution``."""
    from vidtok_kit.evaluation.inputs import iter_eval_clips
    from vidtok_kit.train.data import split_videos

    _, val = split_videos(recipe.data)
    if not val:
        raise InputError("the recipe has no validation video to hold out (data.val = 'none' or data.val_holdout = 0)")
    t, fps, size = recipe.train.num_frames, recipe.data.val_sample_fps, recipe.train.resolution
    return val[0], [c.video for c in iter_eval_clips(val[0], frames=t, fps=fps, size=size, multiple=multiple)]


def evaluate_clips(clips: list[Tensor], method: Any) -> tuple[dict[str, float], Tensor]:
    """Score ``method`` (clip -> reconstruction) on every clip, frame-weighted as ``vidtok-kit eval``.

    :return: mean PSNR/SSIM over clips, and the reconstructions concatenated in time (3, T, H, W).
    """
    scores: dict[str, float] = {}
    recons = []
    for clip in clips:
        recon = method(clip)
        recons.append(recon)
        for k, v in score(clip, recon).items():
            scores[k] = scores.get(k, 0.0) + v / len(clips)
    return scores, torch.cat(recons, dim=1)


@torch.no_grad()
def reconstruct(model: Any, video: Tensor) -> Tensor:
    """(3, T, H, W) -> deterministic reconstruction (posterior mean), clamped to [-1, 1]."""
    model.eval()
    return model(video[None].float()).recon[0].clamp(-1.0, 1.0)


def resampling_baseline(video: Tensor, *, temporal_factor: int, spatial_factor: int, latent_channels: int) -> tuple[Tensor, int]:
    """Downsample (3, T, H, W) to at least a latent's worth of numbers and upsample back.

    :return: (reconstruction in [-1, 1], numbers kept).
    """
    c, t, h, w = video.shape
    kept = video[:, ::temporal_factor]  # frames 0, tdf, 2 tdf, ...: a causal latent's anchors
    lh, lw = h // spatial_factor, w // spatial_factor
    # the fewest pixels whose c channels hold >= latent_channels * lh * lw numbers (more pixels than
    # the latent grid when the latent has more than 3 channels)
    need = latent_channels * lh * lw
    sh = min(h, max(1, round(lh * math.sqrt(latent_channels / c))))
    sw = min(w, -(-need // (c * sh)))
    frames = kept.transpose(0, 1)  # (T', C, H, W)
    small = F.interpolate(frames, size=(sh, sw), mode="area")
    up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)  # (T', C, H, W)
    n = up.shape[0]
    if n == 1:
        out = up.expand(t, -1, -1, -1)
    else:
        # linear in time between anchors at frame positions 0, tdf, ...; frames past the last
        # anchor repeat it
        pos = torch.arange(t, dtype=torch.float32) / temporal_factor
        lo = pos.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        a = (pos - lo.float()).clamp(0, 1).view(t, 1, 1, 1)
        out = up[lo] * (1 - a) + up[hi] * a
    return out.transpose(0, 1).clamp(-1.0, 1.0), c * n * sh * sw


def score(video: Tensor, recon: Tensor) -> dict[str, float]:
    """Mean per-frame PSNR (dB) and SSIM of (3, T, H, W) clips in [-1, 1], as ``vidtok-kit eval``."""
    from vidtok_kit.metrics import psnr_per_frame, ssim_per_frame

    x, y = (video[None].float() + 1) / 2, (recon[None].float() + 1) / 2
    out = {"psnr": float(psnr_per_frame(x, y).mean())}
    if min(x.shape[-2:]) >= 11:
        out["ssim"] = float(ssim_per_frame(x, y).mean())
    return out


def compare_on_heldout(recipe: Any, model: Any) -> dict[str, Any]:
    """``model`` and the equal-size resampling baseline on every held-out clip of ``recipe``.

    :return: ``video`` (path), ``clips``, ``frames``, ``tokenizer`` / ``resampling_baseline``
        scores, ``latent_numbers`` / ``baseline_numbers`` per clip, and the tensors ``input``,
        ``recon``, ``baseline`` (whole held-out video, (3, T, H, W)) for writing previews.
    """
    model = model.eval()
    path, clips = heldout_clips(recipe, multiple=model.spatial_factor)
    factors = {"temporal_factor": model.temporal_factor, "spatial_factor": model.spatial_factor,
               "latent_channels": model.config.z_channels}
    ours, recon = evaluate_clips(clips, lambda clip: reconstruct(model, clip))
    base, baseline = evaluate_clips(clips, lambda clip: resampling_baseline(clip, **factors)[0])
    with torch.no_grad():
        latent = model.encode(clips[0][None].float()).latent.numel()
    return {
        "video": str(path), "clips": len(clips), "frames": clips[0].shape[1], "size": clips[0].shape[-1],
        "tokenizer": ours, "resampling_baseline": base,
        "latent_numbers": int(latent), "baseline_numbers": resampling_baseline(clips[0], **factors)[1],
        "input": torch.cat(clips, dim=1), "recon": recon, "baseline": baseline,
    }
