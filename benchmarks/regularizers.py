"""Codebook utilisation, perplexity and reconstruction of FSQ, VQ and LFQ on real video, on CPU.

VidTok (arXiv:2412.13061, §4.3, Table 3) finds that FSQ uses nearly all of its codebook while
plain VQ uses a small part of it. This script reproduces that finding qualitatively in CPU-seconds:
a tiny convolutional autoencoder (2x4x4 compression, 8x8x8 tokens per 16x32x32 clip) is trained
with Adam on L1 (summed per frame, as VidTok's loss) + the regularizer's loss on clips of the sample videos, once per regularizer, all
with 512-code codebooks; the codebook statistics (:class:`vidtok_kit.codebook.CodebookStats`) are
then gathered over every 16-frame clip of the videos.

The tiny autoencoder stands in for the VidTok model, which costs ~0.5 s per step on this kind of
machine; the regularizers are the registered components, built from recipe-style tables.

Usage::

    python benchmarks/regularizers.py                 # all variants, 300 steps each
    python benchmarks/regularizers.py --steps 150 fsq vq --json

``tests/regularizers/test_utilisation.py`` imports :func:`run` and asserts the ordering.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidtok_kit.codebook import CodebookStats
from vidtok_kit.interfaces import Regularizer
from vidtok_kit.io import read_video, sample_videos
from vidtok_kit.pluginmanager import default_registry
from vidtok_kit.recipe import make_converter

__all__ = ["VARIANTS", "TinyAutoencoder", "load_clips", "main", "run", "train_variant"]

#: name -> (regularizer kind, its recipe table, latent channels); every codebook has 512 codes
VARIANTS: dict[str, tuple[str, dict[str, Any], int]] = {
    "fsq": ("fsq", {"levels": [8, 8, 8]}, 3),
    "fsq+reg": ("fsq", {"levels": [8, 8, 8], "entropy_loss_weight": 0.1, "commitment_loss_weight": 0.25}, 3),
    "vq": ("vq", {"codebook_size": 512}, 3),
    "vq+reg": ("vq", {"codebook_size": 512, "entropy_loss_weight": 0.1}, 3),
    "vq+ema+restart": ("vq", {"codebook_size": 512, "ema_decay": 0.95, "dead_code_threshold": 0.5}, 3),
    "lfq": ("lfq", {"entropy_loss_weight": 0.0}, 9),
    "lfq+reg": ("lfq", {"entropy_loss_weight": 0.1}, 9),
}


class TinyAutoencoder(nn.Module):
    """Conv encoder / decoder around a regularizer: (B, 3, T, H, W) -> tokens at T/2 x H/4 x W/4."""

    regularizer: Regularizer

    def __init__(self, regularizer: Regularizer, z_channels: int, width: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv3d(3, width, kernel_size=(2, 4, 4), stride=(2, 4, 4)),
            nn.SiLU(),
            nn.Conv3d(width, width, kernel_size=3, padding=1),
            nn.SiLU(),
            nn.Conv3d(width, z_channels, kernel_size=1),
        )
        self.regularizer = regularizer
        self.decoder = nn.Sequential(
            nn.Conv3d(z_channels, width, kernel_size=1),
            nn.SiLU(),
            nn.Conv3d(width, width, kernel_size=3, padding=1),
            nn.SiLU(),
            nn.ConvTranspose3d(width, 3, kernel_size=(2, 4, 4), stride=(2, 4, 4)),
        )

    def forward(self, x: Tensor, step: int = 0) -> tuple[Tensor, Any]:
        reg = self.regularizer(self.encoder(x), step=step)
        return self.decoder(reg.latent), reg


def load_clips(size: int = 32, fps: float = 8.0) -> list[Tensor]:
    """Every sample video at ``fps``, shorter side resized to ``size`` and centre-cropped: (3, T, size, size) each."""
    return [read_video(path, fps=fps, size=size)[0] for path in sample_videos()]


def _windows(videos: list[Tensor], frames: int) -> Tensor:
    """All non-overlapping ``frames``-long clips of every video: (N, 3, frames, H, W)."""
    clips = [v[:, s : s + frames] for v in videos for s in range(0, v.shape[1] - frames + 1, frames)]
    return torch.stack(clips)


def _random_batch(videos: list[Tensor], frames: int, batch: int, gen: torch.Generator) -> Tensor:
    out = []
    for _ in range(batch):
        v = videos[int(torch.randint(len(videos), (1,), generator=gen))]
        start = int(torch.randint(v.shape[1] - frames + 1, (1,), generator=gen))
        clip = v[:, start : start + frames]
        if torch.rand((), generator=gen) < 0.5:
            clip = clip.flip(-1)
        out.append(clip)
    return torch.stack(out)


def _frame_sum_l1(recon: Tensor, x: Tensor) -> Tensor:
    """VidTok's reconstruction scale: |x - x'| summed over C, H, W and averaged over frames.

    The regularizers' weights (entropy 0.1, commitment 0.25, ...) were tuned against this sum, not
    a per-pixel mean, which would make them ~3000x stronger at 32x32.
    """
    return (recon - x).abs().sum(dim=(1, 3, 4)).mean()


def build_regularizer(kind: str, table: dict[str, Any], z_channels: int) -> Regularizer:
    """A registered regularizer from a recipe-style table (validated like a recipe's)."""
    registry = default_registry()
    cls = registry.get("regularizer", kind)
    return cls(make_converter(registry).structure(table, cls.Config), z_channels=z_channels)


def train_variant(
    name: str, videos: list[Tensor], *, steps: int = 300, batch: int = 4, frames: int = 16, lr: float = 2e-3, seed: int = 0
) -> dict[str, float]:
    """Train one variant of :data:`VARIANTS` and return its evaluation statistics."""
    kind, table, z_channels = VARIANTS[name]
    torch.manual_seed(seed)
    model = TinyAutoencoder(build_regularizer(kind, table, z_channels), z_channels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        x = _random_batch(videos, frames, batch, gen)
        recon, reg = model(x, step=step)
        loss = _frame_sum_l1(recon, x) + reg.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    stats = CodebookStats(model.regularizer.codebook_size)
    l1 = []
    with torch.no_grad():
        for clip in _windows(videos, frames).split(batch):
            recon, reg = model(clip)
            stats.update(reg.indices)
            l1.append(F.l1_loss(recon, clip, reduction="none").mean(dim=(1, 2, 3, 4)))
    return {**stats.summary(), "recon_l1": float(torch.cat(l1).mean()), "train_seconds": seconds}


def run(names: list[str] | None = None, *, steps: int = 300, seed: int = 0, videos: list[Tensor] | None = None) -> dict[str, dict[str, float]]:
    """Train and evaluate each named variant (default: all) on the sample videos."""
    videos = videos if videos is not None else load_clips()
    return {name: train_variant(name, videos, steps=steps, seed=seed) for name in (names or list(VARIANTS))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"any of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for tiny convs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    results = run(args.variants or None, steps=args.steps, seed=args.seed)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'variant':16s} {'codes':>6s} {'used':>6s} {'U.R.':>7s} {'perplexity':>10s} {'recon L1':>9s} {'train s':>8s}")
    for name, r in results.items():
        print(
            f"{name:16s} {int(r['codebook_size']):6d} {int(r['used']):6d} {r['utilisation']:7.1%} "
            f"{r['perplexity']:10.1f} {r['recon_l1']:9.4f} {r['train_seconds']:8.1f}"
        )


if __name__ == "__main__":
    main()
