"""How decoded frames become model input: frame rate, time window, resize and crop/pad options.

The options live in one frozen :class:`ClipPolicy` so that a data config, the CLI and
:func:`~vidtok_kit.io.iter_video_chunks` agree on their meaning and validation. The spatial
plan for a given source size is a :class:`FrameGeometry`, computed once per video; it also
records the unpadded region, so a caller that used ``resize="pad"`` can crop a reconstruction
back to the real pixels with :meth:`FrameGeometry.crop_content`.

Resizing follows the VidTok data pipeline (reference spec section 5, "Data pipeline"): shorter
side to ``size`` with antialiasing, then centre crop ``size x size``, values mapped to [-1, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any, Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from vidtok_kit.io.errors import VideoError

__all__ = [
    "MAX_UPSAMPLE",
    "RESIZE_MODES",
    "ClipPolicy",
    "FrameGeometry",
    "ResizeMode",
    "as_fraction",
    "frame_to_tensor",
    "select_frames",
]

#: ``fps`` may exceed the source rate at most this many times: resampling upward repeats frames,
#: and an unbounded rate (``--fps 100000`` on a 9-frame clip) would repeat them without end
MAX_UPSAMPLE = 4

ResizeMode = Literal["crop", "pad", "none"]
#: The allowed values of :attr:`ClipPolicy.resize`, in the order the CLI lists them.
RESIZE_MODES: tuple[str, ...] = ("crop", "pad", "none")


@attrs.frozen(kw_only=True)
class FrameGeometry:
    """The spatial plan for one video: decoded size -> resized size -> output size.

    Output pixel ``(y, x)`` is resized pixel ``(y + top, x + left)``; in ``pad`` mode the rows and
    columns at or beyond ``content_height`` / ``content_width`` are edge-replicated padding.
    """

    source_height: int  #: height of the decoded frames
    source_width: int  #: width of the decoded frames
    resized_height: int  #: height after the shorter-side resize (== source when no ``size``)
    resized_width: int  #: width after the shorter-side resize
    top: int  #: first resized row kept by the centre crop (0 unless ``crop``)
    left: int  #: first resized column kept by the centre crop (0 unless ``crop``)
    height: int  #: height of the tensors yielded
    width: int  #: width of the tensors yielded
    content_height: int  #: rows of ``height`` holding real pixels (< height only for ``pad``)
    content_width: int  #: columns of ``width`` holding real pixels (< width only for ``pad``)

    def crop_content(self, frames: torch.Tensor) -> torch.Tensor:
        """Drop the ``pad`` padding from frames laid out ``(..., H, W)``, e.g. a reconstruction.

        :param frames: a tensor whose last two dims are ``(height, width)`` of this geometry.
        :return: a view of the top-left ``(content_height, content_width)`` region.
        """
        return frames[..., : self.content_height, : self.content_width]


def _positive(name: str, value: float | None, *, integer: bool = False) -> None:
    if value is None:
        return
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class ClipPolicy:
    """Options that turn a video file into ``(3, T, H, W)`` float tensors in [-1, 1].

    These are exactly the keyword options of :func:`~vidtok_kit.io.iter_video_chunks` and
    :func:`~vidtok_kit.io.read_video`, so ``read_video(path, **attrs.asdict(policy))`` works.
    Invalid combinations raise ``ValueError`` here, before any file is opened.
    """

    #: target frame rate; output frame ``i`` is the source frame nearest to ``i / fps`` seconds
    #: after the first frame of the window (ties go to the earlier frame). ``None``: every frame.
    fps: float | None = None
    #: resize the shorter side to this many pixels (antialiased bilinear). ``None``: no resize.
    size: int | None = None
    #: ``"crop"``: centre crop to ``size x size`` (or, without ``size``, down to multiples of
    #: ``multiple``); ``"pad"``: keep the aspect ratio and edge-pad right/bottom up to multiples of
    #: ``multiple``; ``"none"``: the (resized) frame must already be a multiple of ``multiple``.
    resize: ResizeMode = "crop"
    #: spatial sizes must be divisible by this (the model's spatial downsampling factor).
    multiple: int = 1
    #: first second of the window, relative to the start of the video stream.
    start_s: float | None = None
    #: end of the window in seconds (exclusive).
    end_s: float | None = None

    def __attrs_post_init__(self) -> None:
        _positive("fps", self.fps)
        _positive("size", self.size, integer=True)
        _positive("multiple", self.multiple, integer=True)
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}; got {self.resize!r}")
        if self.start_s is not None and not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise ValueError(f"start_s must be a non-negative number of seconds, got {self.start_s!r}")
        _positive("end_s", self.end_s)
        if self.end_s is not None and self.end_s <= (self.start_s or 0):
            raise ValueError(f"end_s ({self.end_s}) must be greater than start_s ({self.start_s or 0})")
        if self.resize == "crop" and self.size is not None and self.size % self.multiple:
            raise ValueError(
                f"size {self.size} is not a multiple of {self.multiple}; crop output is "
                f"size x size, so pick size divisible by {self.multiple}"
            )

    def check_source_rate(self, source_fps: float | None, *, path: str | os.PathLike[str] = "<frames>") -> None:
        """Refuse an ``fps`` above :data:`MAX_UPSAMPLE` times the source rate (frames repeated without bound).

        :raises VideoError: one line naming the file, its rate and the largest ``fps`` allowed.
        """
        if self.fps is None or not source_fps or not math.isfinite(source_fps):
            return
        limit = source_fps * MAX_UPSAMPLE
        if self.fps > limit * (1 + 1e-9):
            raise VideoError(
                path, f"--fps {self.fps:g} is more than {MAX_UPSAMPLE}x the video's {source_fps:g} fps "
                f"(resampling repeats frames); use at most {limit:g}"
            )

    def geometry(
        self, width: int, height: int, *, path: str | os.PathLike[str] = "<frames>"
    ) -> FrameGeometry:
        """Plan resize and crop/pad for frames of ``width x height``.

        :param width: decoded frame width.
        :param height: decoded frame height.
        :param path: the file, named in a :class:`VideoError` when the frame size does not fit.
        :return: the :class:`FrameGeometry` every frame of this video goes through.
        :raises VideoError: the frame is smaller than ``multiple`` (``crop``), or not a multiple of
            it (``none``).
        """
        rh, rw = height, width
        if self.size is not None:
            # Round the long side like torchvision's Resize(int) does, so aspect ratio is kept.
            if height <= width:
                rh, rw = self.size, max(1, round(width * self.size / height))
            else:
                rh, rw = max(1, round(height * self.size / width)), self.size
        m = self.multiple
        top = left = 0
        if self.resize == "crop":
            h, w = (self.size, self.size) if self.size is not None else (rh // m * m, rw // m * m)
            if h == 0 or w == 0:
                raise VideoError(
                    path, f"frame size {rw}x{rh} is smaller than the required multiple {m}; pass --size"
                )
            top, left = (rh - h) // 2, (rw - w) // 2
            ch, cw = h, w
        elif self.resize == "pad":
            h, w = -(-rh // m) * m, -(-rw // m) * m
            ch, cw = rh, rw
        else:
            if rh % m or rw % m:
                raise VideoError(
                    path,
                    f"frame size {rw}x{rh} (WxH) is not a multiple of {m}; pass --size N to resize "
                    f"and centre-crop to NxN, or use resize='pad'",
                )
            h, w, ch, cw = rh, rw, rh, rw
        return FrameGeometry(
            source_height=height,
            source_width=width,
            resized_height=rh,
            resized_width=rw,
            top=top,
            left=left,
            height=h,
            width=w,
            content_height=ch,
            content_width=cw,
        )


def frame_to_tensor(rgb: np.ndarray, geometry: FrameGeometry) -> torch.Tensor:
    """Turn one decoded RGB frame into model input.

    Frames are transformed one at a time, as they are decoded, so the full-resolution float copy
    never exists for more than one frame (a 64-frame 1280x720 float chunk would be 700 MB).

    :param rgb: uint8 array ``(source_height, source_width, 3)``.
    :param geometry: the plan from :meth:`ClipPolicy.geometry`.
    :return: float32 tensor ``(3, height, width)`` in [-1, 1]; stack on ``dim=1`` for ``(3, T, H, W)``.
    """
    x = rearrange(torch.from_numpy(rgb), "h w c -> 1 c h w").float()
    g = geometry
    if (g.resized_height, g.resized_width) != (g.source_height, g.source_width):
        # antialias=True low-passes before bilinear sampling, which matters when shrinking
        # 1280x720 to 128: plain bilinear aliases fine texture into moire.
        x = F.interpolate(
            x, size=(g.resized_height, g.resized_width), mode="bilinear", antialias=True, align_corners=False
        )
    if g.top or g.left or g.height < g.resized_height or g.width < g.resized_width:
        x = x[:, :, g.top : g.top + g.height, g.left : g.left + g.width]
    if g.height > g.content_height or g.width > g.content_width:
        # Edge replication (not zeros) keeps the padded border free of artificial edges the
        # encoder would otherwise spend bits on.
        x = F.pad(x, (0, g.width - g.content_width, 0, g.height - g.content_height), mode="replicate")
    return (x[0] / 127.5 - 1.0).clamp_(-1.0, 1.0)


def select_frames(
    frames: Iterable[tuple[Fraction, Any]],
    *,
    fps: Fraction | None,
    start: Fraction | None,
    end: Fraction | None,
    period: Fraction,
) -> Iterator[Any]:
    """Keep frames inside ``[start, end)`` and, with ``fps``, resample by nearest timestamp.

    The rule: output frame ``i`` is the kept source frame whose time is nearest to
    ``t0 + i / fps``, where ``t0`` is the time of the first kept frame; ties go to the earlier
    frame. Output stops before ``min(end, t_last + period)``, so a 10 s clip gives
    ``ceil(10 * fps)`` frames whether ``fps`` is below (frames dropped) or above (frames repeated)
    the source rate. This differs from the reference's fixed integer interval
    ``round(src_fps / sample_fps)``, which cannot express 30 -> 25 fps. Times are exact
    :class:`~fractions.Fraction` s, so ``fps`` equal to the source rate is the identity.

    :param frames: ``(seconds, frame)`` pairs in presentation order; frames are passed through
        untouched (so they can be converted to pixels only once selected).
    :param fps: target rate, or ``None`` to keep every frame in the window.
    :param start: window start in seconds (inclusive), or ``None``.
    :param end: window end in seconds (exclusive), or ``None``.
    :param period: source frame duration, how long the last frame stays on screen.
    :return: the selected frames, a frame repeated when upsampling.
    """
    prev: tuple[Fraction, Any] | None = None
    t0, i = Fraction(0), 0
    for t, frame in frames:
        if start is not None and t < start:
            continue
        if end is not None and t >= end:
            break
        if fps is None:
            yield frame
            continue
        if prev is None:
            prev, t0 = (t, frame), t
            continue
        midpoint = (prev[0] + t) / 2
        while t0 + i / fps <= midpoint:
            yield prev[1]
            i += 1
        prev = (t, frame)
    if fps is not None and prev is not None:
        stop = prev[0] + period if end is None else min(prev[0] + period, end)
        while t0 + i / fps < stop:
            yield prev[1]
            i += 1


def as_fraction(x: float) -> Fraction:
    """Exact fraction for a rate or time given as a float (``29.97002997`` -> ``30000/1001``)."""
    # 29.97 -> 2997/100 and 30000/1001 stays 30000/1001: exact enough that fps == source rate is
    # the identity, where float arithmetic would drop or repeat a frame every few thousand.
    return x if isinstance(x, Fraction) else Fraction(x).limit_denominator(1_000_000)
