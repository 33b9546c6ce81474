"""One streaming step of a causal model: chunk + state tensors in, output chunk + new state tensors out.

This is the unit an exporter lowers to ONNX/TensorRT, and the unit the streaming engine
(:mod:`vidtok_kit.stream.engine`) loops over. The state is a flat ``list[Tensor]``: every causal
module takes its tensors from :class:`~vidtok_kit.model.layers.StreamState` and puts its new ones
back in module-execution order, so the list lines up from one step to the next.

State layout (see :func:`state_layout` for the exact entries of a given model and chunk size):

* causal convolution (:class:`~vidtok_kit.model.layers.TimeConv`, kernel k, time stride s):
  its last ``k - s`` *padded input* frames, ``(B, C, k - s, H_l, W_l)`` (a 1-D conv applied to a
  pixel-folded ``(B * H_l * W_l, C, T)`` tensor keeps ``(B * H_l * W_l, C, k - s)``);
* AlphaBlender down's average-pool branch: the last input frame, ``(B, C, 1, H_l, W_l)``;
* v1.1 time upsamplers (linear interpolation looks one frame ahead): the last two input frames
  ``(B, C, 2, H_l, W_l)``; the second one is *held back* and emitted by the next step.

Shapes depend only on the chunk's batch and spatial size, never on its length or position.

How a stream starts (the "first step"): ``past=None``. Modules then use the first-chunk padding of
their convention: zeros (v1.0) or copies of *their own* first input frame (v1.1), and v1.1 time
upsamplers interpolate latent 0's frames on their own. For **v1.0** that padding is data-independent,
so :func:`initial_state` returns zero tensors that make the steady-state step reproduce the first
step exactly: one uniform step graph. For **v1.1** the padding depends on each layer's first frame,
so the first step is a separate graph (the same function with no state inputs); the decoder also
needs a separate **final** step (``final=True``) that flushes the held-back frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import attrs
import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.model.frames import V11_MIN_FIRST_LATENTS
from vidtok_kit.model.layers import StreamState, TimeMode

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = [
    "V11_MIN_FIRST_LATENTS",
    "DecodeStep",
    "EncodeStep",
    "StateEntry",
    "decode_step",
    "encode_step",
    "initial_state",
    "state_layout",
]

#: state_layout runs the real model instead of a meta copy below this activation size (bytes)
_REAL_RUN_BYTES = 2**24


class EncodeStep(NamedTuple):
    #: encoder output before the regularizer, (B, C_enc, t / tdf, H / sf, W / sf); the
    #: regularizers act per element, so ``model.regularizer(h)`` per chunk is exact
    h: Tensor
    #: the new state, to pass as ``past`` to the next step
    state: list[Tensor]


class DecodeStep(NamedTuple):
    #: decoded frames (B, C, t, H, W); v1.1 emits ``tdf * n`` frames per steady step, lagging
    #: behind the input (the held-back frames come out with the next step or the final one)
    frames: Tensor
    state: list[Tensor]


def _check_causal(model: VideoTokenizer) -> None:
    if not model.mode.causal:
        raise InputError("streaming steps with carried state need a causal model; non-causal models stream by windows")


def encode_step(model: VideoTokenizer, chunk: Tensor, past: Sequence[Tensor] | None = None) -> EncodeStep:
    """Run the encoder on one chunk of an already front-padded clip.

    :param chunk: (B, C, t, H, W) with ``t`` a positive multiple of the temporal factor. The first
        chunk of a clip starts with the front padding of :mod:`vidtok_kit.model.frames`.
    :param past: the previous step's ``state``; ``None`` for the first chunk.
    """
    _check_causal(model)
    tdf = model.temporal_factor
    if chunk.ndim != 5 or chunk.shape[2] == 0 or chunk.shape[2] % tdf:
        raise InputError(f"an encoder step takes (B, C, t, H, W) with t a positive multiple of {tdf}, got {tuple(chunk.shape)}")
    state = StreamState(past)
    h = model.encoder(chunk, state)
    return EncodeStep(h, state.present)


def decode_step(
    model: VideoTokenizer, latent: Tensor, past: Sequence[Tensor] | None = None, *, final: bool = False
) -> DecodeStep:
    """Run the decoder on latents ``(B, z, n, h, w)``; ``final=True`` on the last chunk of a clip."""
    _check_causal(model)
    if latent.ndim != 5 or latent.shape[2] == 0:
        raise InputError(f"a decoder step takes latents (B, z, n, h, w) with n >= 1, got {tuple(latent.shape)}")
    if model.mode is TimeMode.CAUSAL_V1_1 and past is None and not final and latent.shape[2] < V11_MIN_FIRST_LATENTS:
        raise InputError(
            f"the first step of a v1.1 decode stream needs at least {V11_MIN_FIRST_LATENTS} latents "
            f"(or final=True), got {latent.shape[2]}"
        )
    state = StreamState(past, final=final)
    frames = model.decoder(latent, state)
    return DecodeStep(frames, state.present)


@attrs.frozen(kw_only=True)
class StateEntry:
    """One tensor of the flat state list, for documentation and for export signatures."""

    index: int  #: position in the list
    module: str  #: dotted path of the module that owns it, e.g. ``decoder.up.1.time_upsample``
    kind: str  #: the module's class name
    shape: tuple[int, ...]
    dtype: torch.dtype


class _RecordingState(StreamState):
    """A StreamState that notes which module put each tensor (module stack kept by hooks)."""

    def __init__(self, past: Sequence[Tensor] | None, stack: list[tuple[str, str]], *, final: bool = False) -> None:
        super().__init__(past, final=final)
        self.stack = stack
        self.owners: list[tuple[str, str]] = []

    def put(self, tensor: Tensor) -> None:
        self.owners.append(self.stack[-1] if self.stack else ("", ""))
        super().put(tensor)


def state_layout(
    model: VideoTokenizer, which: Literal["encode", "decode"], chunk_shape: Sequence[int], *, dtype: torch.dtype = torch.float32
) -> list[StateEntry]:
    """The steady-state layout of the flat state list for chunks of ``chunk_shape``.

    Found by running a first and a second step and recording who puts which tensor: on the model
    itself when the chunk is small (cheap), else on a meta-device copy of the architecture (no
    memory, no compute; exact shapes for any plugin, about a second per call).

    :param which: ``"encode"`` (chunk = frames (B, C, t, H, W)) or ``"decode"`` (chunk = latents).
    """
    from vidtok_kit.model.autoencoder import build_model

    _check_causal(model)
    shape = tuple(int(s) for s in chunk_shape)
    param = next(model.parameters())
    if math.prod(shape) * model.config.base_channels * dtype.itemsize <= _REAL_RUN_BYTES and param.dtype == dtype:
        runner, device = model, param.device
    else:
        runner, device = build_model(model.config, device="meta").to(dtype), torch.device("meta")
    part = runner.encoder if which == "encode" else runner.decoder
    prefix = "encoder" if which == "encode" else "decoder"
    stack: list[tuple[str, str]] = []

    def enter(path: str) -> Any:
        def hook(module: torch.nn.Module, args: Any) -> None:
            stack.append((path, type(module).__name__))

        return hook

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    handles = []
    for name, module in part.named_modules():
        handles.append(module.register_forward_pre_hook(enter(f"{prefix}.{name}" if name else prefix)))
        handles.append(module.register_forward_hook(leave))
    try:
        first_shape = shape
        if which == "decode" and model.mode is TimeMode.CAUSAL_V1_1:
            first_shape = (*shape[:2], max(shape[2], V11_MIN_FIRST_LATENTS), *shape[3:])
        with torch.no_grad():
            first = _RecordingState(None, stack)
            part(torch.zeros(first_shape, device=device, dtype=dtype), first)
            second = _RecordingState(first.present, stack)
            part(torch.zeros(shape, device=device, dtype=dtype), second)
    finally:
        for handle in handles:
            handle.remove()
    return [
        StateEntry(index=i, module=owner[0], kind=owner[1], shape=tuple(t.shape), dtype=t.dtype)
        for i, (owner, t) in enumerate(zip(second.owners, second.present))
    ]


def initial_state(
    model: VideoTokenizer,
    which: Literal["encode", "decode"],
    chunk_shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: Any = "cpu",
) -> list[Tensor]:
    """Zero state tensors equivalent to the first-chunk padding, for one uniform step graph (v1.0).

    With it, ``encode_step(model, chunk0, initial_state(...))`` equals the ``past=None`` first step:
    v1.0 pads causal convolutions with zeros and upsamples time by nearest neighbour, holding
    nothing back. v1.1's first-chunk padding copies each layer's first frame (data-dependent) and
    its decoder treats latent 0 specially, so it has no such state: use ``past=None`` (a separate
    first-step graph) instead; this function then raises :class:`InputError` saying so.
    """
    if model.mode is TimeMode.CAUSAL_V1_1:
        raise InputError(
            "v1.1 first-chunk padding replicates each layer's first frame, so it has no data-independent "
            "initial state: run the first step with past=None (a separate first-step graph)"
        )
    return [torch.zeros(e.shape, dtype=e.dtype, device=device) for e in state_layout(model, which, chunk_shape, dtype=dtype)]
