"""The streaming engine: frame chunks in, latent chunks out, and back, for videos of any length.

* Causal models run step by step (:mod:`vidtok_kit.stream.steps`), carrying the explicit state,
  so the result does not depend on the chunk size: it equals a whole-clip run (to float rounding).
* Non-causal models run overlapping windows joined by a cross-fade that keeps a receptive-radius
  margin (:mod:`vidtok_kit.stream.windows`): exact when the overlap covers twice the radius.
* Frames too large for the memory budget are tiled spatially (:mod:`vidtok_kit.stream.tiles`).

Frame bookkeeping follows :mod:`vidtok_kit.model.frames`: the clip is front-padded with copies of
frame 0 (``front_pad``) and, where its length does not fit the model's rule, tail-padded with
copies of the last frame (``tail_pad``, the reference evaluation's rule); decoding drops both.
A v1.1 clip's front padding depends on its length, so pass ``num_frames`` for a result equal to
``model.encode`` of the whole clip; without it the stream assumes ``1 + k * tdf`` frames and
tail-pads the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.stream.backend import EncodedChunk, StepBackend
from vidtok_kit.stream.budget import DEFAULT_MAX_MEMORY, StreamPlan
from vidtok_kit.stream.buffers import Crossfade, FrameQueue
from vidtok_kit.stream.tiles import TileGrid

__all__ = ["EncodedChunk", "StreamingDecoder", "StreamingEncoder", "WHOLE"]

#: ``chunk_frames`` / ``chunk_latents`` value meaning "the whole stream in one step"
WHOLE = -1


class _Streamer:
    """Shared options: chunking, memory budget, tiling, windows, devices."""

    which: str = ""

    def __init__(
        self,
        backend: StepBackend,
        *,
        chunk: int | None,
        max_memory: int | None,
        tile: int | None,
        tile_overlap: int | None,
        overlap: int | None,
        output_device: Any,
        sample: bool = False,
    ) -> None:
        self.backend = backend
        self.facts = backend.facts
        self.output_device = torch.device(output_device)
        self.sample = sample
        self._chunk, self._max_memory, self._tile, self._tile_overlap = chunk, max_memory, tile, tile_overlap
        self._overlap = overlap
        self.plan: StreamPlan | None = None  #: the chunking used, set when the stream starts
        self.radius: int | None = None  #: receptive radius (non-causal windows), set when the stream starts

    def _make_plan(self, height: int, width: int) -> tuple[StreamPlan, TileGrid]:
        sf = self.facts.spatial_factor
        up, down, align = (1, sf, sf) if self.which == "encode" else (sf, 1, 1)
        if self._chunk is not None:  # sizes given: no budget involved
            auto = StreamPlan(chunk=self._chunk)
        else:
            auto = self.backend.plan(height, width, self.which, max_memory=self._max_memory or DEFAULT_MAX_MEMORY,  # type: ignore[arg-type]
                                     total=self._total())
        chunk = auto.chunk
        tile = self._tile if self._tile is not None else auto.tile
        if tile is not None and not self.backend.tiles:
            raise InputError(f"{self.backend!r} runs whole frames only: no spatial tiles")
        overlap = self._tile_overlap if self._tile_overlap is not None else (auto.tile_overlap or 4 * align)
        if tile is not None and (tile % align or overlap % align or not 0 <= overlap < tile):
            raise InputError(f"tile {tile} and tile overlap {overlap} must be multiples of {align} with overlap < tile")
        plan = StreamPlan(chunk=chunk, tile=tile, tile_overlap=overlap if tile else 0, estimated_bytes=auto.estimated_bytes)
        grid = TileGrid(height=height, width=width, tile=tile or max(height, width), overlap=plan.tile_overlap,
                        align=align, up=up, down=down)
        return plan, grid

    def _window_overlap(self, window: int) -> tuple[int, int]:
        """(overlap, margin) for non-causal windows of ``window`` input units (frames / latents).

        Default overlap: two receptive radii plus one latent each side (exact), but at most half
        the window, so overlapping never more than doubles the compute; pass ``overlap`` (or a
        larger window) to trade speed for exactness.
        """
        self.radius = self.backend.temporal_radius(self.which)  # type: ignore[arg-type]
        unit = self.facts.temporal_factor if self.which == "encode" else 1  # input units per latent
        out_per_unit = 1 if self.which == "encode" else self.facts.temporal_factor
        radius_units = -(-self.radius // out_per_unit)
        want = self._overlap if self._overlap is not None else min((2 * radius_units + 2) * unit, window // 2)
        overlap = min(want, window - unit) // unit * unit
        return max(0, overlap), self.radius

    def _total(self) -> int | None:
        """The stream's whole length in input units (padded frames / latents), when known."""
        return None

    def _whole(self, queue: FrameQueue, chunk: int) -> int:
        """``chunk``, or the whole stream's length when :data:`WHOLE` was asked (it is read now)."""
        if chunk != WHOLE:
            return chunk
        while queue.fill(queue.count + 1):
            pass
        return max(queue.count, 1)

    def _out(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        return x.to(device=self.output_device, dtype=dtype or x.dtype)


class StreamingEncoder(_Streamer):
    """Encodes an iterator of frame chunks (B, C, t, H, W) in [-1, 1] into latent chunks.

    :param backend: what runs the steps (see :mod:`vidtok_kit.stream.backend`); a
        :class:`~vidtok_kit.tokenizer.Tokenizer` makes one with ``tok.streaming_encoder(...)``.
    :param num_frames: total frames, if known; required for a v1.1 result equal to a whole-clip
        encode when the length is not ``1 + k * tdf`` (its front padding depends on the length).
        With no chunk size given, a stream that fits ``max_memory`` whole then runs as one step.
    :param chunk_frames: input frames per step (a multiple of the temporal factor) or, for
        non-causal models, per window; :data:`WHOLE` = the whole stream in one step; default:
        chosen from ``max_memory``. The first step is a chunk including the front padding.
    :param max_memory: memory budget in bytes for choosing chunk and tile sizes.
    :param tile: spatial tile side in pixels (a multiple of the spatial factor); None = whole frame
        (or tiles chosen from the budget when no chunk size is given).
    :param overlap: non-causal window overlap in frames; default: twice the receptive radius
        (exact), at most half the window.
    :param sample: encode with a posterior sample where the regularizer is stochastic (KL).

    After the stream ends, ``frames``, ``front_pad``, ``tail_pad`` and ``latent_frames`` describe it.
    """

    which = "encode"

    def __init__(
        self,
        backend: StepBackend,
        *,
        num_frames: int | None = None,
        chunk_frames: int | None = None,
        max_memory: int | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        overlap: int | None = None,
        output_device: Any = "cpu",
        sample: bool = False,
    ) -> None:
        super().__init__(backend, chunk=chunk_frames, max_memory=max_memory, tile=tile, tile_overlap=tile_overlap,
                         overlap=overlap, output_device=output_device, sample=sample)
        tdf, mode = self.facts.temporal_factor, self.facts.mode
        if chunk_frames is not None and chunk_frames != WHOLE and (chunk_frames < 1 or chunk_frames % tdf):
            raise InputError(f"chunk_frames must be a positive multiple of the temporal factor {tdf}, got {chunk_frames}")
        if num_frames is not None and num_frames < 1:
            raise InputError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        if mode is TimeMode.CAUSAL_V1_1 and num_frames is not None:
            self.front_pad = frame_rules.front_padding(num_frames, tdf=tdf, mode=mode)
        else:
            self.front_pad = tdf - 1 if mode.causal else 0
        self.tail_pad = 0
        self.frames = 0
        self.latent_frames = 0

    def __call__(self, chunks: Iterable[Tensor]) -> Iterator[EncodedChunk]:
        return self._run(chunks)

    def _run(self, chunks: Iterable[Tensor]) -> Iterator[EncodedChunk]:
        queue = FrameQueue(chunks, what="frames")
        if not queue.fill(1):
            raise InputError("no frames to encode")
        head = queue.peek()
        self._check(head)
        self.plan, grid = self._make_plan(head.shape[3], head.shape[4])
        encoded = self._causal(queue, grid) if self.facts.mode.causal else self._windows(queue, grid)
        for chunk in encoded:
            self.latent_frames += chunk.latent.shape[2]
            indices = self._out(chunk.indices) if chunk.indices is not None else None
            yield EncodedChunk(self._out(chunk.latent, torch.float32), indices)
        self.frames = queue.pulled
        if self.num_frames is not None and self.frames != self.num_frames:
            raise InputError(f"the stream had {self.frames} frames but num_frames={self.num_frames} was given")

    def _check(self, frame: Tensor) -> None:
        facts = self.facts
        sf = facts.spatial_factor
        if frame.shape[1] != facts.in_channels:
            raise InputError(f"expected {facts.in_channels} channels in dim 1 of (B, C, T, H, W), got {frame.shape[1]}")
        if frame.shape[3] % sf or frame.shape[4] % sf:
            raise InputError(f"height and width must be multiples of {sf} (the spatial factor), got {frame.shape[3]}x{frame.shape[4]}")
        if not frame.is_floating_point():
            raise InputError(f"expected floating-point frames in [-1, 1], got dtype {frame.dtype}")

    def _total(self) -> int | None:
        return None if self.num_frames is None else self.num_frames + self.front_pad

    def _pad_tail(self, x: Tensor) -> Tensor:
        """A short last chunk padded with copies of its last frame (the reference evaluation's rule)."""
        rem = x.shape[2] % self.facts.temporal_factor
        if rem == 0:
            return x
        self.tail_pad = self.facts.temporal_factor - rem
        return frame_rules.repeat_edges(x, back=self.tail_pad)

    def _causal(self, queue: FrameQueue, grid: TileGrid) -> Iterator[EncodedChunk]:
        chunk = self._whole(queue, self.plan.chunk)  # type: ignore[union-attr]
        if self.plan.chunk == WHOLE:  # type: ignore[union-attr]
            chunk = -(-(chunk + self.front_pad) // self.facts.temporal_factor) * self.facts.temporal_factor
        states: list[list[Tensor] | None] = [None] * len(grid)
        first, want = True, chunk - self.front_pad  # the first step's chunk includes the front padding
        while True:
            queue.fill(want + 1)
            x = queue.take(want)
            if x is None:
                return
            final = queue.count == 0 and queue.exhausted
            front = self.front_pad if first else 0
            x = self._pad_tail(frame_rules.repeat_edges(x, front=front))
            yield self._encode_tiles(grid, states, self.backend.prepare(x), final=final, front_pad=front)
            if final:
                return
            first, want = False, chunk

    def _encode_tiles(self, grid: TileGrid, states: list[list[Tensor] | None], x: Tensor, *, final: bool,
                      front_pad: int) -> EncodedChunk:
        """One step over every tile; the blended encoder output goes through the regularizer once."""

        def step(i: int, tile: Tensor) -> Any:
            h, states[i] = self.backend.encode_step(tile, states[i], final=final, front_pad=front_pad)
            return h

        return self.backend.regularize(grid.run(step, x), sample=self.sample)

    def _windows(self, queue: FrameQueue, grid: TileGrid) -> Iterator[EncodedChunk]:
        tdf = self.facts.temporal_factor
        window = self._whole(queue, self.plan.chunk)  # type: ignore[union-attr]
        if self.plan.chunk == WHOLE:  # type: ignore[union-attr]
            window = -(-window // tdf) * tdf
        queue.fill(window + 1)
        if queue.count <= window and queue.exhausted:  # the whole clip is one window
            x = queue.take(window)
            assert x is not None
            yield self._encode_tiles(grid, [None] * len(grid), self.backend.prepare(self._pad_tail(x)), final=True, front_pad=0)
            return
        if not self.backend.windows:
            raise InputError(f"{self.backend!r} encodes a non-causal clip only whole: raise the chunk size to the clip's length")
        overlap, margin = self._window_overlap(window)
        fade = Crossfade(overlap // tdf, margin)
        while True:
            queue.fill(window + 1)
            x = queue.take(window)
            if x is None:
                return
            last = queue.count == 0
            h = grid.run(lambda i, tile: self.backend.encode_step(tile, None, final=True)[0], self.backend.prepare(self._pad_tail(x)))
            out = fade.push(h, last=last)
            if out.shape[2]:
                yield self.backend.regularize(out, sample=self.sample)
            if last:
                return
            queue.unshift(x[:, :, window - overlap :])


class StreamingDecoder(_Streamer):
    """Decodes an iterator of latent chunks (B, z, n, h, w), or integer token chunks (B, n, h, w), into frames.

    :param backend: what runs the steps; a :class:`~vidtok_kit.tokenizer.Tokenizer` makes one
        with ``tok.streaming_decoder(...)``.
    :param front_pad: leading decoded frames to drop (the encoder's ``front_pad``); default: the
        model's convention (``tdf - 1`` for causal models).
    :param num_frames: frames to keep after ``front_pad`` (drops the encoder's tail padding);
        None keeps all.
    :param chunk_latents: latents per step (or per window for non-causal models); :data:`WHOLE`
        = the whole stream in one step; default: from ``max_memory``. A v1.1 stream's first step
        takes at least 3 latents.
    :param total_latents: the stream's length, when known: with no chunk size given, a stream
        that fits ``max_memory`` whole then runs as one step (a whole clip is fastest).
    :param tile: spatial tile side in latents; :param overlap: non-causal window overlap in latents
        (default as for :class:`StreamingEncoder`).

    Yields float32 frame chunks (B, C, t, H, W) on ``output_device``.
    """

    which = "decode"

    def __init__(
        self,
        backend: StepBackend,
        *,
        front_pad: int | None = None,
        num_frames: int | None = None,
        chunk_latents: int | None = None,
        total_latents: int | None = None,
        max_memory: int | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        overlap: int | None = None,
        output_device: Any = "cpu",
    ) -> None:
        super().__init__(backend, chunk=chunk_latents, max_memory=max_memory, tile=tile, tile_overlap=tile_overlap,
                         overlap=overlap, output_device=output_device)
        if chunk_latents is not None and chunk_latents != WHOLE and chunk_latents < 1:
            raise InputError(f"chunk_latents must be >= 1, got {chunk_latents}")
        tdf = self.facts.temporal_factor
        self.front_pad = front_pad if front_pad is not None else (tdf - 1 if self.facts.mode.causal else 0)
        self.num_frames = num_frames
        self.total_latents = total_latents
        self.frames = 0  #: frames yielded so far
        self._position = 0

    def __call__(self, latents: Iterable[Tensor]) -> Iterator[Tensor]:
        return self._run(latents)

    def _total(self) -> int | None:
        return self.total_latents

    def _latents(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        facts = self.facts
        for z in chunks:
            if isinstance(z, Tensor) and z.ndim == 4 and not z.is_floating_point():
                if not facts.discrete:
                    raise InputError("integer tokens given to a continuous model: decode latents instead")
                z = self.backend.indices_to_latent(z)
            elif isinstance(z, Tensor) and z.ndim == 5 and z.shape[1] != facts.z_channels:
                raise InputError(f"expected latents of shape (B, {facts.z_channels}, n, h, w), got {tuple(z.shape)}")
            yield z

    def _run(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        queue = FrameQueue(self._latents(chunks), what="latents")
        if not queue.fill(1):
            raise InputError("no latents to decode")
        head = queue.peek()
        self.plan, grid = self._make_plan(head.shape[3], head.shape[4])
        frames = self._causal(queue, grid) if self.facts.mode.causal else self._windows(queue, grid)
        for y in frames:
            kept = self._crop(y)
            if kept is not None:
                self.frames += kept.shape[2]
                yield self._out(kept, torch.float32)

    def _crop(self, y: Tensor) -> Tensor | None:
        start = self._position
        self._position += y.shape[2]
        lo = max(0, self.front_pad - start)
        hi = y.shape[2] if self.num_frames is None else min(y.shape[2], self.front_pad + self.num_frames - start)
        return y[:, :, lo:hi] if hi > lo else None

    def _decode_tiles(self, grid: TileGrid, states: list[list[Tensor] | None], z: Tensor, *, final: bool) -> Tensor:
        def step(i: int, tile: Tensor) -> Tensor:
            frames, states[i] = self.backend.decode_step(tile, states[i], final=final)
            return frames

        return grid.run(step, self.backend.prepare(z))

    def _causal(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        chunk = self._whole(queue, self.plan.chunk)  # type: ignore[union-attr]
        states: list[list[Tensor] | None] = [None] * len(grid)
        want = frame_rules.first_step_latents(self.facts.mode, chunk)
        while True:
            queue.fill(want + 1)
            z = queue.take(want)
            if z is None:
                return
            final = queue.count == 0
            yield self._decode_tiles(grid, states, z, final=final)
            if final:
                return
            want = chunk

    def _windows(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        tdf = self.facts.temporal_factor
        window = self._whole(queue, self.plan.chunk)  # type: ignore[union-attr]
        queue.fill(window + 1)
        if queue.count <= window and queue.exhausted:  # the whole clip is one window
            z = queue.take(window)
            assert z is not None
            yield self._decode_tiles(grid, [None] * len(grid), z, final=True)
            return
        if not self.backend.windows:
            raise InputError(f"{self.backend!r} decodes a non-causal clip only whole: raise the chunk size to the clip's length")
        overlap, margin = self._window_overlap(window)
        fade = Crossfade(overlap * tdf, margin)
        while True:
            queue.fill(window + 1)
            z = queue.take(window)
            if z is None:
                return
            last = queue.count == 0
            y = grid.run(lambda i, tile: self.backend.decode_step(tile, None, final=True)[0], self.backend.prepare(z))
            out = fade.push(y, last=last)
            if out.shape[2]:
                yield out
            if last:
                return
            queue.unshift(z[:, :, window - overlap :])
