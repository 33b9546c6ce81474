"""Reconstruction metrics of a tokenizer over a set of videos, computed as VidTok's evaluation does.

Per clip: encode + decode, clamp the output to [-1, 1], map both videos to [0, 1], then per frame
PSNR and SSIM (:mod:`vidtok_kit.metrics`, bit-faithful to the reference) and, when a perceptual
network is given, LPIPS on [-1, 1]. Dataset numbers are means over *frames* (the reference averages
per-clip means of equal-length clips, which is the same thing). FVD (not in the reference) fits one
Gaussian to the I3D features of the real clips and one to the reconstructions. Discrete models also
report codebook utilisation and perplexity over every token of the set.

A video that cannot be read is recorded as skipped with its one-line reason; what it had already
contributed is dropped, so the totals only ever contain whole videos.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor

from vidtok_kit.codebook import CodebookStats
from vidtok_kit.errors import InputError
from vidtok_kit.evaluation.inputs import Clip, iter_eval_clips
from vidtok_kit.io import VideoError
from vidtok_kit.metrics import FVDAccumulator, fvd_from_features, psnr_per_frame, ssim_per_frame
from vidtok_kit.model import frames as frame_rules

__all__ = ["EvalOptions", "Evaluator", "VideoResult", "VideoScore", "default_clip_frames"]


def _positive_or_none(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"{attribute.name} must be a positive number or None, got {value!r}")


@attrs.frozen(kw_only=True)
class EvalOptions:
    """The protocol's knobs; the defaults are the paper's (30 fps, 256x256, 17/16-frame clips)."""

    #: sample rate: frames are taken every round(source_fps / fps) source frames (None: all)
    fps: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    #: shorter side resized to this, then centre-cropped square (None: native size, cropped to the spatial factor)
    size: int | None = attrs.field(default=256, validator=_positive_or_none)
    #: frames per clip (None: 17 for causal models, 16 for non-causal ones)
    frames: int | None = attrs.field(default=None, validator=_positive_or_none)
    #: whole videos: streamed when evaluated by ``run_eval``; padding frames are never scored
    long: bool = False
    #: draw the KL posterior sample (seeded) as the reference does, instead of the mean
    sample: bool = False
    #: seed set before evaluating (the reference seeds 42)
    seed: int = 42
    #: network precision when ``run_eval`` loads the model: ``fp32``, ``bf16`` or ``fp16``
    precision: str = "fp32"
    #: ``torch.compile`` when ``run_eval`` loads the model: ``auto``, ``on``, ``off`` (None: the default)
    compile: str | None = None


def default_clip_frames(model: Any) -> int:
    """The paper's clip length: 17 frames for causal models, 16 for non-causal ones."""
    return 17 if model.mode.causal else 16


@attrs.define(kw_only=True)
class VideoResult:
    """One row of the per-video table. Metrics are frame means; None when not computed."""

    path: str
    status: str = "ok"
    error: str = ""
    #: sampled frames of the video (without clip padding)
    frames: int = 0
    clips: int = 0
    #: frames the metrics are averaged over (including the reference's padding unless ``long``)
    scored_frames: int = 0
    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    seconds: float = 0.0


class VideoScore:
    """Everything one video adds to the totals, kept apart until the video completes.

    Metrics are frame-weighted sums; FVD features and codebook counts are per video, so a file that
    fails half-way (a truncated stream) leaves the dataset totals untouched.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self._evaluator = evaluator
        self.frames = 0
        self.psnr = 0.0
        self.ssim = 0.0
        self.lpips = 0.0
        self.lpips_frames = 0
        self.clips = 0
        self.real_frames = 0
        extractor = evaluator.fvd_extractor
        self.fvd = FVDAccumulator(extractor) if extractor is not None else None
        size = evaluator.codebook_size
        self.codebook = CodebookStats(size) if size is not None else None

    def add_frames(self, video: Tensor, recon: Tensor, *, scored: int | None = None) -> None:
        """Score the first ``scored`` frames (default all) of ``(1, 3, T, H, W)`` videos in [-1, 1]."""
        metrics = self._evaluator.frame_metrics(video, recon)
        n = video.shape[2] if scored is None else scored
        self.frames += n
        self.psnr += float(metrics["psnr"][:n].double().sum())
        self.ssim += float(metrics["ssim"][:n].double().sum())
        if "lpips" in metrics:
            self.lpips += float(metrics["lpips"][:n].double().sum())
            self.lpips_frames += n

    def add_clip_features(self, video: Tensor, recon: Tensor) -> None:
        """One clip (real, reconstructed; [-1, 1]) for FVD."""
        if self.fvd is not None:
            self.fvd.update_real((video + 1) / 2)
            self.fvd.update_fake((recon + 1) / 2)

    def add_tokens(self, indices: Tensor | None) -> None:
        if self.codebook is not None and indices is not None:
            self.codebook.update(indices)

    def mean(self, name: str) -> float | None:
        n = self.lpips_frames if name == "lpips" else self.frames
        return getattr(self, name) / n if n else None


class Evaluator:
    """Evaluates one model over many videos; call :meth:`evaluate_video` per file, then :meth:`summary`.

    :param model: a :class:`~vidtok_kit.interfaces.Tokenizer` (from :func:`vidtok_kit.load`), or a
        :class:`~vidtok_kit.model.autoencoder.VideoTokenizer`, which is loaded for inference here.
    :param options: the protocol (:class:`EvalOptions`).
    :param lpips: maps frame batches ``(N, 3, H, W)`` in [-1, 1] (input, target) to ``(N, ...)``
        distances, e.g. :class:`~vidtok_kit.losses.lpips.LPIPS`; None skips LPIPS.
    :param fvd_extractor: maps clips ``(B, 3, T, H, W)`` in [0, 1] to ``(B, D)`` features, e.g.
        ``I3DFeatureExtractor(load_i3d())``; None skips FVD.
    :param device: where the model and the clips run.
    """

    def __init__(
        self,
        model: Any,
        options: EvalOptions | None = None,
        *,
        lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
        fvd_extractor: Callable[[Tensor], Tensor] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.options = options or EvalOptions()
        self.device = torch.device(device)
        from vidtok_kit.loading import load

        self.model = model = load(model, device=self.device)
        self.frames = self.options.frames or default_clip_frames(model)
        tdf, mode = model.temporal_factor, model.mode
        if not frame_rules.valid_frames(self.frames, tdf=tdf, mode=mode):
            rule = frame_rules.allowed_frames(tdf=tdf, mode=mode)
            raise InputError(f"clip length {self.frames}: this {mode.value} model takes {rule}")
        size, sf = self.options.size, model.spatial_factor
        if size is not None and size % sf:
            raise InputError(f"size {size} is not a multiple of the model's spatial factor {sf}")
        self.lpips = lpips.to(self.device) if isinstance(lpips, torch.nn.Module) else lpips
        self.fvd_extractor = fvd_extractor
        self.results: list[VideoResult] = []
        self.notes: list[str] = []
        #: codebook size of a discrete model (None: continuous)
        self.codebook_size: int | None = model.codebook_size
        self._sums = {"frames": 0, "psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "lpips_frames": 0}
        self._clips = 0
        self._real_feats: list[Tensor] = []
        self._fake_feats: list[Tensor] = []
        self._codebook = CodebookStats(self.codebook_size) if self.codebook_size is not None else None
        torch.manual_seed(self.options.seed)

    # -- one clip -----------------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, video: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, 3, T, H, W) in [-1, 1] -> (reconstruction clamped to [-1, 1], token indices or None)."""
        x = video.to(self.device, torch.float32)
        reg = self.model.encode(x, sample=self.options.sample)
        recon = self.model.decode(reg.latent, num_frames=x.shape[2])
        return recon.clamp(-1.0, 1.0), reg.indices

    @torch.no_grad()
    def frame_metrics(self, video: Tensor, recon: Tensor) -> dict[str, Tensor]:
        """Per-frame ``psnr``, ``ssim`` (and ``lpips``) of one clip, each ``(T,)``; inputs in [-1, 1]."""
        x01, y01 = (video.float() + 1) / 2, (recon.float() + 1) / 2
        out = {"psnr": psnr_per_frame(x01, y01)[0], "ssim": ssim_per_frame(x01, y01)[0]}
        if self.lpips is not None:
            frames_x = x01[0].transpose(0, 1) * 2 - 1  # (T, 3, H, W), back to [-1, 1] as the reference
            frames_y = y01[0].transpose(0, 1) * 2 - 1
            out["lpips"] = self.lpips(frames_x, frames_y).reshape(frames_x.shape[0], -1).mean(dim=1)
        return out

    # -- one video ----------------------------------------------------------------------------

    def clips(
        self, path: str | Path, *, start_s: float | None = None, end_s: float | None = None
    ) -> Generator[Clip, None, None]:
        """The protocol's clips of one file (optionally of a time window of it)."""
        return iter_eval_clips(
            path,
            frames=self.frames,
            fps=self.options.fps,
            size=self.options.size,
            multiple=self.model.spatial_factor,
            start_s=start_s,
            end_s=end_s,
        )

    def evaluate_video(
        self,
        path: str | Path,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        max_clips: int | None = None,
        on_clip: Callable[[], None] | None = None,
    ) -> VideoResult:
        """Score the clips of one file and add them to the totals; an unreadable file is recorded as skipped.

        :param start_s: / :param end_s: score only this time window (e.g. a held-out clip).
        :param max_clips: stop after this many clips.
        """
        stream = self.clips(path, start_s=start_s, end_s=end_s)
        try:
            return self.evaluate_clips(str(path), stream, max_clips=max_clips, on_clip=on_clip)
        finally:
            stream.close()  # frees the decoder at once when max_clips stopped early

    def evaluate_clips(
        self,
        name: str,
        clips: Iterable[Clip],
        *,
        max_clips: int | None = None,
        on_clip: Callable[[], None] | None = None,
    ) -> VideoResult:
        """Score already-made clips of one video (lazily decoded or cached) as :meth:`evaluate_video` does.

        A :class:`VideoError` raised while iterating ``clips`` records the video as skipped.
        """
        start = time.perf_counter()
        score = VideoScore(self)
        try:
            for clip in clips:
                if max_clips is not None and score.clips >= max_clips:
                    break
                video = clip.video.unsqueeze(0).to(self.device)
                recon, indices = self.reconstruct(video)
                score.add_frames(video, recon, scored=clip.real if self.options.long else None)
                score.add_clip_features(video, recon)
                score.add_tokens(indices)
                score.clips += 1
                score.real_frames += clip.real
                if on_clip is not None:
                    on_clip()
        except VideoError as exc:
            return self.record_failure(name, exc.problem, seconds=time.perf_counter() - start)
        return self.commit(name, score, seconds=time.perf_counter() - start)

    def record_failure(self, name: str, problem: str, *, seconds: float = 0.0) -> VideoResult:
        """List ``name`` as skipped with its one-line reason."""
        result = VideoResult(path=name, status="skipped", error=problem, seconds=seconds)
        self.results.append(result)
        return result

    def commit(self, name: str, score: VideoScore, *, seconds: float = 0.0) -> VideoResult:
        """Add a completed video's :class:`VideoScore` to the dataset totals and return its row."""
        for key in self._sums:
            self._sums[key] += getattr(score, key)
        self._clips += score.clips
        if score.fvd is not None and score.fvd.num_real:
            self._real_feats.append(score.fvd.real_features)
            self._fake_feats.append(score.fvd.fake_features)
        if score.codebook is not None and self._codebook is not None:
            self._codebook.merge(score.codebook)
        result = VideoResult(
            path=name,
            frames=score.real_frames,
            clips=score.clips,
            scored_frames=score.frames,
            psnr=score.mean("psnr"),
            ssim=score.mean("ssim"),
            lpips=score.mean("lpips"),
            seconds=seconds,
        )
        self.results.append(result)
        return result

    # -- the whole set ------------------------------------------------------------------------

    @property
    def evaluated(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "ok"]

    @property
    def skipped(self) -> list[VideoResult]:
        return [r for r in self.results if r.status != "ok"]

    def fvd(self) -> float | None:
        """FVD over every clip so far, or None (no extractor, or fewer than 2 clips: noted)."""
        if self.fvd_extractor is None:
            return None
        clips = sum(f.shape[0] for f in self._real_feats)
        if clips < 2:
            self._note(f"FVD needs at least 2 clips, got {clips}: not computed")
            return None
        return fvd_from_features(torch.cat(self._real_feats), torch.cat(self._fake_feats))

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def summary(self) -> dict[str, Any]:
        """Dataset metrics (frame means), counts, skipped files and notes, as plain JSON-ready values."""
        sums = self._sums
        frames, lpips_frames = sums["frames"], sums["lpips_frames"]
        metrics: dict[str, float | None] = {
            "psnr": sums["psnr"] / frames if frames else None,
            "ssim": sums["ssim"] / frames if frames else None,
            "lpips": sums["lpips"] / lpips_frames if lpips_frames else None,
            "fvd": self.fvd(),
        }
        if self._codebook is not None:
            metrics["codebook_utilisation"] = self._codebook.utilisation
            metrics["codebook_perplexity"] = self._codebook.perplexity
        return {
            "videos": len(self.evaluated),
            "clips": self._clips,
            "frames": sum(r.frames for r in self.evaluated),
            "scored_frames": frames,
            "clip_frames": self.frames,
            "metrics": metrics,
            "codebook": self._codebook.summary() if self._codebook is not None else None,
            "skipped": [{"path": r.path, "error": r.error} for r in self.skipped],
            "notes": list(self.notes),
        }
