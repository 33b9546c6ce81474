"""Whole-video evaluation through the streaming engine (``vidtok-kit eval --long``).

VidTok v1.1 reports metrics on whole MCL-JCV videos encoded with tiling instead of on independent
17-frame clips (shared/spec/vidtok-reference.md §5, ``--read_long_video``). Here the whole sampled
video goes through the tokenizer's streaming encoder and decoder (:mod:`vidtok_kit.stream`) in bounded
memory: causal models stream exactly (the result equals one pass over the whole video), non-causal
ones use cross-faded windows. Every real frame is scored once; no padding frame is scored. FVD
still needs clips, so the frame pairs are regrouped into consecutive ``frames``-frame clips (the
last one padded by repeating its last frame, as the clip protocol does).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.evaluation.evaluator import Evaluator, VideoResult, VideoScore
from vidtok_kit.evaluation.inputs import iter_eval_clips
from vidtok_kit.io import VideoError
from vidtok_kit.model.layers import TimeMode

__all__ = ["evaluate_long_video"]


class _ClipGrouper:
    """Regroups a stream of (input, reconstruction) frames into fixed-length clips for FVD."""

    def __init__(self, score: VideoScore, frames: int) -> None:
        self.score, self.frames = score, frames
        self.x: list[Tensor] = []
        self.y: list[Tensor] = []

    def push(self, x: Tensor, y: Tensor) -> None:
        self.x += list(x.unbind(dim=2))
        self.y += list(y.unbind(dim=2))
        while len(self.x) >= self.frames:
            self._emit(self.frames)

    def flush(self) -> None:
        if self.x:
            missing = self.frames - len(self.x)
            self.x += [self.x[-1]] * missing
            self.y += [self.y[-1]] * missing
            self._emit(self.frames)

    def _emit(self, n: int) -> None:
        x, y = torch.stack(self.x[:n], dim=2), torch.stack(self.y[:n], dim=2)
        del self.x[:n], self.y[:n]
        self.score.add_clip_features(x, y)
        self.score.clips += 1


def evaluate_long_video(
    evaluator: Evaluator, path: str | Path, *, on_chunk: Callable[[], None] | None = None
) -> VideoResult:
    """Stream one whole video through ``evaluator``'s model and add its scores to the totals."""
    model, opts, device = evaluator.model, evaluator.options, evaluator.device
    start = time.perf_counter()
    score = VideoScore(evaluator)
    grouper = _ClipGrouper(score, evaluator.frames)

    def frames() -> Iterator[Tensor]:
        clips = iter_eval_clips(
            path, frames=evaluator.frames, fps=opts.fps, size=opts.size, multiple=model.spatial_factor, pad_last=False
        )
        for clip in clips:
            yield clip.video.unsqueeze(0)

    try:
        # v1.1's front padding depends on the length, so it has to be known before encoding.
        num_frames = sum(x.shape[2] for x in frames()) if model.mode is TimeMode.CAUSAL_V1_1 else None
        pending: deque[Tensor] = deque()  # input frames whose reconstruction has not come out yet

        def remember(chunks: Iterator[Tensor]) -> Iterator[Tensor]:
            for chunk in chunks:
                pending.extend(chunk.unbind(dim=2))
                yield chunk

        encoder = model.streaming_encoder(num_frames=num_frames, output_device=device, sample=opts.sample)
        total = model.latent_frames(num_frames) if num_frames is not None else None
        decoder = model.streaming_decoder(front_pad=encoder.front_pad, num_frames=num_frames, total_latents=total,
                                          output_device=device)

        def latents() -> Iterator[Tensor]:
            for chunk in encoder(remember(frames())):
                score.add_tokens(chunk.indices)
                yield chunk.latent

        with torch.no_grad():
            for recon in decoder(latents()):
                n = min(recon.shape[2], len(pending))  # the tail padding is never matched to a frame
                if n == 0:
                    continue
                x = torch.stack([pending.popleft() for _ in range(n)], dim=2).to(device)
                y = recon[:, :, :n].to(device).clamp(-1.0, 1.0)
                score.add_frames(x, y)
                grouper.push(x, y)
                score.real_frames += n
                if on_chunk is not None:
                    on_chunk()
            grouper.flush()
    except VideoError as exc:
        return evaluator.record_failure(str(path), exc.problem, seconds=time.perf_counter() - start)
    except InputError as exc:  # e.g. a window with no frames
        return evaluator.record_failure(str(path), str(exc), seconds=time.perf_counter() - start)
    return evaluator.commit(str(path), score, seconds=time.perf_counter() - start)
