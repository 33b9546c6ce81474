"""Small time-axis buffers of the streaming engine: re-chunking a frame stream, and cross-fading windows.

Inputs arrive in whatever chunks a video reader produces; a model step needs a specific number of
frames (a multiple of the temporal factor). :class:`FrameQueue` holds at most one step's worth of
frames plus one reader chunk, which is what keeps memory flat in video length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from vidtok_kit.errors import InputError

__all__ = ["Crossfade", "FrameQueue", "crossfade_weights"]


class FrameQueue:
    """Frames (dim 2) pulled lazily from an iterator of (B, C, t, ...) chunks, handed out in any sizes."""

    def __init__(self, chunks: Iterable[Tensor], *, what: str = "frames") -> None:
        self._it: Iterator[Tensor] = iter(chunks)
        self._parts: deque[Tensor] = deque()
        self._what = what
        self.count = 0  #: frames currently buffered
        self.pulled = 0  #: frames received from the iterator so far
        self.exhausted = False  #: the iterator has ended
        self.last: Tensor | None = None  #: the most recent frame received, (B, C, 1, ...)
        self._shape: tuple[int, ...] | None = None

    def fill(self, n: int) -> bool:
        """Pull chunks until ``n`` frames are buffered or the iterator ends; True if ``n`` are there."""
        while self.count < n and not self.exhausted:
            try:
                chunk = next(self._it)
            except StopIteration:
                self.exhausted = True
                break
            self._check(chunk)
            if chunk.shape[2] == 0:
                continue
            self._parts.append(chunk)
            self.count += chunk.shape[2]
            self.pulled += chunk.shape[2]
            self.last = chunk[:, :, -1:]
        return self.count >= n

    def _check(self, chunk: Tensor) -> None:
        if not isinstance(chunk, Tensor) or chunk.ndim != 5:
            shape = tuple(chunk.shape) if isinstance(chunk, Tensor) else type(chunk).__name__
            raise InputError(f"streamed {self._what} must be 5-D (B, C, t, H, W) tensors, got {shape}")
        other = (*chunk.shape[:2], *chunk.shape[3:])  # everything but time: (B, C, H, W)
        if self._shape is None:
            self._shape = other
        elif other != self._shape:
            raise InputError(
                f"streamed {self._what} changed shape: {tuple(chunk.shape)} after chunks of (B, C, H, W) = {self._shape}"
            )

    def peek(self) -> Tensor:
        """The first buffered frame (B, C, 1, ...), without removing it (call :meth:`fill` first)."""
        if not self._parts:
            raise IndexError("the frame queue is empty")
        return self._parts[0][:, :, :1]

    def take(self, n: int) -> Tensor | None:
        """Remove and return up to ``n`` buffered frames (call :meth:`fill` first); None if empty."""
        if self.count == 0 or n <= 0:
            return None
        out: list[Tensor] = []
        need = n
        while need > 0 and self._parts:
            part = self._parts.popleft()
            if part.shape[2] > need:
                self._parts.appendleft(part[:, :, need:])
                part = part[:, :, :need]
            out.append(part)
            need -= part.shape[2]
        got = torch.cat(out, dim=2) if len(out) > 1 else out[0]
        self.count -= got.shape[2]
        return got

    def unshift(self, frames: Tensor) -> None:
        """Put frames back at the front (the overlap a next window re-reads)."""
        if frames.shape[2]:
            self._parts.appendleft(frames)
            self.count += frames.shape[2]


def crossfade_weights(length: int, margin: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Weight of the *later* window over an overlap of ``length`` frames.

    0 for the first ``margin`` frames (the later window's start is inexact there), 1 for the last
    ``margin`` (the earlier window's end is inexact there), a linear ramp in between. With
    ``margin`` >= the receptive radius both windows are exact wherever both are used.
    """
    margin = max(0, min(margin, (length - 1) // 2))
    ramp = length - 2 * margin
    w = torch.zeros(length, dtype=dtype)
    w[:margin] = 0.0
    w[margin : margin + ramp] = torch.arange(1, ramp + 1, dtype=torch.float64).div(ramp + 1).to(dtype)
    w[margin + ramp :] = 1.0
    return w


class Crossfade:
    """Joins overlapping window outputs along time (dim 2) into one seamless stream."""

    def __init__(self, overlap: int, margin: int) -> None:
        self.overlap = overlap
        self.margin = margin
        self._pending: Tensor | None = None

    def push(self, y: Tensor, *, last: bool) -> Tensor:
        """Add a window's output (whose first ``overlap`` frames repeat the previous window's last);
        return the frames that are now final."""
        if self._pending is not None:
            o = self._pending.shape[2]
            w = crossfade_weights(o, self.margin, dtype=torch.float32).to(y.device)
            w = w.view(1, 1, o, *([1] * (y.ndim - 3)))
            head = self._pending.float() * (1 - w) + y[:, :, :o].float() * w
            y = torch.cat([head.to(y.dtype), y[:, :, o:]], dim=2)
            self._pending = None
        if last or self.overlap == 0:
            return y
        keep = max(0, y.shape[2] - self.overlap)
        self._pending = y[:, :, keep:]
        return y[:, :, :keep]
