"""Where each exported graph is checked against PyTorch, and how long that will take.

An export is checked at the min / opt / max points of its shape profile. Running the reference
PyTorch model and ONNX Runtime on the CPU at the largest clip, for every graph, took most of the
20 minutes a released-size export needed, and proves nothing the smaller checks do not: an exported
graph is the same operators at every size, and what parity must show is that no size was baked in
and that the arithmetic matches. So by default (``full=False``):

* ``min`` is checked as given (always cheap: the smallest valid clip);
* ``opt`` is checked in full for the whole-clip graphs (``encode``, ``decode``, ...): that is the
  size the profile is tuned for and the reference input of the accuracy bar;
* ``max`` keeps its batch and frame count but runs at a *reduced* spatial size (three by two
  spatial factors, clipped into the profile); the streaming step graphs also check ``opt`` that way
  (their layers are the whole-clip graphs' layers; what is new in them is the state plumbing,
  which does not change with the frame size).

Graphs are traced at two by three spatial factors, a size no check uses, so a height or width the
tracer baked in fails the reduced checks as well as the full one. With ``full=True``
(``vidtok-kit export --full-parity``) every point is checked at its real size.

The manifest records the profile's shapes (what the graph accepts) and, per parity report, the
size that was run (``checked_at``) and whether it was reduced.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from vidtok_kit.export.shapes import POINTS, Point, ShapeProfile

if TYPE_CHECKING:
    from vidtok_kit.export.graphs import Graph

    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["Check", "CostModel", "check_plan", "full_shape", "graph_point", "named_sizes", "trace_point"]


class Check(NamedTuple):
    """One parity run: profile point ``which``, the size actually run, and whether it was reduced."""

    which: str
    point: Point
    reduced: bool


def graph_point(graph: Graph, point: Point, which: str) -> Point:
    """Step graphs read ``point.frames`` as latents per chunk (see :attr:`Graph.chunk_latents`)."""
    if graph.chunk_latents is None:
        return point
    return point._replace(frames=graph.chunk_latents[which])


def _small(profile: ShapeProfile, sf: int, rows: int, cols: int) -> tuple[int, int]:
    """``rows x cols`` spatial factors, each clipped into the profile's range."""
    (h_lo, _, h_hi), (w_lo, _, w_hi) = profile.height, profile.width
    return min(max(rows * sf, h_lo), h_hi), min(max(cols * sf, w_lo), w_hi)


def trace_point(graph: Graph, profile: ShapeProfile, sf: int) -> Point:
    """The example the exporter traces: the opt frames, batch >= 2, 2x3 spatial factors (no check's size)."""
    opt = graph_point(graph, profile.point("opt"), "opt")
    h, w = _small(profile, sf, 2, 3)
    return opt._replace(batch=max(2, opt.batch), height=h, width=w)


def check_plan(graph: Graph, profile: ShapeProfile, sf: int, *, full: bool = False) -> list[Check]:
    """The parity runs of ``graph`` (see the module docstring); a profile point equal to an earlier one is not run again."""
    h, w = _small(profile, sf, 3, 2)
    checks: list[Check] = []
    seen: set[Point] = set()
    for which in POINTS:
        point = graph_point(graph, profile.point(which), which)
        if point in seen:  # e.g. a fixed-shape export: the same check again would prove nothing new
            continue
        seen.add(point)
        reduce = not full and (which == "max" or (which == "opt" and graph.chunk_latents is not None))
        if reduce and point.height * point.width > h * w:
            point, reduced = point._replace(height=h, width=w), True
        else:
            reduced = False
        checks.append(Check(which, point, reduced))
    return checks


def full_shape(dims: tuple[int | str, ...], sizes: dict[str, int]) -> list[int]:
    """A tensor's shape from its named dims (``"batch"``, ``"height/2"``, ``"batch*latent_height*4"``)."""
    from vidtok_kit.export.streamgraphs import eval_dim

    return [eval_dim(d, sizes) for d in dims]


def named_sizes(graph: Graph, shapes: list[tuple[int, ...]], point: Point, sf: int) -> dict[str, int]:
    """Every plain dim name's size seen in a run, with the spatial ones set to ``point``'s (a reduced run's
    time and batch dims are the real point's; only height and width differ)."""
    sizes: dict[str, int] = {}
    for spec, shape in zip((*graph.inputs, *graph.outputs), shapes):
        for dim, value in zip(spec.dims, shape):
            if isinstance(dim, str) and dim.isidentifier():
                sizes[dim] = int(value)
    sizes.update(height=point.height, width=point.width, latent_height=point.height // sf,
                 latent_width=point.width // sf)
    return sizes


class CostModel:
    """Seconds of the parity checks, estimated from multiply-accumulates before any is run.

    MACs per voxel of the encoder and the decoder come from :func:`vidtok_kit.profile.profile_model`
    on a meta-device copy (nothing computed); the CPU's rate from a short 3x3 convolution. Each
    check runs the graph's inputs (PyTorch), the reference (PyTorch) and ONNX Runtime.
    """

    #: the released model's checks ran at about the calibration conv's rate (2 shared cores:
    #: encoder checks a little slower, decoder checks faster, as ONNX Runtime runs the fast forms)
    EFFICIENCY = 1.0

    def __init__(self, model: VideoTokenizer, recipe: Any, profile: ShapeProfile) -> None:
        import torch

        from vidtok_kit.model.autoencoder import build_model
        from vidtok_kit.profile import profile_model

        opt = profile.point("opt")
        with torch.device("meta"):
            meta = build_model(recipe.model)
        counted = profile_model(meta, (opt.frames, opt.height, opt.width))
        voxels = opt.frames * opt.height * opt.width
        self.encoder_per_voxel = counted.flops_encoder / 2 / voxels
        self.decoder_per_voxel = counted.flops_decoder / 2 / voxels
        self.tdf = model.temporal_factor
        self.rate = _conv_rate() * self.EFFICIENCY

    def seconds(self, graph: Graph, point: Point, *, cached_encode: bool = False) -> float:
        """Estimated wall time of one check of ``graph`` at ``point``.

        :param cached_encode: a whole-clip decoder's input latents come from the encode graph's check.
        """
        frames = point.frames * self.tdf if graph.chunk_latents is not None else point.frames
        voxels = point.batch * frames * point.height * point.width
        enc, dec = self.encoder_per_voxel * voxels, self.decoder_per_voxel * voxels
        name = graph.name
        if name.startswith("encode"):
            macs = (3 if graph.chunk_latents is not None and name == "encode_step" else 2) * enc
        elif name == "dequantize":
            macs = 0.0 if cached_encode else enc
        elif name == "decode_indices":  # its reference is the decode graph's (same latents)
            macs = dec + (0.0 if cached_encode else enc + dec)
        elif name.startswith("decode") and graph.chunk_latents is not None:
            macs = 2 * enc + 3 * dec  # inputs: encode two chunks, decode one step; then reference + ORT
        else:
            macs = 2 * dec + (0.0 if cached_encode else enc)
        return macs / self.rate


def _conv_rate() -> float:
    """Multiply-accumulates per second of one 3x3 convolution of the model's size on this machine (~0.3 s)."""
    import torch

    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    x = torch.randn(8, 128, 32, 32)
    macs = 128 * 128 * 9 * 8 * 32 * 32
    with torch.no_grad():
        conv(x)
        start, n = time.perf_counter(), 0
        while n < 2 or time.perf_counter() - start < 0.25:
            conv(x)
            n += 1
    return macs * n / (time.perf_counter() - start)
