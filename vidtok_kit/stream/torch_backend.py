"""The PyTorch step backend: the model's encoder and decoder, prepared for inference.

Preparing a model for inference means choosing, once, everything that makes it fast without
changing its numbers beyond float rounding:

* the exact fast arithmetic per module (:func:`~vidtok_kit.model.shortcuts.set_arithmetic`):
  the sub-pixel spatial upsampler, the AlphaBlender upsampler from the low-rate frames, time
  convolutions of whole channels-last clips as dilated 2-D convolutions;
* channels-last (``channels_last_3d``) activations: oneDNN's fast convolution layout, copy-free
  per-frame views and channel LayerNorm;
* ``torch.inference_mode``: no autograd bookkeeping, activations freed as soon as they are dead;
* a network dtype (``torch.bfloat16`` runs ~2.5x faster convolutions on CPUs with AVX512-BF16 and
  on GPUs); the regularizer stays fp32, as quantization and KL are in the original;
* optionally ``torch.compile`` of the two step functions (:class:`~vidtok_kit.compiled.CompiledFunction`),
  one graph per step shape, reused across chunks and files, with an eager fallback.

A step that is both the first and the final one (a whole clip) runs without state, which lets
the layers take their whole-clip forms.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vidtok_kit.compiled import CompiledFunction, CompileMode
from vidtok_kit.errors import InputError
from vidtok_kit.heap import return_freed_memory
from vidtok_kit.model.shortcuts import Arithmetic, set_arithmetic
from vidtok_kit.stream.backend import EncodedChunk, Which
from vidtok_kit.stream.steps import decode_step, encode_step

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.stream.budget import StreamPlan

__all__ = ["TorchBackend"]


def _network_dtype(model: VideoTokenizer) -> torch.dtype:
    return next(model.decoder.parameters()).dtype


class TorchBackend:
    """Steps of a :class:`~vidtok_kit.model.autoencoder.VideoTokenizer` for the streaming driver.

    :param model: used as is when ``dtype`` is its own (its modules switched to ``arithmetic``
        in place, put in eval mode), else a copy whose encoder and decoder are cast to ``dtype``.
    :param dtype: network dtype (None: keep the model's).
    :param compile: ``"off"``, ``"on"``, or ``"auto"``: a step shape is compiled when it comes
        back after its eager calls took longer than compiling it would (a dataset's clip size, a
        long video's steady chunk), so short work never pays for compiling.
    :param arithmetic: ``"fast"`` (default) or ``"reference"`` (the original VidTok arithmetic).
    :param channels_last: run activations channels-last (the fast layout for oneDNN and cuDNN).
    """

    windows = True
    tiles = True

    def __init__(
        self,
        model: VideoTokenizer,
        *,
        dtype: torch.dtype | None = None,
        compile: CompileMode = "off",
        arithmetic: Arithmetic = "fast",
        channels_last: bool = True,
    ) -> None:
        if dtype is not None and not dtype.is_floating_point:
            raise InputError(f"the network dtype must be a floating-point dtype, got {dtype}")
        if dtype is not None and dtype != _network_dtype(model):
            model = copy.deepcopy(model)
            model.encoder.to(dtype)
            model.decoder.to(dtype)
        self.model = model.eval()
        self.arithmetic = arithmetic
        set_arithmetic(self.model, arithmetic)
        self.facts = self.model.facts
        param = next(self.model.decoder.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.channels_last = channels_last
        self.compile = compile
        self._encoder = CompiledFunction.for_mode(self._encoder_step, name="the encoder", mode=compile)
        self._decoder = CompiledFunction.for_mode(self._decoder_step, name="the decoder", mode=compile)

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device}, dtype={self.dtype}, compile={self.compile!r}, arithmetic={self.arithmetic!r})"

    @property
    def compiled(self) -> bool:
        """True while encoder and decoder steps go through ``torch.compile`` (not off, not failed)."""
        return all(isinstance(f, CompiledFunction) and f.active for f in (self._encoder, self._decoder))

    # -- the two step functions: the units that are compiled -------------------------------------

    def _encoder_step(self, chunk: Tensor, past: Sequence[Tensor] | None, stateful: bool) -> tuple[Tensor, list[Tensor]]:
        """A streamed step (:func:`~vidtok_kit.stream.steps.encode_step`), or a whole clip without state."""
        if not stateful:
            return self.model.encoder(chunk, None), []
        return tuple(encode_step(self.model, chunk, past))  # type: ignore[return-value]

    def _decoder_step(
        self, latent: Tensor, past: Sequence[Tensor] | None, stateful: bool, final: bool
    ) -> tuple[Tensor, list[Tensor]]:
        if not stateful:
            return self.model.decoder(latent, None), []
        return tuple(decode_step(self.model, latent, past, final=final))  # type: ignore[return-value]

    # -- StepBackend ---------------------------------------------------------------------------

    def prepare(self, x: Tensor) -> Tensor:
        x = x.to(device=self.device, dtype=self.dtype)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    def plan(self, height: int, width: int, which: Which, *, max_memory: int, total: int | None = None) -> StreamPlan:
        from vidtok_kit.stream.budget import (
            MAX_CHUNK_FRAMES,
            MAX_WINDOW_FRAMES,
            WHOLE_CLIP_ACTIVATION_FACTOR,
            plan_stream,
        )

        itemsize = self.dtype.itemsize
        if total is not None and self.arithmetic == "fast":
            # a known stream that fits the budget whole runs as one step: the whole-clip forms
            # are the fastest and, without state copies, the leanest per frame
            tdf = self.facts.temporal_factor
            frames = -(-total // tdf) * tdf if which == "encode" else total * tdf
            whole = plan_stream(self.model, height, width, which, max_memory=max_memory, itemsize=itemsize,
                                max_frames=frames, factor=WHOLE_CLIP_ACTIVATION_FACTOR[which])
            if whole.tile is None and whole.chunk * (1 if which == "encode" else tdf) >= frames:
                return whole
        max_frames = MAX_CHUNK_FRAMES if self.facts.mode.causal else MAX_WINDOW_FRAMES
        plan = plan_stream(self.model, height, width, which, max_memory=max_memory, itemsize=itemsize, max_frames=max_frames)
        if self.device.type == "cpu":
            # a stream cut to fit the budget: the budget comes first, and a kept heap fragments
            # (ACTIVATION_FACTOR is calibrated on the C library's default heap)
            return_freed_memory()
        return plan

    def temporal_radius(self, which: Which) -> int:
        from vidtok_kit.stream.windows import temporal_radius

        return temporal_radius(self.model, which)

    def encode_step(
        self, chunk: Tensor, past: Sequence[Tensor] | None, *, final: bool, front_pad: int = 0
    ) -> tuple[Tensor, list[Tensor]]:
        with torch.inference_mode():
            return self._encoder(chunk, past, not (past is None and final))

    def regularize(self, h: Tensor, *, sample: bool = False) -> EncodedChunk:
        with torch.inference_mode():
            reg = self.model.regularizer(h, sample=sample)
        return EncodedChunk(reg.latent, reg.indices)

    def decode_step(self, latent: Tensor, past: Sequence[Tensor] | None, *, final: bool) -> tuple[Tensor, list[Tensor]]:
        with torch.inference_mode():
            return self._decoder(latent, past, not (past is None and final), final)

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model.regularizer.indices_to_latent(indices.to(self.device))

    # -- what a token file records ---------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"backend": "torch", "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "compile": self.compile, "arithmetic": self.arithmetic}
