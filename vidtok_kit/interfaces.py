"""What a component must look like: the ABCs every built-in and third-party component implements.

A component is an ``nn.Module`` subclass with a ``name`` (the recipe ``kind``) and a nested
``@attrs.frozen(kw_only=True) Config`` holding its recipe options. Values that come from the
architecture (channel counts, causality) are keyword-only constructor arguments instead.
Causal context is never stored on a module: it travels in an explicit
:class:`~vidtok_kit.model.layers.StreamState` passed to ``forward``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from vidtok_kit.model.layers import StreamState, TimeMode

__all__ = [
    "FusionBlock",
    "RegOut",
    "Regularizer",
    "SamplerPair",
    "SpatialSamplerPair",
    "TemporalSamplerPair",
    "Tokenizer",
    "smallest_index_dtype",
]


class RegOut(NamedTuple):
    """What a regularizer returns (a NamedTuple so torch.export and ONNX can flatten it)."""

    #: the latent the decoder takes: KL mean or sample, quantized codes for discrete regularizers
    latent: Tensor
    #: scalar training loss of the regularizer, already weighted by its own config
    loss: Tensor
    #: integer tokens (B, T', H', W') for discrete regularizers, else None
    indices: Tensor | None
    #: detached diagnostics (kl, commitment, entropy, ...)
    logs: dict[str, Tensor]


def smallest_index_dtype(codebook_size: int) -> torch.dtype:
    """Smallest integer dtype holding indices ``0 .. codebook_size-1`` (uint8 / int16 / int32 / int64).

    int16 rather than uint16 above 256 codes because uint16 tensors lack most torch kernels.
    """
    if codebook_size <= 256:
        return torch.uint8
    if codebook_size <= 2**15:
        return torch.int16
    if codebook_size <= 2**31:
        return torch.int32
    return torch.int64


class Regularizer(nn.Module, abc.ABC):
    """Maps the encoder output to the decoder's latent (continuous or quantized) plus a loss."""

    name: ClassVar[str]
    Config: ClassVar[type]
    #: True for quantizers that produce integer tokens
    discrete: ClassVar[bool] = False

    def __init__(self, config: Any, *, z_channels: int) -> None:
        super().__init__()
        self.config = config
        self.z_channels = z_channels

    @classmethod
    def encoder_channels(cls, config: Any, z_channels: int) -> int:
        """Channels the encoder must emit for ``z_channels`` latent channels (KL: mean + logvar)."""
        return z_channels

    @abc.abstractmethod
    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """Regularize the encoder output ``h`` of layout (B, C, T, H, W).

        :param sample: draw a posterior sample where the regularizer is stochastic (training);
            the default is the deterministic latent.
        :param step: global training step, for annealed loss weights.
        """

    # -- discrete regularizers only -------------------------------------------------------------

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError(f"regularizer {self.name!r} is continuous: it has no codebook")

    @property
    def index_dtype(self) -> torch.dtype:
        return smallest_index_dtype(self.codebook_size)

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """Integer tokens (B, T, H, W) to the decoder's latent (B, C, T, H, W)."""
        raise NotImplementedError(f"regularizer {self.name!r} is continuous: it has no indices")


class FusionBlock(nn.Module, abc.ABC):
    """A residual block mixing space and time; keeps T, H, W and may change channels."""

    name: ClassVar[str]
    Config: ClassVar[type]

    # Constructor contract: ``__init__(self, config, *, in_channels, out_channels, mode)``. There is
    # deliberately no ``__init__`` here, so a block can inherit a shared residual block from
    # :mod:`vidtok_kit.model.blocks` first and keep the original checkpoint's key layout.

    @abc.abstractmethod
    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, H, W); ``state`` carries causal context when streaming."""


class SamplerPair(abc.ABC):
    """One registered name = a matching down module (encoder) and up module (decoder).

    ``Down(config, *, channels, mode)`` and ``Up(config, *, channels, mode, ...)`` are nn.Modules
    whose ``forward(x, state=None)`` takes and returns (B, C, T, H, W) with the sampled axes
    changed by ``factor``.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    Down: ClassVar[type[nn.Module]]
    Up: ClassVar[type[nn.Module]]
    factor: ClassVar[int] = 2


class SpatialSamplerPair(SamplerPair):
    """Halves / doubles H and W. ``Up(config, *, channels, mode)``."""

    @classmethod
    def out_size(cls, size: int) -> int:
        return size // cls.factor


class TemporalSamplerPair(SamplerPair):
    """Halves / doubles T. ``Up(config, *, channels, mode, lead_frames)``.

    ``lead_frames`` is how many leading frames of a causal clip belong to its first latent at that
    depth (1 at the deepest temporal upsampler, doubling outward): VidTok v1.1 interpolates them on
    their own so the first, image-like latent never blends with the next one. An ``Up`` that
    interpolates with :func:`~vidtok_kit.model.layers.upsample_time` must pass it its ``state``:
    v1.1 interpolation looks one frame ahead, and streaming holds that frame in the state.
    """

    #: True for a joint space-time sampler: at levels that resample both time and space its
    #: ``Down`` / ``Up`` also halve / double H and W and replace the spatial sampler there (one
    #: strided 3-D conv, as in fully 3-D tokenizers; the paper's Table 2 Variant 1).
    joint: ClassVar[bool] = False

    @classmethod
    def out_frames(cls, frames: int) -> int:
        return frames // cls.factor


@runtime_checkable
class Tokenizer(Protocol):
    """What everything that encodes or decodes takes (the CLI, token files, evaluation, export checks).

    :func:`vidtok_kit.load` returns one, whatever runs the network: the PyTorch model prepared for
    inference (fast arithmetic, channels-last, optionally compiled, any dtype) or an export
    directory on ONNX Runtime / TensorRT. Whole clips and streams go through the same driver
    (:mod:`vidtok_kit.stream.engine`); the frame rules are :mod:`vidtok_kit.model.frames`'.

    A component author never implements this: components are modules of the model
    (:class:`Regularizer`, :class:`SamplerPair`, :class:`FusionBlock`). A module with a faster
    exact form declares ``fast_arithmetic = False`` as a class attribute and reads
    ``self.fast_arithmetic`` in ``forward``; see :mod:`vidtok_kit.model.shortcuts`.
    """

    # -- model facts --
    @property
    def mode(self) -> TimeMode: ...
    @property
    def temporal_factor(self) -> int: ...
    @property
    def spatial_factor(self) -> int: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def z_channels(self) -> int: ...
    @property
    def discrete(self) -> bool: ...
    @property
    def codebook_size(self) -> int | None: ...
    @property
    def index_dtype(self) -> torch.dtype | None: ...

    #: what a token file records about the model: recipe TOML, checkpoint path and hash, ...
    provenance: dict[str, Any]

    # -- frame rules --
    def latent_frames(self, frames: int) -> int: ...
    def output_frames(self, latent_frames: int) -> int: ...
    def check_video(self, x: Tensor) -> None: ...

    # -- whole clips --
    def encode(self, x: Tensor, *, sample: bool = False, chunk_frames: int | None = None) -> RegOut: ...
    def decode(self, latent: Tensor, *, num_frames: int | None = None, chunk_latents: int | None = None) -> Tensor: ...
    def decode_indices(self, indices: Tensor, *, num_frames: int | None = None, chunk_latents: int | None = None) -> Tensor: ...

    # -- streams --
    def streaming_encoder(self, **options: Any) -> Any: ...
    def streaming_decoder(self, **options: Any) -> Any: ...
    def encode_stream(self, chunks: Iterable[Tensor], **options: Any) -> Iterator[Any]: ...
    def decode_stream(self, latents: Iterable[Tensor], **options: Any) -> Iterator[Tensor]: ...
