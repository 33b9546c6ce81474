"""Inference fast path: the numbers of :meth:`VideoTokenizer.encode` / ``decode``, faster and leaner.

What :class:`FastTokenizer` adds on top of the model (whose layers already avoid per-pixel
reshapes and compute the spatial upsampler on the small image, see :mod:`vidtok_kit.model.subpixel`):

* ``torch.inference_mode``: no autograd bookkeeping, activations freed as soon as they are dead;
* channels-last (``channels_last_3d``) memory: oneDNN's fast convolution layout (~2x faster 3x3
  convs on this CPU than NCHW), and the per-frame ``(B, C, T, H, W) -> (B*T, C, H, W)`` views and
  the channel LayerNorm become copy-free;
* ``compile=True``: the encoder and decoder through ``torch.compile`` (Inductor, frozen weights)
  with an eager fallback when compiling fails (:class:`~vidtok_kit.compiled.CompiledFunction`):
  the per-element work around the convolutions is fused and activation buffers are reused. Each
  input shape compiles once (about a minute on 2 CPU cores), so it pays off for many clips of one
  size. Large residual sums are written out instead of being recomputed from every block's
  output (which kept them all alive), and the AlphaBlender upsampler runs as one custom operator
  with a single tap image alive: about a third of diffusers' peak memory on 17x128x128;
* ``chunk_latents=n``: time is processed ``n`` latent frames at a time by the exact causal step
  functions of :mod:`vidtok_kit.stream.steps` (causal models only), so only one chunk's activations
  are alive at every level: the peak memory stops growing with clip length;
* ``dtype=torch.bfloat16``: a bf16 copy of the model (~2.5x faster convolutions on CPUs with
  AVX512-BF16/AMX and on GPUs); quantizers, KL and the time interpolation stay fp32 as in the
  model. Outputs are float32.

Usage::

    fast = FastTokenizer(model, dtype=torch.bfloat16, compile=True)  # once
    latent = fast.encode(video)                                     # (B, z, T', H', W') float32
    video = fast.decode(latent)

``encode`` / ``decode`` / ``encode_reg`` below are the eager one-call forms.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vidtok_kit.compiled import CompiledFunction
from vidtok_kit.errors import InputError
from vidtok_kit.model.frames import frames_to_keep
from vidtok_kit.model.layers import StreamState
from vidtok_kit.model.shortcuts import fast_arithmetic
from vidtok_kit.stream.steps import first_step_latents

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vidtok_kit.interfaces import RegOut
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["DEFAULT_CHUNK_LATENTS", "FastTokenizer", "decode", "encode", "encode_reg", "for_inference"]

#: latent frames per chunk of the chunked path (input frames = this x temporal factor)
DEFAULT_CHUNK_LATENTS = 2


def for_inference(model: VideoTokenizer, dtype: torch.dtype | None = None) -> VideoTokenizer:
    """An eval-mode model for the fast path: ``model`` itself (same dtype) or a copy cast to ``dtype``.

    Weights are kept contiguous: oneDNN reorders them per call either way (and compiled graphs
    pre-pack them), so a channels-last weight copy would change nothing but memory.
    """
    param = next(model.parameters())
    if dtype is None or dtype == param.dtype:
        return model.eval()
    return copy.deepcopy(model).to(dtype).eval()


def _layout(x: Tensor, param: Tensor) -> Tensor:
    """On the model's device, in its dtype, channels-last."""
    return x.to(device=param.device, dtype=param.dtype).contiguous(memory_format=torch.channels_last_3d)


class FastTokenizer:
    """A tokenizer's inference path: same results as the model's ``encode`` / ``decode``, to rounding.

    :param model: the tokenizer; used as is (eval mode) unless ``dtype`` asks for a cast copy.
    :param dtype: run the network in this dtype (``torch.bfloat16``); None keeps the model's.
    :param compile: run encoder and decoder steps through ``torch.compile`` (eager fallback).
    :param chunk_latents: process time ``chunk_latents`` latent frames at a time (causal models;
        exact). None runs each clip whole (fastest for short clips, memory grows with length).
    """

    def __init__(
        self,
        model: VideoTokenizer,
        *,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        chunk_latents: int | None = None,
    ) -> None:
        if chunk_latents is not None and chunk_latents < 1:
            raise InputError(f"chunk_latents must be a positive number of latent frames, got {chunk_latents}")
        self.model = for_inference(model, dtype)
        self._param = next(self.model.parameters())
        self.dtype = self._param.dtype
        self.chunk_latents = chunk_latents if self.model.mode.causal else None
        self._encoder = self._maybe_compiled(self._encoder_step, "the encoder", compile)
        self._decoder = self._maybe_compiled(self._decoder_step, "the decoder", compile)

    @staticmethod
    def _maybe_compiled(fn, name: str, compile: bool):  # type: ignore[no-untyped-def]
        return CompiledFunction(fn, name=name) if compile else fn

    @property
    def compiled(self) -> bool:
        """True while encoder and decoder run compiled (False if compiling failed or was not asked)."""
        return all(isinstance(f, CompiledFunction) and f.active for f in (self._encoder, self._decoder))

    # -- the two step functions, the units that are compiled -------------------------------------

    def _encoder_step(self, chunk: Tensor, past: Sequence[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
        state = StreamState(past) if self.chunk_latents is not None else None
        h = self.model.encoder(chunk, state)
        return h, state.present if state is not None else []

    def _decoder_step(self, latent: Tensor, past: Sequence[Tensor] | None, final: bool) -> tuple[Tensor, list[Tensor]]:
        state = StreamState(past, final=final) if self.chunk_latents is not None else None
        frames = self.model.decoder(latent, state)
        return frames, state.present if state is not None else []

    # -- public API --------------------------------------------------------------------------------

    def encode_reg(self, x: Tensor) -> RegOut:
        """(B, C, T, H, W) in [-1, 1] -> the regularizer output (``.latent``, ``.indices``), as ``model.encode``."""
        model = self.model
        model.check_video(x)
        with torch.inference_mode(), fast_arithmetic():
            padded = _layout(model.pad_frames(x), self._param)  # padding concatenates: layout after
            if self.chunk_latents is None:
                h = self._encoder(padded, None)[0]
            else:
                h = torch.cat(list(self._encode_chunks(padded)), dim=2)
            return model.regularizer(h)

    def _encode_chunks(self, padded: Tensor):  # type: ignore[no-untyped-def]
        assert self.chunk_latents is not None
        step = self.chunk_latents * self.model.temporal_factor
        past: list[Tensor] | None = None
        for start in range(0, padded.shape[2], step):
            h, past = self._encoder(padded[:, :, start : start + step], past)
            yield h

    def encode(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [-1, 1] -> float32 latents (B, z, T', H', W'), equal to ``model.encode(x).latent``."""
        return self.encode_reg(x).latent.float()

    def decode(self, latent: Tensor, *, num_frames: int | None = None) -> Tensor:
        """float latents (B, z, T', H', W') -> float32 video, equal to ``model.decode(latent, num_frames=...)``."""
        model = self.model
        model._check_latent(latent)
        with torch.inference_mode(), fast_arithmetic():
            z = _layout(latent, self._param)
            if self.chunk_latents is None:
                full = self._decoder(z, None, True)[0]
            else:
                full = torch.cat(list(self._decode_chunks(z)), dim=2)
        keep = frames_to_keep(full.shape[2], latent.shape[2], num_frames, default=model.output_frames(latent.shape[2]))
        return full[:, :, full.shape[2] - keep :].float()

    def _decode_chunks(self, z: Tensor):  # type: ignore[no-untyped-def]
        assert self.chunk_latents is not None
        total, step = z.shape[2], self.chunk_latents
        bounds = [0, min(first_step_latents(self.model, step), total)]
        while bounds[-1] < total:
            bounds.append(min(bounds[-1] + step, total))
        past: list[Tensor] | None = None
        for start, end in zip(bounds, bounds[1:]):
            frames, past = self._decoder(z[:, :, start:end], past, end == total)
            yield frames


def encode_reg(model: VideoTokenizer, x: Tensor, *, chunked: bool = False) -> RegOut:
    """Eager fast-path encode (inference mode, channels-last): the regularizer output."""
    return FastTokenizer(model, chunk_latents=DEFAULT_CHUNK_LATENTS if chunked else None).encode_reg(x)


def encode(model: VideoTokenizer, x: Tensor, *, chunked: bool = True, chunk_latents: int = DEFAULT_CHUNK_LATENTS) -> Tensor:
    """(B, C, T, H, W) in [-1, 1] -> float32 latents, equal to ``model.encode(x).latent`` (eager fast path)."""
    return FastTokenizer(model, chunk_latents=chunk_latents if chunked else None).encode(x)


def decode(
    model: VideoTokenizer,
    latent: Tensor,
    *,
    num_frames: int | None = None,
    chunked: bool = True,
    chunk_latents: int = DEFAULT_CHUNK_LATENTS,
) -> Tensor:
    """float latents -> float32 video, equal to ``model.decode(latent, num_frames=...)`` (eager fast path)."""
    return FastTokenizer(model, chunk_latents=chunk_latents if chunked else None).decode(latent, num_frames=num_frames)
