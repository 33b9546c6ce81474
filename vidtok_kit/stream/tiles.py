"""Spatial tiling with overlap and blending, for frames too large to run through the model whole.

A frame is cut into a fixed grid of overlapping tiles (the grid never changes within a video, so a
causal stream keeps one :class:`~vidtok_kit.model.layers.StreamState` per tile). Tile outputs are
blended with linear ramps across each overlap and normalised by the summed weights, so there is no
hard seam. Tiling is an approximation: the mid attention sees the whole frame in a whole-frame
run but only its tile here, so tiled outputs differ from whole-frame ones (a few 1e-2 on random
weights); use it only when a frame does not fit the memory budget.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

__all__ = ["TileGrid", "axis_starts"]


def axis_starts(size: int, tile: int, overlap: int, align: int) -> list[int]:
    """Tile starts along one axis: stride ``tile - overlap``, the last tile flush with the end.

    ``size``, ``tile`` and ``overlap`` are in input units; starts are multiples of ``align``.
    """
    if tile >= size:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    last = (size - tile) // align * align
    if last < size - tile:
        raise ValueError(f"tile {tile} cannot end flush with size {size} on a grid of {align}")
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def _ramp(starts: list[int], tile: int, index: int) -> Tensor:
    """1-D blending weight of tile ``index`` (output units): linear ramps where neighbours overlap it."""
    s, e = starts[index], starts[index] + tile
    w = torch.ones(tile, dtype=torch.float32)
    if index > 0:
        left = starts[index - 1] + tile - s  # overlap with the previous tile
        if left > 0:
            w[:left] = torch.arange(1, left + 1, dtype=torch.float32) / (left + 1)
    if index + 1 < len(starts):
        right = e - starts[index + 1]  # overlap with the next tile
        if right > 0:
            down = torch.arange(right, 0, -1, dtype=torch.float32) / (right + 1)
            w[tile - right :] = torch.minimum(w[tile - right :], down)
    return w


@attrs.frozen(kw_only=True)
class TileGrid:
    """The tiles of an ``height x width`` input; outputs are ``scale`` times larger (or 1/``scale``).

    :param tile: tile side in input units (pixels for encoding, latents for decoding).
    :param overlap: overlap between neighbouring tiles in input units.
    :param align: tile starts are multiples of this (the spatial factor for pixels).
    :param up: output units per input unit (spatial factor for decoding, 1 for encoding).
    :param down: input units per output unit (spatial factor for encoding, 1 for decoding).
    """

    height: int
    width: int
    tile: int
    overlap: int
    align: int = 1
    up: int = 1
    down: int = 1
    ys: list[int] = attrs.field(init=False)
    xs: list[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "ys", axis_starts(self.height, self.tile, self.overlap, self.align))
        object.__setattr__(self, "xs", axis_starts(self.width, self.tile, self.overlap, self.align))

    @property
    def single(self) -> bool:
        return len(self.ys) == 1 and len(self.xs) == 1

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Input boxes ``(y0, y1, x0, x1)`` in row-major order."""
        th, tw = min(self.tile, self.height), min(self.tile, self.width)
        return [(y, y + th, x, x + tw) for y in self.ys for x in self.xs]

    def _out(self, n: int) -> int:
        return n * self.up // self.down

    def run(self, fn: Callable[[int, Tensor], Tensor], x: Tensor) -> Tensor:
        """Apply ``fn(tile_index, tile)`` to every tile of ``x`` (..., H, W) and blend the outputs."""
        if self.single:
            return fn(0, x)
        out: Tensor | None = None
        total: Tensor | None = None
        for i, (y0, y1, x0, x1) in enumerate(self.boxes()):
            y = fn(i, x[..., y0:y1, x0:x1])
            oy0, ox0 = self._out(y0), self._out(x0)
            oh, ow = y.shape[-2], y.shape[-1]
            if out is None:
                shape = (*y.shape[:-2], self._out(self.height), self._out(self.width))
                out = torch.zeros(shape, dtype=torch.float32, device=y.device)
                total = torch.zeros(shape[-2:], dtype=torch.float32, device=y.device)
            wy = _ramp([self._out(s) for s in self.ys], oh, self.ys.index(y0))
            wx = _ramp([self._out(s) for s in self.xs], ow, self.xs.index(x0))
            w = (wy[:, None] * wx[None, :]).to(y.device)
            out[..., oy0 : oy0 + oh, ox0 : ox0 + ow] += y.float() * w
            total[oy0 : oy0 + oh, ox0 : ox0 + ow] += w  # type: ignore[index]
        assert out is not None and total is not None
        return (out / total).to(y.dtype)
