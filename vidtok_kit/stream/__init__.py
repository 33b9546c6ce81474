"""Streaming tokenization: encode and decode videos of any length chunk by chunk in bounded memory.

* :class:`StreamingEncoder` / :class:`StreamingDecoder`, the one driver, take iterators of chunks
  and yield latents / frames, running each step on a backend (:mod:`vidtok_kit.stream.backend`:
  the PyTorch model, or exported graphs). Causal models are exact (chunked equals whole-clip);
  non-causal models use cross-faded overlapping windows.
* :func:`encode_step` / :func:`decode_step` are one step with the explicit state as a flat tensor
  list, the unit an exporter lowers to a graph; :func:`state_layout` documents the list for a model
  and chunk shape, :func:`initial_state` builds the zero state that makes a v1.0 step graph uniform.
  v1.1 needs a separate first step (``past=None``) and, for decoding, a final step (``final=True``).
"""

from __future__ import annotations

from vidtok_kit.stream.backend import EncodedChunk, StepBackend, TokenizerFacts
from vidtok_kit.stream.budget import StreamPlan, parse_memory, plan_stream
from vidtok_kit.stream.engine import WHOLE, StreamingDecoder, StreamingEncoder
from vidtok_kit.stream.steps import (
    V11_MIN_FIRST_LATENTS,
    DecodeStep,
    EncodeStep,
    StateEntry,
    decode_step,
    encode_step,
    initial_state,
    state_layout,
)
from vidtok_kit.stream.tiles import TileGrid
from vidtok_kit.stream.windows import temporal_radius

__all__ = [
    "V11_MIN_FIRST_LATENTS",
    "WHOLE",
    "DecodeStep",
    "EncodeStep",
    "EncodedChunk",
    "StateEntry",
    "StepBackend",
    "StreamPlan",
    "StreamingDecoder",
    "StreamingEncoder",
    "TileGrid",
    "TokenizerFacts",
    "decode_step",
    "encode_step",
    "initial_state",
    "parse_memory",
    "plan_stream",
    "state_layout",
    "temporal_radius",
]
