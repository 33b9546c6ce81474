"""Training and validation clips: videos decoded with PyAV inside DataLoader workers.

Data (spec §5, "Data pipeline"): a folder, a CSV/text list of paths (relative to ``data.root``)
or ``builtin:samples``. A training clip is ``num_frames`` frames sampled at ``sample_fps`` from a
random start, the shorter side resized to ``data.resize`` (default: ``resolution``) and a random
(or centre) ``resolution`` square crop, then the recipe's augmentations (``data.augment``);
a video too short for the clip repeats its last frame. An unreadable file is skipped with a
warning (the clip comes from the next readable video) and counted, never a crashed run.

Resumability: the stream of clips is a pure function of ``(seed, position)``. Global position
``p`` picks video ``perm_epoch[p % n]`` (one permutation per epoch) and seeds that clip's own
random start and crop with ``(seed, p)``. A step consumes positions
``[step * B * W, (step + 1) * B * W)`` (B per-rank batch, W ranks; rank r takes its B-slice), so a
resumed run only needs the number of samples seen, whatever the worker count, and the order is
independent of worker scheduling and of the global RNG.

Validation (deterministic): the first ``num_frames`` frames of each validation video at
``val_sample_fps``, centre-cropped, through the evaluation protocol's clip reader.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from vidtok_kit.errors import InputError
from vidtok_kit.io import VideoError, iter_video_chunks, probe_video, read_video

__all__ = [
    "BUILTIN_HOLDOUT",
    "ClipSampler",
    "TrainClips",
    "augment",
    "build_train_loader",
    "load_val_clips",
    "pad_frames",
    "split_videos",
]

log = logging.getLogger("vidtok_kit.train")

#: the built-in sample held out for validation: the two carphone clips are one scene (pristine /
#: distorted), so holding one of them out would leak it into training; bikes is unlike the rest
BUILTIN_HOLDOUT = "bikes.mp4"


def split_videos(data: Any) -> tuple[list[Path], list[Path]]:
    """``(train, val)`` video lists of a :class:`~vidtok_kit.recipe.DataConfig`.

    ``val = ""`` holds ``val_holdout`` videos of ``train`` out (the built-in samples: bikes.mp4;
    otherwise the last ones in listing order), ``"none"`` means no validation.
    """
    from vidtok_kit.evaluation.inputs import BUILTIN_SAMPLES, resolve_videos

    root = data.root or None
    train = resolve_videos(data.train, root=root)
    val: list[Path] = []
    if data.val == "none":
        pass
    elif data.val:
        val = resolve_videos(data.val, root=root)
    elif data.val_holdout > 0:
        if data.train == BUILTIN_SAMPLES:
            val = [p for p in train if p.name == BUILTIN_HOLDOUT][: data.val_holdout]
        if not val:
            val = train[-data.val_holdout :]
        train = [p for p in train if p not in val]
    if not train:
        raise InputError(
            f"data.train {data.train!r}: no training videos left after holding {len(val)} out for validation; "
            "set data.val or data.val_holdout = 0"
        )
    return train, val


def pad_frames(clip: Tensor, frames: int) -> Tensor:
    """(3, t, H, W) -> (3, frames, H, W): a short clip repeats its last frame (the reference's rule)."""
    t = clip.shape[1]
    if t >= frames:
        return clip[:, :frames]
    return torch.cat([clip, clip[:, -1:].expand(-1, frames - t, -1, -1)], dim=1)


class ClipSampler(Sampler):
    """Infinite, resumable, rank-sharded stream of ``(video index, global position)`` keys.

    :param start: global position of this run's first sample (``samples seen`` when resuming).
    """

    def __init__(self, num_videos: int, *, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0) -> None:
        self.n, self.batch_size, self.rank, self.world_size = num_videos, batch_size, rank, world_size
        self.seed, self.start = seed, start
        self._perms: dict[int, list[int]] = {}

    def video_at(self, position: int) -> int:
        epoch, i = divmod(position, self.n)
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()}
        return self._perms[epoch][i]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = self.start
        while True:
            first = base + self.rank * self.batch_size
            for p in range(first, first + self.batch_size):
                yield self.video_at(p), p
            base += self.batch_size * self.world_size


class TrainClips(Dataset):
    """Random training clips, indexed by the :class:`ClipSampler` keys ``(video, position)``.

    With ``cache_mb > 0`` each worker keeps whole decoded videos (at ``fps``, shorter side
    ``resolution``) in an LRU cache and cuts clips from memory; otherwise every clip decodes only
    its own time window (seeking to a random start).
    """

    def __init__(
        self, videos: list[Path], *, frames: int, fps: float, resolution: int, resize: int = 0, crop: str = "random",
        augment: tuple[str, ...] = (), seed: int = 0, cache_mb: int = 0,
    ) -> None:
        if not videos:
            raise InputError("no training videos")
        if resize and resize < resolution:
            raise InputError(f"data.resize = {resize} is smaller than the crop train.resolution = {resolution}")
        self.videos, self.frames, self.fps, self.resolution = list(videos), frames, fps, resolution
        self.size = resize or resolution
        self.crop, self.augment, self.seed, self.cache_bytes = crop, augment, seed, cache_mb * 2**20
        self._cache: OrderedDict[int, Tensor] = OrderedDict()
        self._durations: dict[int, float] = {}
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, position = key
        rng = np.random.default_rng([self.seed, position])
        skipped = 0
        for k in range(len(self.videos)):
            i = (index + k) % len(self.videos)
            if i in self._bad:
                skipped += 1
                continue
            try:
                clip = self._clip(i, rng)
            except VideoError as exc:
                self._bad.add(i)
                skipped += 1
                log.warning("skipping unreadable training video (%s)", exc)
                continue
            return {"video": augment(self._crop(clip, rng), self.augment, rng), "skipped": skipped}
        raise InputError(f"no readable training video among {len(self.videos)} (first: {self.videos[0]})")

    def _clip(self, i: int, rng: np.random.Generator) -> Tensor:
        path, t = self.videos[i], self.frames
        if self.cache_bytes:
            video = self._cached(i)
            start = int(rng.integers(0, max(0, video.shape[1] - t) + 1))
            return pad_frames(video[:, start : start + t], t)
        if i not in self._durations:
            self._durations[i] = probe_video(path).duration_s
        span = max(0.0, self._durations[i] - t / self.fps)
        start_s = float(rng.uniform(0.0, span)) if span > 0 else 0.0
        chunks = cast(Generator[Tensor, None, None], iter_video_chunks(path, t, fps=self.fps, size=self.size, resize="none", start_s=start_s or None))
        try:
            first = next(chunks)
        finally:
            chunks.close()
        return pad_frames(first, t)

    def _cached(self, i: int) -> Tensor:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        video, _ = read_video(self.videos[i], fps=self.fps, size=self.size, resize="none")
        self._cache[i] = video
        while sum(v.nbytes for v in self._cache.values()) > self.cache_bytes and len(self._cache) > 1:
            self._cache.popitem(last=False)
        return video

    def _crop(self, clip: Tensor, rng: np.random.Generator) -> Tensor:
        r = self.resolution
        h, w = clip.shape[-2:]
        if self.crop == "random":
            top, left = int(rng.integers(0, h - r + 1)), int(rng.integers(0, w - r + 1))
        else:
            top, left = (h - r) // 2, (w - r) // 2
        return clip[:, :, top : top + r, left : left + r]


def augment(clip: Tensor, names: tuple[str, ...], rng: np.random.Generator) -> Tensor:
    """Apply each named augmentation to a (3, T, H, W) clip in [-1, 1] with probability 1/2."""
    for name in names:
        if rng.random() >= 0.5:
            continue
        if name == "hflip":
            clip = clip.flip(-1)
        elif name == "vflip":
            clip = clip.flip(-2)
        elif name == "reverse":
            clip = clip.flip(1)
        elif name == "rgb_shuffle":
            clip = clip[torch.from_numpy(rng.permutation(clip.shape[0]))]
        elif name == "invert":
            clip = -clip
    return clip.contiguous()


def _worker_init(_: int) -> None:
    # decoding and resizing are per-frame work: one thread per worker avoids oversubscription
    torch.set_num_threads(1)


def build_train_loader(
    videos: list[Path], recipe: Any, *, rank: int = 0, world_size: int = 1, start: int = 0, pin_memory: bool = False
) -> DataLoader:
    """An endless DataLoader of ``{"video": (B, 3, T, R, R), "skipped": (B,)}`` batches from ``start``."""
    t, d = recipe.train, recipe.data
    dataset = TrainClips(
        videos, frames=t.num_frames, fps=d.sample_fps, resolution=t.resolution, resize=d.resize, crop=d.crop,
        augment=d.augment, seed=t.seed, cache_mb=d.cache_mb,
    )
    sampler = ClipSampler(len(videos), batch_size=t.batch_size, rank=rank, world_size=world_size, seed=t.seed, start=start)
    workers = d.num_workers
    return DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        # a private generator: creating the loader's iterator must not advance the global RNG,
        # or a resumed run would draw different KL noise than an uninterrupted one
        generator=torch.Generator().manual_seed(t.seed),
    )


def load_val_clips(videos: list[Path], recipe: Any, *, multiple: int) -> list[tuple[str, Tensor]]:
    """``(name, (3, T, R, R))`` validation clips: the first clip of each video, unreadable ones skipped."""
    from vidtok_kit.evaluation.inputs import iter_eval_clips

    t, d = recipe.train, recipe.data
    clips: list[tuple[str, Tensor]] = []
    for path in videos:
        if len(clips) >= d.val_clips:
            break
        try:
            stream = iter_eval_clips(path, frames=t.num_frames, fps=d.val_sample_fps, size=t.resolution, multiple=multiple)
            try:
                clip = next(stream, None)
            finally:
                stream.close()
        except VideoError as exc:
            log.warning("skipping unreadable validation video (%s)", exc)
            continue
        if clip is not None:
            clips.append((Path(path).name, clip.video))
    return clips
