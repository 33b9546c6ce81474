"""Reading and writing videos with PyAV: lazy chunked decode in, atomic H.264 out.

Why PyAV and not decord/torchvision (which the VidTok reference uses): it is one pip wheel with
FFmpeg inside, needs no ``ffmpeg`` binary, and lets us decode lazily, so an hour-long video is
tokenized in constant memory. Every failure is reported as a one-line :class:`VideoError` naming
the file; PyAV's exceptions never escape this module. Frame times are ``pts * time_base`` relative
to the stream start; the frame-rate rule is in :func:`vidtok_kit.io.policy.select_frames`.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import av
import numpy as np
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.io.errors import VideoError
from vidtok_kit.io.policy import (
    ClipPolicy,
    FrameGeometry,
    ResizeMode,
    as_fraction,
    frame_to_tensor,
    select_frames,
)
from vidtok_kit.io.suffixes import check_writable_video

__all__ = ["VideoInfo", "check_complete", "iter_video_chunks", "probe_video", "read_video", "write_video"]

# av.error.* classes also derive from the matching builtins (OSError, EOFError, ValueError), and
# PyAV raises plain ValueError/RuntimeError/IndexError from its Python layer; catch all of them
# around av calls (and only there) so our own bugs are not relabelled as bad files.
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError, RuntimeError, IndexError)
# FFmpeg's tty/bintext demuxers "decode" any long enough text file as ANSI art frames; a text
# file reaching a tokenizer is always a mistake (e.g. a CSV listed as a video), so refuse it.
_TEXT_ART_CODECS = frozenset({"ansi", "bintext", "idf", "xbin"})
#: Encoders tried in order when ``write_video(codec=None)``; "h264" means any H.264 encoder.
ENCODER_PREFERENCE = ("libx264", "h264", "mpeg4")


@attrs.frozen(kw_only=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file; sizes are of the decoded frames."""

    path: Path  #: the file probed
    fps: float  #: average frame rate of the video stream
    num_frames: int  #: frame count from the container, or counted by decoding if it has none
    width: int  #: decoded frame width in pixels
    height: int  #: decoded frame height in pixels
    duration_s: float  #: stream duration in seconds
    codec: str  #: FFmpeg decoder name, e.g. ``"h264"``


def _reason(exc: BaseException) -> str:
    # FFmpegError.strerror is the readable part; str() would add errno and the FFmpeg call name.
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _open(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """Open ``path`` and return ``(container, first video stream)``, or raise VideoError."""
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "no such file")
    if p.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    try:
        container = av.open(os.fspath(p), mode="r", metadata_errors="ignore")
    except _AV_ERRORS as exc:
        raise VideoError(
            path, f"cannot open: not a video file, or truncated/corrupt ({_reason(exc)})"
        ) from exc
    if not container.streams.video:
        found = sorted({s.type for s in container.streams})
        container.close()
        extra = f"; found {', '.join(found)}" if found else ""
        raise VideoError(path, f"not a video file (no video stream{extra})")
    stream = container.streams.video[0]
    if stream.codec_context.name in _TEXT_ART_CODECS:
        container.close()
        raise VideoError(
            path, f"not a video file (text, which FFmpeg would render as {stream.codec_context.name} art)"
        )
    stream.thread_type = "AUTO"  # frame+slice threads; decode is the I/O bottleneck
    return container, stream


def _source_rate(stream: Any) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _decoded(path: str | os.PathLike[str], container: Any, stream: Any) -> Iterator[tuple[Fraction, Any]]:
    """Yield ``(seconds since stream start, av.VideoFrame)`` in presentation order."""
    frames = container.decode(stream)
    tb = stream.time_base
    origin = stream.start_time or 0
    period = 1 / (_source_rate(stream) or Fraction(25))  # only used when a frame lacks a pts
    n, last = 0, None
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except _AV_ERRORS as exc:
            raise VideoError(
                path, f"corrupt or truncated video: decoding failed after {n} frames ({_reason(exc)})"
            ) from exc
        if frame.pts is not None and tb:
            t = (frame.pts - origin) * Fraction(tb)
        else:
            t = Fraction(0) if last is None else last + period
        n, last = n + 1, t
        yield t, frame


def _to_rgb(path: str | os.PathLike[str], frame: Any, width: int, height: int) -> np.ndarray:
    try:
        if (frame.width, frame.height) != (width, height):
            # A mid-stream resolution change would break torch.stack; scale to the first size.
            frame = frame.reformat(width=width, height=height)
        return frame.to_ndarray(format="rgb24")
    except _AV_ERRORS as exc:
        raise VideoError(path, f"cannot convert a decoded frame to RGB ({_reason(exc)})") from exc


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's metadata, decoding only when the container does not record it.

    :param path: the video file.
    :return: a :class:`VideoInfo`.
    :raises VideoError: missing, unreadable, not a video, or no decodable frames.
    """
    container, stream = _open(path)
    with container:
        cc = stream.codec_context
        rate = _source_rate(stream)
        num_frames, width, height = stream.frames or 0, cc.width, cc.height
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        if not (num_frames and width and height and rate):
            # Matroska/WebM and raw streams carry no frame count: count by decoding.
            num_frames, last_t = 0, Fraction(0)
            for t, frame in _decoded(path, container, stream):
                if num_frames == 0:
                    width, height = frame.width, frame.height
                num_frames, last_t = num_frames + 1, t
            if rate is None and num_frames and last_t > 0:
                rate = (num_frames - 1) / last_t
        if num_frames == 0:
            raise VideoError(path, "no decodable video frames")
        if rate is None:
            rate = Fraction(num_frames) / Fraction(duration) if duration else None
        if not rate:
            raise VideoError(path, "frame rate unknown (the container records none)")
        return VideoInfo(
            path=Path(path),
            fps=float(rate),
            num_frames=num_frames,
            width=width,
            height=height,
            duration_s=duration if duration else float(num_frames / rate),
            codec=cc.name,
        )


def iter_video_chunks(
    path: str | os.PathLike[str],
    chunk_frames: int,
    *,
    fps: float | None = None,
    size: int | None = None,
    resize: ResizeMode = "crop",
    multiple: int = 1,
    start_s: float | None = None,
    end_s: float | None = None,
) -> Iterator[torch.Tensor]:
    """Decode a video lazily into consecutive chunks of at most ``chunk_frames`` frames.

    Only one chunk of frames is held at a time, so memory does not grow with video length.
    Closing the generator closes the file.

    :param path: the video file.
    :param chunk_frames: frames per chunk; the last chunk may be shorter.
    :param fps: resample to this frame rate by nearest timestamp (rule: :func:`select_frames`).
    :param size: resize the shorter side to ``size`` (antialiased bilinear).
    :param resize: ``"crop"``, ``"pad"`` or ``"none"``; see :class:`ClipPolicy`. In ``pad`` mode,
        ``ClipPolicy(...).geometry(info.width, info.height)`` gives the unpadded size.
    :param multiple: output height and width are multiples of this.
    :param start_s: skip frames before this time (seconds from the stream start).
    :param end_s: stop before this time.
    :return: a generator of float32 tensors ``(3, t, H, W)`` in [-1, 1], ``1 <= t <= chunk_frames``.
    :raises ValueError: bad options (at the call).
    :raises VideoError: unreadable file, bad frame size, or no frame in the window (while
        iterating, like any generator).
    """
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    policy = ClipPolicy(fps=fps, size=size, resize=resize, multiple=multiple, start_s=start_s, end_s=end_s)
    return _iter_chunks(path, chunk_frames, policy)


def check_complete(path: str | os.PathLike[str], decoded: int, listed: int) -> None:
    """Fail when decoding a whole video stopped well short of the frames its container lists.

    A file truncated after its index (mp4 with ``moov`` in front, data cut) decodes its first
    frames and then simply ends, without a decoder error; encoding those and recording the
    container's count would pass off a fragment as the video. A shortfall of a frame or two (or
    1%) is tolerated: edit lists and B-frame delays make some valid files list one more.
    """
    if listed and decoded < listed - max(2, listed // 100):
        raise VideoError(path, f"corrupt or truncated video: the container lists {listed} frames but only {decoded} could be decoded")


def _iter_chunks(
    path: str | os.PathLike[str], chunk_frames: int, policy: ClipPolicy
) -> Iterator[torch.Tensor]:
    # Split from iter_video_chunks so that option errors raise at the call, not at first next().
    container, stream = _open(path)
    try:
        start = as_fraction(policy.start_s) if policy.start_s else None
        end = as_fraction(policy.end_s) if policy.end_s is not None else None
        period = 1 / (_source_rate(stream) or Fraction(25))
        frames = _seek(path, container, stream, start, period) if start is not None else None
        if frames is None:
            if start is not None:  # seeking failed or overshot: decode from the beginning
                container.close()
                container, stream = _open(path)
            frames = _decoded(path, container, stream)
        decoded = _Counting(frames)
        rate = _source_rate(stream)
        policy.check_source_rate(float(rate) if rate else None, path=path)
        fps = as_fraction(policy.fps) if policy.fps else None
        geometry: FrameGeometry | None = None
        chunk: list[torch.Tensor] = []
        total, last_frame, last = 0, None, torch.empty(0)
        for frame in select_frames(decoded, fps=fps, start=start, end=end, period=period):
            if geometry is None:
                geometry = policy.geometry(frame.width, frame.height, path=path)
            if frame is not last_frame:  # upsampling repeats a frame: convert it once
                last_frame = frame
                rgb = _to_rgb(path, frame, geometry.source_width, geometry.source_height)
                last = frame_to_tensor(rgb, geometry)
            chunk.append(last)
            if len(chunk) == chunk_frames:
                total += len(chunk)
                yield torch.stack(chunk, dim=1)
                chunk = []
        if start is None and end is None and decoded.count:  # the whole video was read: it must all be there
            check_complete(path, decoded.count, stream.frames or 0)
        if chunk:
            total += len(chunk)
            yield torch.stack(chunk, dim=1)
        if total == 0:
            if decoded.count == 0 and start is None:
                raise VideoError(path, "no decodable video frames")
            window = f"[{float(start or 0):g}, {'end' if end is None else f'{float(end):g}'}) s"
            raise VideoError(path, f"no frames in the requested window {window}")
    finally:
        container.close()


class _Counting:
    """Pass-through iterator that remembers how many items went by (to word the empty error)."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it, self.count = it, 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        item = next(self.it)
        self.count += 1
        return item


def _seek(
    path: str | os.PathLike[str], container: Any, stream: Any, start: Fraction, period: Fraction
) -> Iterator[tuple[Fraction, Any]] | None:
    """Decode from the keyframe before ``start``, or return None if seeking fails or overshoots.

    Seeking keeps ``start_s`` cheap on long videos; the frames between the keyframe and
    ``start`` are decoded and dropped by :func:`select_frames`.
    """
    try:
        target = int(start / Fraction(stream.time_base)) + (stream.start_time or 0)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = _decoded(path, container, stream)
        first = next(frames, None)
    except (*_AV_ERRORS, VideoError):
        return None  # the caller reopens; a genuinely corrupt file then fails with its own error
    if first is None or first[0] > start + period:
        return None  # landed after the target (imprecise demuxer) or nothing after the seek point
    return itertools.chain([first], frames)


def read_video(path: str | os.PathLike[str], **options: Any) -> tuple[torch.Tensor, VideoInfo]:
    """Decode a whole video (or the ``start_s``/``end_s`` window) into one tensor.

    :param path: the video file.
    :param options: the keyword options of :func:`iter_video_chunks` (``fps``, ``size``,
        ``resize``, ``multiple``, ``start_s``, ``end_s``).
    :return: ``(frames, info)``: float32 ``(3, T, H, W)`` in [-1, 1] and the source's
        :class:`VideoInfo` (source size, not output size).
    :raises VideoError: as :func:`iter_video_chunks`.
    """
    info = probe_video(path)  # fail fast, before any pixels are decoded
    chunks = list(iter_video_chunks(path, 64, **options))
    return torch.cat(chunks, dim=1), info


def _to_uint8_frames(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Accept model output ``(3, T, H, W)`` in [-1, 1] or uint8 ``(T, H, W, 3)``; return the latter."""
    x = torch.as_tensor(frames).detach().cpu()
    if x.dtype == torch.uint8:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"uint8 frames must be (T, H, W, 3); got shape {tuple(x.shape)}")
        return x.numpy()
    if not x.is_floating_point() or x.ndim != 4 or x.shape[0] != 3:
        raise InputError(
            f"frames must be float (3, T, H, W) in [-1, 1] or uint8 (T, H, W, 3); "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise InputError("frames contain NaN or inf; refusing to write them as a video")
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()


def _pick_encoder(path: str | os.PathLike[str], codec: str | None) -> str:
    """The encoder to write ``path`` with: ``codec``, or the first of ENCODER_PREFERENCE this PyAV
    build has (then ``path`` must be a container H.264 goes into)."""
    if codec is None:
        check_writable_video(path)
    for name in (codec,) if codec else ENCODER_PREFERENCE:
        try:
            return av.codec.Codec(name, "w").name
        except _AV_ERRORS:
            continue
    wanted = codec or " / ".join(ENCODER_PREFERENCE)
    raise VideoError(path, f"no {wanted} encoder in this PyAV build")


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor | np.ndarray,
    fps: float,
    *,
    crf: int = 18,
    codec: str | None = None,
    preset: str = "medium",
) -> Path:
    """Encode frames to a yuv420p video, atomically.

    The file is written next to ``path`` under a hidden temporary name and moved into place with
    ``os.replace`` only when complete, so an interrupted run never leaves a truncated video that
    a later evaluation would silently read. Odd sizes are edge-padded to even (yuv420p needs
    even dimensions).

    :param path: destination; its suffix picks the container (``.mp4``, ``.mkv``, ``.avi``...).
    :param frames: float ``(3, T, H, W)`` in [-1, 1] (model layout) or uint8 ``(T, H, W, 3)``.
    :param fps: frame rate of the written video.
    :param crf: x264 constant rate factor (lower = better; 18 is visually lossless). For other
        encoders it is mapped to a comparable fixed quantiser.
    :param codec: encoder name; ``None`` picks the first available of ``ENCODER_PREFERENCE``
        (libx264, any other H.264 encoder, then mpeg4).
    :param preset: x264 speed/size preset.
    :return: ``Path(path)``.
    :raises InputError: frames have the wrong shape/dtype or are not finite.
    :raises VideoError: no encoder, unknown container suffix, or an encoding/IO failure.
    """
    rgb = _to_uint8_frames(frames)
    if rgb.shape[0] == 0:
        raise InputError("cannot write a video with zero frames")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    _, h, w, _ = rgb.shape
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    dest = Path(path)
    if not dest.parent.is_dir():
        raise VideoError(path, f"directory {dest.parent} does not exist")
    encoder = _pick_encoder(path, codec)
    tmp = dest.with_name(f".{dest.stem}.{secrets.token_hex(4)}.partial{dest.suffix}")
    try:
        with av.open(os.fspath(tmp), mode="w") as out:
            stream: Any = out.add_stream(encoder, rate=as_fraction(fps))
            stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
            if encoder == "libx264":
                stream.options = {"crf": str(crf), "preset": preset}
            else:  # fixed quantiser ~ crf: crf 18 -> q 3 (mpeg4 q ranges 1..31)
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = max(1, min(31, round(crf / 6))) * 118  # FF_QP2LAMBDA
            for i, image in enumerate(rgb):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))  # flush delayed (B-)frames
        os.replace(tmp, dest)
    except _AV_ERRORS as exc:
        raise VideoError(path, f"cannot write video with {encoder} ({_reason(exc)})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest
