"""Shape ranges of an export: min / opt / max batch, frames, height and width, and their rules.

Every exported graph is dynamic in batch, time, height and width where the model allows it; the
ranges here are what an export is *checked* at (parity runs at each of the three points) and what
TensorRT optimisation profiles are built for. Valid sizes come from the model's frame rules
(:mod:`vidtok_kit.model.frames`) and its spatial factor, never from tracing guesses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from vidtok_kit.export.deps import ExportError

from vidtok_kit.model import frames as frame_rules

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["POINTS", "Point", "ShapeProfile", "default_profile", "parse_range", "parse_shapes"]

#: the three profile points, in order
POINTS: tuple[str, ...] = ("min", "opt", "max")


class Point(NamedTuple):
    """One input size: batch, frames, height, width."""

    batch: int
    frames: int
    height: int
    width: int

    def describe(self) -> str:
        return f"{self.batch}x{self.frames}x{self.height}x{self.width}"


class ShapeProfile(NamedTuple):
    """min / opt / max of each video dimension (each a 3-tuple, non-decreasing)."""

    batch: tuple[int, int, int]
    frames: tuple[int, int, int]
    height: tuple[int, int, int]
    width: tuple[int, int, int]

    def point(self, which: str) -> Point:
        i = POINTS.index(which)
        return Point(self.batch[i], self.frames[i], self.height[i], self.width[i])

    def points(self) -> dict[str, Point]:
        return {which: self.point(which) for which in POINTS}

    def as_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self._asdict().items()}

    def validate(self, model: VideoTokenizer) -> ShapeProfile:
        """Raise :class:`ExportError` naming the rule if a size is not valid for ``model``."""
        for name, values in self._asdict().items():
            if any(v < 1 for v in values) or list(values) != sorted(values):
                raise ExportError(f"--shapes: {name} min,opt,max must be positive and non-decreasing, got {list(values)}")
        sf, tdf, mode = model.spatial_factor, model.temporal_factor, model.mode
        for name in ("height", "width"):
            bad = [v for v in getattr(self, name) if v % sf]
            if bad:
                raise ExportError(f"--shapes: {name} must be a multiple of {sf} (the spatial factor), got {bad}")
        bad = [t for t in self.frames if not frame_rules.valid_frames(t, tdf=tdf, mode=mode)]
        if bad:
            rule = frame_rules.allowed_frames(tdf=tdf, mode=mode)
            raise ExportError(f"--shapes: this {mode.value} model takes {rule}, got frames {bad}")
        return self


def parse_range(text: str, *, what: str) -> tuple[int, int, int]:
    """``"1,1,4"`` -> (1, 1, 4); one value means min = opt = max."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ExportError(f"{what}: expected integers min,opt,max (e.g. 1,1,4), got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ExportError(f"{what}: expected min,opt,max (three integers), got {text!r}")
    return values[0], values[1], values[2]


def parse_shapes(text: str, *, batch: tuple[int, int, int] = (1, 1, 2)) -> ShapeProfile:
    """``"1x32x32,17x64x64,33x128x128"`` (min,opt,max as TxHxW) -> a :class:`ShapeProfile`.

    A single ``TxHxW`` fixes all three points.
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1:
        parts *= 3
    dims: list[tuple[int, int, int]] = []
    for part in parts:
        try:
            t, h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ExportError(
                f"--shapes: expected min,opt,max as TxHxW (e.g. 1x64x64,17x128x128,33x256x256), got {text!r}"
            ) from None
        dims.append((t, h, w))
    if len(dims) != 3:
        raise ExportError(f"--shapes: expected three TxHxW sizes (min,opt,max), got {len(dims)} in {text!r}")
    (t0, h0, w0), (t1, h1, w1), (t2, h2, w2) = dims
    return ShapeProfile(batch=batch, frames=(t0, t1, t2), height=(h0, h1, h2), width=(w0, w1, w2))


def _smallest_frames(model: VideoTokenizer) -> int:
    return 1 if model.mode.causal else model.temporal_factor


def _round_frames(t: int, model: VideoTokenizer) -> int:
    """The largest valid frame count <= t (at least the smallest valid one)."""
    tdf, mode = model.temporal_factor, model.mode
    t = max(t, _smallest_frames(model))
    while not frame_rules.valid_frames(t, tdf=tdf, mode=mode):
        t -= 1
    return t


def default_profile(model: VideoTokenizer, recipe: Any) -> ShapeProfile:
    """Smallest valid clip / the recipe's training clip / the same clip twice as long and twice the batch.

    The maximum is kept modest because parity runs PyTorch on CPU at every point; pass
    ``--shapes`` for production ranges.
    """
    sf = model.spatial_factor
    res = max(sf, recipe.train.resolution // sf * sf)
    t_opt = _round_frames(recipe.train.num_frames, model)
    t_max = _round_frames(2 * t_opt + model.temporal_factor, model)
    t_min = _smallest_frames(model)
    return ShapeProfile(batch=(1, 1, 2), frames=(t_min, t_opt, t_max), height=(sf, res, res), width=(sf, res, res))
