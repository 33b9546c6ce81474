"""Export targets: tiny wrapper modules around a tokenizer, one per graph, taking and returning plain tensors.

The training model is never exported with flags. Each wrapper fixes one entry point:

* :class:`EncodeMean` video -> latent (continuous regularizers: the KL posterior mean);
* :class:`EncodeToIndices` video -> (latent codes, int32 indices) (discrete regularizers);
* :class:`Decode` latent -> frames; :class:`DecodeFromIndices` int32 indices -> frames;
* :class:`StreamEncode` / :class:`StreamDecode`: one causal streaming step
  (:mod:`vidtok_kit.stream.steps`): chunk + state tensors in, output chunk + new state out.

Decoders return *all* ``tdf * T'`` decoded frames, as the decoder computes them; the PyTorch API
keeps the last ``1 + tdf * (T' - 1)`` of a causal model (or the clip's length for v1.1), and so
does :mod:`vidtok_kit.runtime`. The manifest states the rule. Indices are int32 in every graph
(TensorRT has no int16 tensors and takes uint8 only at the network boundary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn
from vidtok_kit.export.shapes import Point

from vidtok_kit.model.frames import front_padding, repeat_edges
from vidtok_kit.model.layers import TimeMode

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = [
    "HALF_GRAPHS",
    "Decode",
    "DecodeFromIndices",
    "EncodeMean",
    "EncodeToIndices",
    "Graph",
    "IndicesToLatent",
    "StreamDecode",
    "StreamEncode",
    "TensorSpec",
    "front_pad",
    "graph_plan",
    "half_network",
]

Inputs = tuple[Tensor, ...]


def front_pad(video: Tensor, *, tdf: int, mode: TimeMode) -> Tensor:
    """Prepend copies of frame 0 as :meth:`VideoTokenizer.pad_frames` does, from the traced frame count.

    The frame rules are branch-free in the frame count, so one graph serves every T.
    """
    return repeat_edges(video, front=front_padding(video.shape[2], tdf=tdf, mode=mode))


# -- wrappers --------------------------------------------------------------------------------------


class _Wrapper(nn.Module):
    def __init__(self, model: VideoTokenizer) -> None:
        super().__init__()
        self.model = model


class _EncodeHead(_Wrapper):
    """Shared tail of the encoders: regularizer on the encoder output, int32 indices."""

    def head(self, h: Tensor) -> tuple[Tensor, ...]:
        reg = self.model.regularizer(h)
        if self.model.discrete:
            assert reg.indices is not None
            return reg.latent, reg.indices.to(torch.int32)
        return (reg.latent,)


class EncodeMean(_EncodeHead):
    """(B, C, T, H, W) float video in [-1, 1] -> latent (B, z, T', H', W'); the deterministic latent."""

    def encoder_output(self, video: Tensor) -> Tensor:
        m = self.model
        return m.encoder(front_pad(video, tdf=m.temporal_factor, mode=m.mode))

    def forward(self, video: Tensor) -> tuple[Tensor, ...]:
        return self.head(self.encoder_output(video))


class EncodeToIndices(EncodeMean):
    """(B, C, T, H, W) video -> (latent codes (B, z, T', H', W'), int32 indices (B, T', H', W'))."""


class Decode(_Wrapper):
    """Latent (B, z, T', H', W') -> all decoded frames (B, C, tdf * T', H, W)."""

    def forward(self, latent: Tensor) -> Tensor:
        return self.model.decoder(latent)


class DecodeFromIndices(_Wrapper):
    """int32 indices (B, T', H', W') -> all decoded frames (B, C, tdf * T', H, W)."""

    def forward(self, indices: Tensor) -> Tensor:
        latent = self.model.regularizer.indices_to_latent(indices)
        return self.model.decoder(latent.to(torch.float32))


class IndicesToLatent(_Wrapper):
    """int32 indices (B, T', H', W') -> the decoder's latent (B, z, T', H', W'), for streaming token chunks."""

    def forward(self, indices: Tensor) -> Tensor:
        return self.model.regularizer.indices_to_latent(indices).to(torch.float32)


class StreamEncode(_EncodeHead):
    """One encoder step: chunk (B, C, t, H, W) of the front-padded clip + past -> latent chunk (+ indices) + present.

    ``first=True`` builds the first-step graph (no state inputs; v1.1 only, whose first-chunk
    padding depends on the data).
    """

    def __init__(self, model: VideoTokenizer, *, first: bool = False) -> None:
        super().__init__(model)
        self.first = first

    def encoder_output(self, chunk: Tensor, *past: Tensor) -> Tensor:
        from vidtok_kit.stream.steps import encode_step

        return encode_step(self.model, chunk, None if self.first else list(past)).h

    def forward(self, chunk: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        from vidtok_kit.stream.steps import encode_step

        step = encode_step(self.model, chunk, None if self.first else list(past))
        return (*self.head(step.h), *step.state)


class StreamDecode(_Wrapper):
    """One decoder step: latent chunk (B, z, n, H', W') + past -> frames + present.

    ``first`` / ``final`` select v1.1's first-step and flushing last-step graphs; the final step
    returns no state.
    """

    def __init__(self, model: VideoTokenizer, *, first: bool = False, final: bool = False) -> None:
        super().__init__(model)
        self.first = first
        self.final = final

    def forward(self, latent: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        from vidtok_kit.stream.steps import decode_step

        step = decode_step(self.model, latent, None if self.first else list(past), final=self.final)
        return (step.frames,) if self.final else (step.frames, *step.state)


# -- fp16 network ----------------------------------------------------------------------------------

#: the graphs written in fp16 too (``--precision fp16``): those that run the encoder or decoder.
#: Stream steps stay fp32 (their state tensors would change dtype between steps), and so does
#: ``dequantize`` (the regularizer alone, which stays fp32 in every graph).
HALF_GRAPHS = ("encode", "decode", "decode_indices")


class _HalfNetwork(nn.Module):
    """``module`` (encoder or decoder) run in fp16 inside an fp32 graph: float inputs are cast to
    fp16, the output back to fp32. Quantizers and the graph's inputs and outputs stay fp32, as in
    the PyTorch ``dtype="fp16"`` path, so an fp16 graph is a drop-in for its fp32 twin."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, *args: Any) -> Tensor:
        cast = (a.half() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)
        return self.module(*cast).float()


def half_network(model: VideoTokenizer) -> VideoTokenizer:
    """A copy of ``model`` whose encoder and decoder compute in fp16 (see :data:`HALF_GRAPHS`)."""
    import copy

    half = copy.deepcopy(model)
    half.encoder = _HalfNetwork(half.encoder)
    half.decoder = _HalfNetwork(half.decoder)
    return half


# -- graph descriptions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, dtype and dims (ints are fixed, strings name dynamic axes)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.dims) if isinstance(d, str)}


@dataclass
class Graph:
    """One graph to export: wrapper module, signature, and how to build inputs at a shape point."""

    name: str
    module: nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: (point, generator) -> input tensors, made by running the PyTorch model where needed
    make_inputs: Callable[[Point, torch.Generator], Inputs]
    #: what the graph is for, written into the manifest
    doc: str
    #: extra manifest fields (frame rules, step kind)
    notes: dict[str, Any] = field(default_factory=dict)
    #: stream steps only: latents per chunk at the min / opt / max points (``make_inputs`` then
    #: reads ``point.frames`` as that count); None = ``point.frames`` is the clip's frame count
    chunk_latents: dict[str, int] | None = None
    #: ``inputs -> (graph, its inputs)`` where this graph's PyTorch output is that graph's on those
    #: inputs (``decode_indices`` is ``decode`` of the dequantized indices): the parity check reuses
    #: that reference when the inputs are equal instead of running the model again
    reference_of: Callable[[Inputs], tuple[str, Inputs]] | None = None
    #: ``(inputs, reference outputs)`` -> None: told each reference result, so later graphs' inputs
    #: can reuse it (the encode graph's latents become the decoders' inputs at the same point)
    remember: Callable[[Inputs, list[Tensor]], None] | None = None

    @property
    def encoder(self) -> bool:
        return hasattr(self.module, "encoder_output")


def _video(model: VideoTokenizer, p: Point, gen: torch.Generator) -> Tensor:
    c = model.config.in_channels
    return torch.rand((p.batch, c, p.frames, p.height, p.width), generator=gen) * 2 - 1


class _Encoded:
    """``model.encode`` of the video drawn at a point, remembered by the video's bytes: the decoder
    graphs of one parity point share one encoder run, and the encode graph's own reference run
    seeds it (:meth:`remember`). On the released model the encoder is a third of the checking time.
    Only latents and indices are kept (a few per point)."""

    def __init__(self) -> None:
        self.memo: dict[tuple[tuple[int, ...], bytes], Any] = {}

    @staticmethod
    def _key(video: Tensor) -> tuple[tuple[int, ...], bytes]:
        import hashlib

        return tuple(video.shape), hashlib.sha1(video.detach().contiguous().numpy().tobytes()).digest()

    @torch.no_grad()
    def __call__(self, model: VideoTokenizer, p: Point, gen: torch.Generator) -> Any:
        video = _video(model, p, gen)
        key = self._key(video)
        if key not in self.memo:
            out = model.encode(video)
            self.memo[key] = _Latents(out.latent, out.indices)
        return self.memo[key]

    def remember(self, inputs: Inputs, outputs: list[Tensor]) -> None:
        """The encode graph's reference outputs (latent[, int32 indices]) for its input video."""
        self.memo[self._key(inputs[0])] = _Latents(outputs[0], outputs[1] if len(outputs) > 1 else None)


class _Latents(NamedTuple):
    latent: Tensor
    indices: Tensor | None


def _video_spec(model: VideoTokenizer, name: str = "video", frames: str = "frames") -> TensorSpec:
    """Video in (``video``, ``chunk``: in_channels) or decoded frames out (``frames``: out_channels)."""
    channels = model.config.out_channels if name == "frames" else model.config.in_channels
    return TensorSpec(name, "float32", ("batch", channels, frames, "height", "width"))


def _latent_spec(model: VideoTokenizer, frames: str = "latent_frames") -> TensorSpec:
    return TensorSpec("latent", "float32", ("batch", model.config.z_channels, frames, "latent_height", "latent_width"))


def _indices_spec(frames: str = "latent_frames") -> TensorSpec:
    return TensorSpec("indices", "int32", ("batch", frames, "latent_height", "latent_width"))


def graph_plan(model: VideoTokenizer, *, stream_chunk: int | None = None) -> list[Graph]:
    """The graphs exported for ``model``: encode, decode (+ decode_indices), and stream steps when causal.

    :param stream_chunk: latent frames per streaming step (the encoder step takes
        ``tdf * stream_chunk`` frames); None = no streaming graphs.
    """
    tdf = model.temporal_factor
    _encoded = _Encoded()
    frame_rule = {"decoded_frames": f"{tdf} * latent_frames", "keep_last_frames": _keep_rule(model)}
    enc_cls = EncodeToIndices if model.discrete else EncodeMean
    enc_outputs = [_latent_spec(model)] + ([_indices_spec()] if model.discrete else [])
    graphs = [
        Graph(
            "encode",
            enc_cls(model),
            [_video_spec(model)],
            enc_outputs,
            lambda p, g: (_video(model, p, g),),
            "video in [-1, 1] -> latent" + (" codes and int32 indices" if model.discrete else " (posterior mean)"),
            {"pads_frames_in_front": _pad_rule(model)},
            remember=_encoded.remember,
        ),
        Graph(
            "decode",
            Decode(model),
            [_latent_spec(model)],
            [_video_spec(model, "frames", "decoded_frames")],
            lambda p, g: (_encoded(model, p, g).latent,),
            "latent -> all decoded frames",
            frame_rule,
        ),
    ]
    if model.discrete:
        graphs.append(
            Graph(
                "decode_indices",
                DecodeFromIndices(model),
                [_indices_spec()],
                [_video_spec(model, "frames", "decoded_frames")],
                lambda p, g: (_encoded(model, p, g).indices.to(torch.int32),),
                "int32 indices -> all decoded frames",
                frame_rule,
                reference_of=lambda inputs: (
                    "decode", (model.regularizer.indices_to_latent(inputs[0]).to(torch.float32),)
                ),
            )
        )
        graphs.append(
            Graph(
                "dequantize",
                IndicesToLatent(model),
                [_indices_spec()],
                [_latent_spec(model)],
                lambda p, g: (_encoded(model, p, g).indices.to(torch.int32),),
                "int32 indices -> the decoder's latent (for decoding streamed token chunks)",
            )
        )
    if stream_chunk is not None and model.mode.causal:
        from vidtok_kit.export.streamgraphs import stream_graphs

        graphs.extend(stream_graphs(model, stream_chunk))
    return graphs


def _pad_rule(model: VideoTokenizer) -> str:
    tdf = model.temporal_factor
    if not model.mode.causal or tdf == 1:
        return "none"
    if model.mode is TimeMode.CAUSAL_V1_0:
        return f"{tdf - 1} copies of frame 0"
    return f"({tdf} - frames % {tdf}) % {tdf} copies of frame 0"


def _keep_rule(model: VideoTokenizer) -> str:
    tdf = model.temporal_factor
    if not model.mode.causal:
        return "all"
    rule = f"1 + {tdf} * (latent_frames - 1)"
    if model.mode is TimeMode.CAUSAL_V1_1:
        rule += " by default, or the original clip's frame count (at most all)"
    return rule
