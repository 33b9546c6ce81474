"""What a run writes for people: metrics JSONL, TensorBoard events, a loss plot and previews.

Only rank 0 reports. ``metrics.jsonl`` gets one JSON object per logged step (append-only, flushed
each line); a resumed run first drops the lines after the step it resumes from, so the file
always describes one consistent history. TensorBoard is optional: without the ``tensorboard``
package the events are simply not written. The loss plot (matplotlib, Agg) and the previews
(a PNG grid of input/reconstruction frames and a side-by-side mp4) are rewritten atomically.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidtok_kit.io.outputs import atomic_write

__all__ = ["MetricsLog", "plot_losses", "write_preview_grid", "write_side_by_side"]

log = logging.getLogger("vidtok_kit.train")

#: positive losses drawn on a log scale in loss.png's left panel (when present); the NLL and the
#: total are not: with a learned log-variance they go negative and say little by themselves
LOSS_KEYS = ("loss/rec", "loss/perceptual", "loss/gen", "loss/disc")
#: the right panel: validation PSNR, else the total loss
VAL_KEY, TOTAL_KEY = "val/psnr", "loss/total"


class MetricsLog:
    """``metrics.jsonl`` (+ TensorBoard when installed) of one run directory."""

    def __init__(self, run_dir: str | Path, *, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.records: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if rec.get("step", 0) <= resume_step:
                    self.records.append(rec)
        text = "".join(json.dumps(r) + "\n" for r in self.records)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed: no event files (metrics.jsonl has everything)")
            else:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=resume_step)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        rec = {"step": step, **{k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in values.items()}}
        self.records.append(rec)
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def plot_losses(records: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Loss curves (left) and validation PSNR (right) against the step, as a PNG; None if nothing to draw."""

    def series(key: str) -> list[tuple[int, float]]:
        return [(r["step"], r[key]) for r in records if isinstance(r.get(key), float)]

    losses = {k: pts for k in LOSS_KEYS if (pts := series(k)) and all(v > 0 for _, v in pts)}
    right_key = VAL_KEY if series(VAL_KEY) else TOTAL_KEY
    right = series(right_key)
    if not (losses or right) or not _have_matplotlib():
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, pts in losses.items():
        ax1.plot(*zip(*pts), label=key)
    ax1.set(xlabel="step", ylabel="training loss", yscale="log" if losses else "linear", title="training losses")
    if losses:
        ax1.legend()
    if right:
        ax2.plot(*zip(*right), "k.-")
    label = "validation PSNR (dB)" if right_key == VAL_KEY else right_key
    ax2.set(xlabel="step", ylabel=label, title=label)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def _have_matplotlib() -> bool:
    """matplotlib is optional (the ``plots`` extra): without it plots and PNGs are skipped, once noted."""
    try:
        import matplotlib
    except ImportError:
        if not _NOTED:
            log.info("matplotlib is not installed: no loss plot or PNG previews (pip install vidtok-kit[plots])")
            _NOTED.append(True)
        return False
    matplotlib.use("Agg")  # files only, never a window
    return True


_NOTED: list[bool] = []


def _to_uint8(video: Tensor) -> Tensor:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    return ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)


def write_preview_grid(video: Tensor, recon: Tensor, path: str | Path, *, max_frames: int = 9) -> Path | None:
    """PNG: input frames on the top row, reconstructions below (at most ``max_frames`` columns);
    None without matplotlib."""
    if not _have_matplotlib():
        return None
    import matplotlib.image

    t = video.shape[1]
    idx = torch.linspace(0, t - 1, min(t, max_frames)).round().long()
    top = torch.cat(list(_to_uint8(video)[idx]), dim=1)
    bottom = torch.cat(list(_to_uint8(recon)[idx]), dim=1)
    grid = torch.cat([top, bottom], dim=0).numpy()
    path = Path(path)
    atomic_write(path, lambda tmp: matplotlib.image.imsave(tmp, grid, format="png"))
    return path


def write_side_by_side(video: Tensor, recon: Tensor, path: str | Path, *, fps: float) -> Path:
    """mp4 with the input on the left and the reconstruction on the right (atomic, via PyAV)."""
    from vidtok_kit.io import write_video

    both = torch.cat([video.detach().float().cpu(), recon.detach().float().cpu().clamp(-1, 1)], dim=-1)
    return write_video(path, both, fps=fps)
