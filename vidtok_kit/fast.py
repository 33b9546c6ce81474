"""Inference fast path: the same numbers as :meth:`VideoTokenizer.encode` / ``decode``, faster and leaner.

What it does on top of the model (which already runs per-pixel temporal convs as ``(3, 1, 1)``
Conv3d on the 5-D tensor, with no per-pixel reshapes):

* ``torch.inference_mode`` (no autograd bookkeeping, activations freed as soon as they are dead);
* channels-last (``channels_last_3d``) memory layout: oneDNN's fast convolution layout, and it
  makes the per-frame ``(B, C, T, H, W) -> (B*T, C, H, W)`` views free (no copies);
* ``chunked=True``: time is processed in chunks by the exact causal streaming engine
  (:mod:`vidtok_kit.stream`), so only one chunk's activations are alive at every level; the
  result equals the whole-clip run to fp32 rounding;
* ``dtype=torch.bfloat16``: a bf16 copy of the model from :func:`for_inference` (~2.5x faster
  convolutions on CPUs with AMX/AVX512-BF16); quantizers, KL, pooling and upsampling stay fp32
  as in the model. Outputs are returned as float32.

Usage::

    fast_model = for_inference(model, dtype=torch.bfloat16)  # once
    latent = encode(fast_model, video)                       # (B, z, T', H', W') float32
    video = decode(fast_model, latent)
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vidtok_kit.errors import InputError

if TYPE_CHECKING:
    from vidtok_kit.interfaces import RegOut
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["DEFAULT_CHUNK_LATENTS", "decode", "encode", "encode_reg", "for_inference"]

#: latent frames per chunk of the chunked path (input frames = this x temporal factor)
DEFAULT_CHUNK_LATENTS = 2


def for_inference(model: VideoTokenizer, dtype: torch.dtype | None = None) -> VideoTokenizer:
    """An eval-mode model for the fast path: ``model`` itself (fp32) or a copy cast to ``dtype``.

    Weights are kept contiguous: oneDNN reorders them per call either way, and a channels-last
    weight copy would change nothing but memory.
    """
    param = next(model.parameters())
    if dtype is None or dtype == param.dtype:
        return model.eval()
    return copy.deepcopy(model).to(dtype).eval()


def _param_dtype(model: VideoTokenizer) -> torch.dtype:
    return next(model.parameters()).dtype


def _layout(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x.to(dtype).contiguous(memory_format=torch.channels_last_3d)


def _chunkable(model: VideoTokenizer) -> bool:
    return bool(model.mode.causal)


def encode_reg(model: VideoTokenizer, x: Tensor, *, chunked: bool = False) -> RegOut:
    """Whole-clip encode on the fast path (inference mode, channels-last): the regularizer output."""
    model.check_video(x)
    with torch.inference_mode():
        return model.encode(_layout(x, _param_dtype(model)))


def encode(model: VideoTokenizer, x: Tensor, *, chunked: bool = True, chunk_latents: int = DEFAULT_CHUNK_LATENTS) -> Tensor:
    """(B, C, T, H, W) in [-1, 1] -> float32 latents (B, z, T', H', W'), equal to ``model.encode(x).latent``.

    ``chunked`` streams time through :class:`vidtok_kit.stream.StreamingEncoder` (causal models
    only; non-causal models always run the whole clip, since their windows are not exact).
    """
    model.check_video(x)
    dtype = _param_dtype(model)
    with torch.inference_mode():
        if not (chunked and _chunkable(model)):
            return model.encode(_layout(x, dtype)).latent.float()
        from vidtok_kit.stream import encode_stream

        chunk = max(1, chunk_latents) * model.temporal_factor
        parts = [
            c.latent.float()
            for c in encode_stream(model, [_layout(x, dtype)], num_frames=x.shape[2], chunk_frames=chunk)
        ]
        return torch.cat(parts, dim=2)


def decode(
    model: VideoTokenizer,
    latent: Tensor,
    *,
    num_frames: int | None = None,
    chunked: bool = True,
    chunk_latents: int = DEFAULT_CHUNK_LATENTS,
) -> Tensor:
    """float latents (B, z, T', H', W') -> float32 video, equal to ``model.decode(latent, num_frames=...)``."""
    model._check_latent(latent)
    dtype = _param_dtype(model)
    with torch.inference_mode():
        if not (chunked and _chunkable(model)):
            return model.decode(_layout(latent, dtype), num_frames=num_frames).float()
        from vidtok_kit.stream import decode_stream

        parts = [f.float() for f in decode_stream(model, [_layout(latent, dtype)], chunk_latents=max(1, chunk_latents))]
        full = torch.cat(parts, dim=2)
    keep = model.output_frames(latent.shape[2]) if num_frames is None else num_frames
    if not 1 <= keep <= full.shape[2]:
        raise InputError(f"num_frames must be in 1..{full.shape[2]} for {latent.shape[2]} latent frames, got {keep}")
    return full[:, :, full.shape[2] - keep :]
