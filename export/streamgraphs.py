"""Streaming step graphs of causal models, built on the state layout of :mod:`vidtok_kit.stream.steps`.

A stream runs in bounded memory: each step takes one chunk plus the causal state (a flat list of
tensors ``past_0 .. past_{n-1}``) and returns the output chunk plus the new state
(``present_0 ..``), which is fed back as ``past`` on the next step. Graphs per model:

* v1.0: ``encode_step`` and ``decode_step``. The first step runs the same graph with an all-zero
  state (:func:`vidtok_kit.stream.steps.initial_state`): v1.0 pads with zeros, so it is exact.
* v1.1: additionally ``encode_first`` / ``decode_first`` (no state inputs: the first-chunk padding
  copies each layer's first frame) and ``decode_final`` (flushes the frames the linear time
  upsamplers hold back; no state outputs).

State shapes depend on batch and spatial size only. Each state dim is written as an expression of
the step input's named dims (``"batch*latent_height*latent_width*4"``, ``"height/2"``), found by
probing :func:`~vidtok_kit.stream.steps.state_layout` twice, the second time with batch, height
and width scaled by distinct primes; the expression doubles as the ONNX dynamic-axis name and is
what :func:`eval_dim` evaluates.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import torch
from vidtok_kit.export.deps import ExportError
from vidtok_kit.export.graphs import Graph, StreamDecode, StreamEncode, TensorSpec, _latent_spec, _video_spec
from vidtok_kit.export.shapes import Point

from vidtok_kit.model.layers import TimeMode

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["eval_dim", "state_specs", "stream_graphs"]


def eval_dim(expr: int | str, sizes: dict[str, int]) -> int:
    """Evaluate a dim: an int, or ``name*name*K`` / ``name/K`` over the named sizes."""
    if isinstance(expr, int):
        return expr
    num, _, den = expr.partition("/")
    value = Fraction(1)
    for term in num.split("*"):
        value *= int(term) if term.isdigit() else sizes[term]
    if den:
        value /= int(den)
    if value.denominator != 1:
        raise ExportError(f"state dim {expr!r} is not an integer for sizes {sizes}")
    return int(value)


#: each probe dim is multiplied by its own prime, so one ratio tells which dims a state dim follows
_PRIMES = {"batch": 5, "h": 2, "w": 3}


def _fit_dim(base: int, scaled: int, probe: dict[str, int], names: tuple[str, str, str]) -> int | str:
    """Express one state dim from its value at the base probe and at the probe with every dim times its prime.

    A state dim is a product of (a subset of) batch, height and width times a constant; the ratio
    ``scaled / base`` is the product of the primes of that subset, which factorises uniquely.
    """
    ratio = Fraction(scaled, base) if base else Fraction(1)
    terms = []
    scale = Fraction(base)
    for key, name in zip(("batch", "h", "w"), names):
        if ratio.numerator % _PRIMES[key] == 0:
            ratio /= _PRIMES[key]
            terms.append(name)
            scale /= probe[key]
    if ratio != 1:
        raise ExportError(f"cannot express a state dim of {base} that scales by {Fraction(scaled, base)}")
    if not terms:
        return base
    expr = "*".join(terms)
    if scale == 1:
        return expr
    if scale.denominator == 1:
        return f"{expr}*{scale.numerator}"
    if scale.numerator == 1:
        return f"{expr}/{scale.denominator}"
    raise ExportError(f"cannot express a state dim with scale {scale}")


def state_specs(model: VideoTokenizer, which: str, chunk: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """``past_i`` and ``present_i`` tensors of an encoder (``which="encode"``) or decoder step of ``chunk`` latents."""
    from vidtok_kit.stream.steps import state_layout

    tdf, sf = model.temporal_factor, model.spatial_factor
    if which == "encode":
        channels, t, unit, names = model.config.in_channels, chunk * tdf, sf, ("batch", "height", "width")
    else:
        channels, t, unit, names = model.config.z_channels, chunk, 1, ("batch", "latent_height", "latent_width")
    probe = {"batch": 1, "h": unit, "w": unit}
    # shapes only: a meta-device copy of the architecture runs the probe steps without computing
    # anything (on the released model, probing the real one took ~10 s per call on 2 cores)
    from vidtok_kit.model.autoencoder import build_model

    meta = build_model(model.config, device="meta")

    def layout(scale: dict[str, int]) -> list[tuple[int, ...]]:
        b, h, w = (probe[k] * scale.get(k, 1) for k in ("batch", "h", "w"))
        return [e.shape for e in state_layout(meta, which, (b, channels, t, h, w))]  # type: ignore[arg-type]

    base, scaled = layout({}), layout(_PRIMES)
    past, present = [], []
    for i, shape in enumerate(base):
        dims = tuple(_fit_dim(d, scaled[i][j], probe, names) for j, d in enumerate(shape))
        past.append(TensorSpec(f"past_{i}", "float32", dims))
        present.append(TensorSpec(f"present_{i}", "float32", dims))
    return past, present


def _stream_video(model: VideoTokenizer, p: Point, latents: int, gen: torch.Generator) -> torch.Tensor:
    c = model.config.in_channels
    frames = latents * model.temporal_factor
    return torch.rand((p.batch, c, frames, p.height, p.width), generator=gen) * 2 - 1


def stream_graphs(model: VideoTokenizer, chunk: int) -> list[Graph]:
    """Step graphs for streaming ``chunk`` latents (``tdf * chunk`` frames) per step.

    Their ``make_inputs`` read ``point.frames`` as the number of *latents* in the step's chunk
    (see :attr:`Graph.chunk_latents`): a stream's last chunk may be shorter than ``chunk``.
    """
    from vidtok_kit.stream.steps import V11_MIN_FIRST_LATENTS, decode_step, encode_step

    tdf, v11 = model.temporal_factor, model.mode is TimeMode.CAUSAL_V1_1
    if chunk < 1 or (v11 and chunk < V11_MIN_FIRST_LATENTS):
        least = V11_MIN_FIRST_LATENTS if v11 else 1
        raise ExportError(f"--stream-chunk must be at least {least} latents for a {model.mode.value} model, got {chunk}")
    enc_past, enc_present = state_specs(model, "encode", chunk)
    dec_past, dec_present = state_specs(model, "decode", chunk)
    video_in = _video_spec(model, "chunk", "chunk_frames")
    latent_in = _latent_spec(model, "chunk_latents")
    enc_out = [_latent_spec(model, "chunk_latents")]
    if model.discrete:
        enc_out.append(TensorSpec("indices", "int32", ("batch", "chunk_latents", "latent_height", "latent_width")))
    frames_out = _video_spec(model, "frames", "chunk_frames_out")

    @torch.no_grad()
    def enc_inputs(p: Point, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        past = encode_step(model, _stream_video(model, p, chunk, gen)).state
        return (_stream_video(model, p, p.frames, gen), *past)

    @torch.no_grad()
    def dec_latents(p: Point, gen: torch.Generator) -> torch.Tensor:
        video = _stream_video(model, p, 2 * chunk, gen)
        return model.encode(video[:, :, : video.shape[2] - tdf + 1]).latent

    @torch.no_grad()
    def dec_inputs(p: Point, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        z = dec_latents(p, gen)
        past = decode_step(model, z[:, :, :chunk]).state
        return (z[:, :, chunk : chunk + p.frames], *past)

    note = {"stream_chunk_latents": chunk, "stream_chunk_frames": chunk * tdf}
    steady = {"min": 1, "opt": chunk, "max": chunk}
    graphs = [
        Graph(
            "encode_step",
            StreamEncode(model),
            [video_in, *enc_past],
            [*enc_out, *enc_present],
            enc_inputs,
            "one encoder step over a chunk of the front-padded clip; present_i is the next step's past_i",
            {**note, "first_step": "encode_first" if v11 else "this graph with all-zero past tensors"},
            steady,
        ),
        Graph(
            "decode_step",
            StreamDecode(model),
            [latent_in, *dec_past],
            [frames_out, *dec_present],
            dec_inputs,
            "one decoder step; returns the decoded frames of this chunk (v1.1: lagging by the held-back frames)",
            {**note, "first_step": "decode_first" if v11 else "this graph with all-zero past tensors"},
            steady,
        ),
    ]
    if v11:
        graphs += [
            Graph(
                "encode_first",
                StreamEncode(model, first=True),
                [video_in],
                [*enc_out, *enc_present],
                lambda p, g: (_stream_video(model, p, p.frames, g),),
                "first encoder step (its padding copies each layer's first frame)",
                note,
                steady,
            ),
            Graph(
                "decode_first",
                StreamDecode(model, first=True),
                [latent_in],
                [frames_out, *dec_present],
                lambda p, g: (dec_latents(p, g)[:, :, : p.frames],),
                f"first decoder step (at least {V11_MIN_FIRST_LATENTS} latents)",
                note,
                {"min": V11_MIN_FIRST_LATENTS, "opt": chunk, "max": chunk},
            ),
            Graph(
                "decode_final",
                StreamDecode(model, final=True),
                [latent_in, *dec_past],
                [frames_out],
                dec_inputs,
                "last decoder step: also emits the frames held back for look-ahead (no state out)",
                note,
                steady,
            ),
        ]
    return graphs
