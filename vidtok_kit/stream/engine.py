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
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.stream.budget import (
    DEFAULT_MAX_MEMORY,
    MAX_CHUNK_FRAMES,
    MAX_WINDOW_FRAMES,
    StreamPlan,
    plan_stream,
)
from vidtok_kit.stream.buffers import Crossfade, FrameQueue
from vidtok_kit.stream.steps import decode_step, encode_step, first_step_latents
from vidtok_kit.stream.tiles import TileGrid
from vidtok_kit.stream.windows import temporal_radius

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["EncodedChunk", "StreamingDecoder", "StreamingEncoder", "decode_stream", "encode_stream"]


class EncodedChunk(NamedTuple):
    #: (B, z, t', h', w') float32 latents, what the decoder takes
    latent: Tensor
    #: (B, t', h', w') integer tokens for discrete models, else None
    indices: Tensor | None


class _Streamer:
    """Shared options: chunking, memory budget, tiling, windows, devices."""

    which: str = ""

    def __init__(
        self,
        model: VideoTokenizer,
        *,
        chunk: int | None,
        max_memory: int | None,
        tile: int | None,
        tile_overlap: int | None,
        overlap: int | None,
        output_device: Any,
    ) -> None:
        self.model = model
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.output_device = torch.device(output_device)
        self._chunk, self._max_memory, self._tile, self._tile_overlap = chunk, max_memory, tile, tile_overlap
        self._overlap = overlap
        self.plan: StreamPlan | None = None  #: the chunking used, set when the stream starts
        self.radius: int | None = None  #: receptive radius (non-causal windows), set when the stream starts

    def _make_plan(self, height: int, width: int) -> tuple[StreamPlan, TileGrid]:
        model, sf = self.model, self.model.spatial_factor
        up, down, align = (1, sf, sf) if self.which == "encode" else (sf, 1, 1)
        if self._chunk is not None:  # sizes given: no budget involved
            auto = StreamPlan(chunk=self._chunk)
        else:
            auto = plan_stream(
                model, height, width, self.which,  # type: ignore[arg-type]
                max_memory=self._max_memory or DEFAULT_MAX_MEMORY, itemsize=self.dtype.itemsize,
                max_frames=MAX_CHUNK_FRAMES if model.mode.causal else MAX_WINDOW_FRAMES,
            )
        chunk = auto.chunk
        tile = self._tile if self._tile is not None else auto.tile
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
        self.radius = temporal_radius(self.model, self.which)  # type: ignore[arg-type]
        unit = self.model.temporal_factor if self.which == "encode" else 1  # input units per latent
        out_per_unit = 1 if self.which == "encode" else self.model.temporal_factor
        radius_units = -(-self.radius // out_per_unit)
        want = self._overlap if self._overlap is not None else min((2 * radius_units + 2) * unit, window // 2)
        overlap = min(want, window - unit) // unit * unit
        return max(0, overlap), self.radius

    def _to_model(self, x: Tensor) -> Tensor:
        return x.to(device=self.device, dtype=self.dtype)


class StreamingEncoder(_Streamer):
    """Encodes an iterator of frame chunks (B, C, t, H, W) in [-1, 1] into latent chunks.

    :param num_frames: total frames, if known; required for a v1.1 result equal to ``model.encode``
        when the length is not ``1 + k * tdf`` (its front padding depends on the length).
    :param chunk_frames: input frames per step (a multiple of the temporal factor) or, for
        non-causal models, per window; default: chosen from ``max_memory``.
    :param max_memory: memory budget in bytes for choosing chunk and tile sizes.
    :param tile: spatial tile side in pixels (a multiple of the spatial factor); None = whole frame
        (or tiles chosen from the budget when no chunk size is given).
    :param overlap: non-causal window overlap in frames; default: twice the receptive radius
        (exact), at most half the window.

    After the stream ends, ``frames``, ``front_pad``, ``tail_pad`` and ``latent_frames`` describe it.
    """

    which = "encode"

    def __init__(
        self,
        model: VideoTokenizer,
        *,
        num_frames: int | None = None,
        chunk_frames: int | None = None,
        max_memory: int | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        overlap: int | None = None,
        output_device: Any = "cpu",
    ) -> None:
        super().__init__(model, chunk=chunk_frames, max_memory=max_memory, tile=tile, tile_overlap=tile_overlap,
                         overlap=overlap, output_device=output_device)
        tdf, mode = model.temporal_factor, model.mode
        if chunk_frames is not None and (chunk_frames < 1 or chunk_frames % tdf):
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
        model = self.model
        queue = FrameQueue(chunks, what="frames")
        if not queue.fill(1):
            raise InputError("no frames to encode")
        head = queue.peek()
        self._check(head)
        self.plan, grid = self._make_plan(head.shape[3], head.shape[4])
        hs = self._causal(queue, grid) if model.mode.causal else self._windows(queue, grid)
        for h in hs:
            with torch.no_grad():
                reg = model.regularizer(h)
            self.latent_frames += h.shape[2]
            indices = reg.indices.to(self.output_device) if reg.indices is not None else None
            yield EncodedChunk(reg.latent.to(self.output_device), indices)
        self.frames = queue.pulled
        if self.num_frames is not None and self.frames != self.num_frames:
            raise InputError(f"the stream had {self.frames} frames but num_frames={self.num_frames} was given")

    def _check(self, frame: Tensor) -> None:
        cfg, sf = self.model.config, self.model.spatial_factor
        if frame.shape[1] != cfg.in_channels:
            raise InputError(f"expected {cfg.in_channels} channels in dim 1 of (B, C, T, H, W), got {frame.shape[1]}")
        if frame.shape[3] % sf or frame.shape[4] % sf:
            raise InputError(f"height and width must be multiples of {sf} (the spatial factor), got {frame.shape[3]}x{frame.shape[4]}")
        if not frame.is_floating_point():
            raise InputError(f"expected floating-point frames in [-1, 1], got dtype {frame.dtype}")

    def _pad_tail(self, x: Tensor) -> Tensor:
        rem = x.shape[2] % self.model.temporal_factor
        if rem == 0:
            return x
        pad = self.model.temporal_factor - rem
        self.tail_pad = pad
        return torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)

    def _causal(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        tdf, chunk = self.model.temporal_factor, self.plan.chunk  # type: ignore[union-attr]
        states: list[list[Tensor] | None] = [None] * len(grid)

        def step(i: int, tile: Tensor) -> Tensor:
            out = encode_step(self.model, tile, states[i])
            states[i] = out.state
            return out.h

        first, want = True, tdf - self.front_pad  # the first step is frame 0's group: tdf frames once padded
        while True:
            queue.fill(want)
            x = queue.take(want)
            if x is None:
                return
            if first and self.front_pad:
                x = torch.cat([x[:, :, :1].expand(-1, -1, self.front_pad, -1, -1), x], dim=2)
            x = self._pad_tail(x)
            with torch.no_grad():
                yield grid.run(step, self._to_model(x))
            first, want = False, chunk

    def _windows(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        tdf, window = self.model.temporal_factor, self.plan.chunk  # type: ignore[union-attr]
        overlap, margin = self._window_overlap(window)
        fade = Crossfade(overlap // tdf, margin)
        while True:
            queue.fill(window + 1)
            x = queue.take(window)
            if x is None:
                return
            last = queue.count == 0
            with torch.no_grad():
                h = grid.run(lambda i, tile: self.model.encoder(tile), self._to_model(self._pad_tail(x)))
            out = fade.push(h, last=last)
            if out.shape[2]:
                yield out
            if last:
                return
            queue.unshift(x[:, :, window - overlap :])


class StreamingDecoder(_Streamer):
    """Decodes an iterator of latent chunks (B, z, n, h, w), or integer token chunks (B, n, h, w), into frames.

    :param front_pad: leading decoded frames to drop (the encoder's ``front_pad``); default: the
        model's convention (``tdf - 1`` for causal models, as :meth:`VideoTokenizer.decode`).
    :param num_frames: frames to keep after ``front_pad`` (drops the encoder's tail padding);
        None keeps all.
    :param chunk_latents: latents per step (or per window for non-causal models); default: from
        ``max_memory``. A v1.1 stream's first step takes at least 3 latents.
    :param tile: spatial tile side in latents; :param overlap: non-causal window overlap in latents
        (default as for :class:`StreamingEncoder`).

    Yields float32 frame chunks (B, C, t, H, W) on ``output_device``.
    """

    which = "decode"

    def __init__(
        self,
        model: VideoTokenizer,
        *,
        front_pad: int | None = None,
        num_frames: int | None = None,
        chunk_latents: int | None = None,
        max_memory: int | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        overlap: int | None = None,
        output_device: Any = "cpu",
    ) -> None:
        super().__init__(model, chunk=chunk_latents, max_memory=max_memory, tile=tile, tile_overlap=tile_overlap,
                         overlap=overlap, output_device=output_device)
        if chunk_latents is not None and chunk_latents < 1:
            raise InputError(f"chunk_latents must be >= 1, got {chunk_latents}")
        tdf = model.temporal_factor
        self.front_pad = front_pad if front_pad is not None else (tdf - 1 if model.mode.causal else 0)
        self.num_frames = num_frames
        self.frames = 0  #: frames yielded so far
        self._position = 0

    def __call__(self, latents: Iterable[Tensor]) -> Iterator[Tensor]:
        return self._run(latents)

    def _latents(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        reg = self.model.regularizer
        for z in chunks:
            if isinstance(z, Tensor) and z.ndim == 4 and not z.is_floating_point():
                if not self.model.discrete:
                    raise InputError("integer tokens given to a continuous model: decode latents instead")
                z = reg.indices_to_latent(z)
            elif isinstance(z, Tensor) and z.ndim == 5 and z.shape[1] != self.model.config.z_channels:
                raise InputError(f"expected latents of shape (B, {self.model.config.z_channels}, n, h, w), got {tuple(z.shape)}")
            yield z

    def _run(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        queue = FrameQueue(self._latents(chunks), what="latents")
        if not queue.fill(1):
            raise InputError("no latents to decode")
        head = queue.peek()
        self.plan, grid = self._make_plan(head.shape[3], head.shape[4])
        frames = self._causal(queue, grid) if self.model.mode.causal else self._windows(queue, grid)
        for y in frames:
            kept = self._crop(y)
            if kept is not None:
                self.frames += kept.shape[2]
                yield kept.to(device=self.output_device, dtype=torch.float32)

    def _crop(self, y: Tensor) -> Tensor | None:
        start = self._position
        self._position += y.shape[2]
        lo = max(0, self.front_pad - start)
        hi = y.shape[2] if self.num_frames is None else min(y.shape[2], self.front_pad + self.num_frames - start)
        return y[:, :, lo:hi] if hi > lo else None

    def _causal(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        chunk = self.plan.chunk  # type: ignore[union-attr]
        states: list[list[Tensor] | None] = [None] * len(grid)
        want = first_step_latents(self.model, chunk)
        while True:
            queue.fill(want + 1)
            z = queue.take(want)
            if z is None:
                return
            final = queue.count == 0

            def step(i: int, tile: Tensor, final: bool = final) -> Tensor:
                out = decode_step(self.model, tile, states[i], final=final)
                states[i] = out.state
                return out.frames

            with torch.no_grad():
                yield grid.run(step, self._to_model(z))
            if final:
                return
            want = chunk

    def _windows(self, queue: FrameQueue, grid: TileGrid) -> Iterator[Tensor]:
        window, tdf = self.plan.chunk, self.model.temporal_factor  # type: ignore[union-attr]
        overlap, margin = self._window_overlap(window)
        fade = Crossfade(overlap * tdf, margin)
        while True:
            queue.fill(window + 1)
            z = queue.take(window)
            if z is None:
                return
            last = queue.count == 0
            with torch.no_grad():
                y = grid.run(lambda i, tile: self.model.decoder(tile), self._to_model(z))
            out = fade.push(y, last=last)
            if out.shape[2]:
                yield out
            if last:
                return
            queue.unshift(z[:, :, window - overlap :])


def encode_stream(model: VideoTokenizer, chunks: Iterable[Tensor], **options: Any) -> Iterator[EncodedChunk]:
    """``StreamingEncoder(model, **options)(chunks)``: latent chunks of a stream of frame chunks."""
    return StreamingEncoder(model, **options)(chunks)


def decode_stream(model: VideoTokenizer, latents: Iterable[Tensor], **options: Any) -> Iterator[Tensor]:
    """``StreamingDecoder(model, **options)(latents)``: frame chunks of a stream of latent chunks."""
    return StreamingDecoder(model, **options)(latents)
