"""Writing a video incrementally: frames are encoded as they arrive, the file appears only when complete.

:func:`vidtok_kit.io.write_video` needs every frame at once; decoding an hour of tokens must not.
:class:`VideoWriter` encodes each chunk immediately (H.264, yuv420p, the same encoder choice and
quality mapping as ``write_video``), writes to a hidden temporary file beside the destination and
renames it into place on :meth:`VideoWriter.close`; an exception inside ``with`` deletes it, so no
partial video is ever left under the final name. A process killed outright cannot delete its
temporary file, so a writer clears the leftovers of earlier writers of the same destination
(``.<stem>.<hex>.partial<suffix>``) when it opens: the next run to that output cleans up.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.io.errors import VideoError
from vidtok_kit.io.policy import as_fraction
from vidtok_kit.io.video import _AV_ERRORS, _pick_encoder, _reason, _to_uint8_frames

__all__ = ["VideoWriter"]


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(frames)`` for chunks of ``(3, t, H, W)`` in [-1, 1].

    :param path: destination; its suffix picks the container.
    :param fps: frame rate.
    :param crf: x264 constant rate factor (other encoders: a comparable fixed quantiser).
    :param codec: encoder name; None picks libx264, another H.264 encoder, then mpeg4.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, *, crf: int = 18, codec: str | None = None, preset: str = "medium") -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {fps!r}")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise VideoError(path, f"directory {self.path.parent} does not exist")
        self.fps, self.crf, self.preset = fps, crf, preset
        self.encoder = _pick_encoder(path, codec)
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial{self.path.suffix}")
        self._clear_leftovers()
        self._out: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def _clear_leftovers(self) -> None:
        """Remove the temporary files of earlier, killed writers of this destination (only those:
        the name pattern is ours, and a file still growing — less than a minute old — is left alone,
        in case another process writes the same output right now)."""
        pattern = re.compile(rf"\.{re.escape(self.path.stem)}\.[0-9a-f]{{8}}\.partial{re.escape(self.path.suffix)}")
        for old in self.path.parent.glob(f".{self.path.stem}.*.partial{self.path.suffix}"):
            try:
                if pattern.fullmatch(old.name) and time.time() - old.stat().st_mtime > 60:
                    old.unlink()
            except OSError:
                pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        try:
            self._out = av.open(os.fspath(self._tmp), mode="w")
            stream: Any = self._out.add_stream(self.encoder, rate=as_fraction(self.fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if self.encoder == "libx264":
                stream.options = {"crf": str(self.crf), "preset": self.preset}
            else:
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = max(1, min(31, round(self.crf / 6))) * 118
        except _AV_ERRORS as exc:
            self.abort()
            raise VideoError(self.path, f"cannot write video with {self.encoder} ({_reason(exc)})") from exc
        self._stream = stream
        self._size = (height, width)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Encode ``(3, t, H, W)`` float frames in [-1, 1] (or uint8 ``(t, H, W, 3)``) now."""
        rgb = _to_uint8_frames(frames)
        if rgb.shape[0] == 0:
            return
        _, h, w, _ = rgb.shape
        if h % 2 or w % 2:  # yuv420p needs even sizes: edge-pad like write_video
            rgb = np.pad(rgb, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._out is None:
            self._open(rgb.shape[1], rgb.shape[2])
        elif rgb.shape[1:3] != self._size:
            raise InputError(f"{self.path}: frame size changed from {self._size} to {rgb.shape[1:3]} while writing")
        try:
            for image in rgb:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = self.frames
                self._out.mux(self._stream.encode(frame))
                self.frames += 1
        except _AV_ERRORS as exc:
            self.abort()
            raise VideoError(self.path, f"cannot write video with {self.encoder} ({_reason(exc)})") from exc

    def close(self) -> Path:
        """Flush the encoder and move the finished file into place."""
        if self._out is None:
            self.abort()
            raise InputError(f"{self.path}: no frames to write")
        try:
            self._out.mux(self._stream.encode(None))
            self._out.close()
            self._out = None
            os.replace(self._tmp, self.path)
        except _AV_ERRORS as exc:
            self.abort()
            raise VideoError(self.path, f"cannot write video with {self.encoder} ({_reason(exc)})") from exc
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._out is not None:
            try:
                self._out.close()
            except _AV_ERRORS:
                pass
            self._out = None
        self._tmp.unlink(missing_ok=True)
