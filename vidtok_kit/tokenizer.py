"""The tokenizer users hold: one API over any step backend, every call through the one streaming driver.

:func:`vidtok_kit.load` returns an :class:`InferenceTokenizer`. Whatever runs the network (the PyTorch
model prepared for inference, or an export directory on ONNX Runtime / TensorRT), ``encode`` /
``decode`` / ``decode_indices`` of a whole clip are the one-chunk case of the same driver that
streams videos of any length (:mod:`vidtok_kit.stream.engine`), so a whole clip and a stream of
chunks follow the same frame rules by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vidtok_kit.interfaces import RegOut
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.stream.backend import EncodedChunk, StepBackend, TokenizerFacts
from vidtok_kit.stream.engine import WHOLE, StreamingDecoder, StreamingEncoder

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.model.layers import TimeMode
    from vidtok_kit.recipe import Recipe

__all__ = ["InferenceTokenizer"]


def _fact(name: str, doc: str) -> Any:
    """A read-only property answered by the backend's :class:`TokenizerFacts`."""
    return property(lambda self: getattr(self.backend.facts, name), doc=doc)


class InferenceTokenizer:
    """Encode videos to latents or tokens and back: the :class:`vidtok_kit.interfaces.Tokenizer` protocol.

    Videos are float (B, C, T, H, W) in [-1, 1] on any device; results come back on the input's
    device as float32 latents / frames and integer indices in :attr:`index_dtype`.

    :param backend: what runs the steps (:class:`~vidtok_kit.stream.torch_backend.TorchBackend`
        or :class:`~vidtok_kit.runtime.ExportedBackend`).
    :param recipe: the recipe the model was built from (None for an export directory).
    :param provenance: what a token file records about the model (recipe TOML, checkpoint, hash).
    """

    def __init__(self, backend: StepBackend, *, recipe: Recipe | None = None, provenance: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.recipe = recipe
        self.provenance: dict[str, Any] = dict(provenance or {})

    def __repr__(self) -> str:
        return f"InferenceTokenizer({self.backend!r}, mode={self.mode.value!r}, factors={self.temporal_factor}x{self.spatial_factor})"

    # -- model facts ---------------------------------------------------------------------------

    @property
    def facts(self) -> TokenizerFacts:
        return self.backend.facts

    mode: TimeMode = _fact("mode", "time convention: causal v1.0 / v1.1 or non-causal")
    temporal_factor: int = _fact("temporal_factor", "frames per latent frame")
    spatial_factor: int = _fact("spatial_factor", "pixels per latent pixel, each side")
    in_channels: int = _fact("in_channels", "video channels")
    z_channels: int = _fact("z_channels", "latent channels")
    discrete: bool = _fact("discrete", "True when the regularizer makes integer tokens")
    codebook_size: int | None = _fact("codebook_size", "codebook size of a discrete model, else None")
    index_dtype: torch.dtype | None = _fact("index_dtype", "dtype of the tokens (the smallest that holds the codebook)")

    @property
    def model(self) -> VideoTokenizer:
        """The PyTorch model behind a torch backend (``AttributeError`` for an exported one)."""
        model = getattr(self.backend, "model", None)
        if model is None:
            raise AttributeError(f"{self.backend!r} runs exported graphs: there is no PyTorch model")
        return model

    # -- frame rules ---------------------------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` input frames."""
        return self.facts.latent_frames(frames)

    def output_frames(self, latent_frames: int) -> int:
        """Frames :meth:`decode` returns for ``latent_frames`` latents."""
        return self.facts.output_frames(latent_frames)

    def check_video(self, x: Tensor) -> None:
        """One-line :class:`~vidtok_kit.errors.InputError` for a video this model cannot take
        (shape, frame count, dtype, and values: finite and on the [-1, 1] scale)."""
        self.facts.check_video(x, values=True)

    # -- whole clips: the one-chunk case of the streaming driver ---------------------------------

    def encode(self, x: Tensor, *, sample: bool = False, chunk_frames: int | None = None) -> RegOut:
        """(B, C, T, H, W) in [-1, 1] -> :class:`RegOut` with float32 ``.latent`` (B, z, T', H', W') and ``.indices``.

        :param sample: a posterior sample where the regularizer is stochastic (KL), else its mean.
        :param chunk_frames: stream the clip this many frames at a time (causal models: the same
            result; bounds memory for long clips); default: the whole clip in one step.
        """
        self.check_video(x)
        encoder = self.streaming_encoder(num_frames=x.shape[2], chunk_frames=chunk_frames or WHOLE,
                                         output_device=x.device, sample=sample)
        chunks = list(encoder([x]))
        latent = _join([c.latent for c in chunks], dim=2)
        indices = _join([c.indices for c in chunks], dim=1) if self.discrete else None  # type: ignore[misc]
        if indices is not None and self.index_dtype is not None:
            indices = indices.to(self.index_dtype)
        return RegOut(latent=latent, loss=latent.new_zeros(()), indices=indices, logs={})

    def decode(self, latent: Tensor, *, num_frames: int | None = None, chunk_latents: int | None = None) -> Tensor:
        """float latents (B, z, T', H', W') -> float32 video (B, C, T, H, W).

        T is :meth:`output_frames` of T' unless ``num_frames`` is given: then the last
        ``num_frames`` decoded frames (how a v1.1 model returns a clip whose length is not
        ``1 + k * tdf``).
        """
        self.facts.check_latent(latent)
        return self._decode(latent, latent.shape[2], num_frames, chunk_latents)

    def decode_indices(self, indices: Tensor, *, num_frames: int | None = None, chunk_latents: int | None = None) -> Tensor:
        """Integer tokens (B, T', H', W') of a discrete model -> float32 video, as :meth:`decode`."""
        self.facts.check_indices(indices)
        return self._decode(indices, indices.shape[1], num_frames, chunk_latents)

    def _decode(self, latents: Tensor, count: int, num_frames: int | None, chunk_latents: int | None) -> Tensor:
        decoded = count * self.temporal_factor
        keep = frame_rules.frames_to_keep(decoded, count, num_frames, default=self.output_frames(count))
        decoder = self.streaming_decoder(front_pad=decoded - keep, num_frames=keep, chunk_latents=chunk_latents or WHOLE,
                                         output_device=latents.device)
        return _join(list(decoder([latents])), dim=2)

    def reconstruct(self, x: Tensor, *, sample: bool = False) -> Tensor:
        """Encode then decode ``x``; the reconstruction has the input's frame count."""
        return self.decode(self.encode(x, sample=sample).latent, num_frames=x.shape[2])

    # -- streams -------------------------------------------------------------------------------

    def streaming_encoder(self, **options: Any) -> StreamingEncoder:
        """A :class:`~vidtok_kit.stream.StreamingEncoder` over this tokenizer's backend (options as there)."""
        return StreamingEncoder(self.backend, **options)

    def streaming_decoder(self, **options: Any) -> StreamingDecoder:
        """A :class:`~vidtok_kit.stream.StreamingDecoder` over this tokenizer's backend (options as there)."""
        return StreamingDecoder(self.backend, **options)

    def encode_stream(self, chunks: Iterable[Tensor], **options: Any) -> Iterator[EncodedChunk]:
        """Frame chunks (B, C, t, H, W) of one video -> latent chunks (``.latent``, ``.indices``)."""
        return self.streaming_encoder(**options)(chunks)

    def decode_stream(self, latents: Iterable[Tensor], **options: Any) -> Iterator[Tensor]:
        """Latent chunks (B, z, n, h, w) or token chunks (B, n, h, w) -> float32 frame chunks."""
        return self.streaming_decoder(**options)(latents)


def _join(parts: list[Tensor], *, dim: int) -> Tensor:
    """``torch.cat`` without copying a single part (a whole clip is one chunk)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)
