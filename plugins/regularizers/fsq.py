"""Finite Scalar Quantization: the discrete VidTok models.

Paper: Finite Scalar Quantization: VQ-VAE Made Simple, arXiv:2309.15505; VidTok arXiv:2412.13061 §3.2.
Adapted from lucidrains/vector-quantize-pytorch ``finite_scalar_quantization.py`` as used by
microsoft/VidTok ``FSQRegularizer``. Indices use channel 0 as the least-significant digit.
The ``atanh`` offsets are computed in Python and stored as constants so that the legacy ONNX
exporter never sees an ``atanh`` of a constant tensor.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
from einops import rearrange
from torch import Tensor

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.layers import no_autocast

__all__ = ["FSQRegularizer"]


def _levels(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen(kw_only=True)
class FSQConfig:
    #: quantization levels per latent channel; the codebook size is their product
    levels: tuple[int, ...] = attrs.field(
        default=(8, 8, 8, 8, 8, 8),
        converter=_levels,
        validator=attrs.validators.deep_iterable(attrs.validators.ge(2), attrs.validators.min_len(1)),
    )
    #: weight of the entropy regularisation (0 = off)
    entropy_loss_weight: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    #: weight of the commitment loss (0 = off)
    commitment_loss_weight: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)


class FSQRegularizer(Regularizer):
    """Bounds each channel with tanh, rounds to its levels (straight-through), normalises to [-1, 1)."""

    name = "fsq"
    Config = FSQConfig
    discrete = True

    def __init__(self, config: FSQConfig, *, z_channels: int) -> None:
        super().__init__(config, z_channels=z_channels)
        if len(config.levels) != z_channels:
            raise ValueError(
                f"fsq: {len(config.levels)} levels {list(config.levels)} need z_channels = {len(config.levels)}, "
                f"got {z_channels}"
            )
        # computed in Python so the buffers are exact constants, also when built on the meta device
        eps = 1e-3
        half_l = [(lv - 1) * (1 + eps) / 2 for lv in config.levels]
        offset = [0.5 if lv % 2 == 0 else 0.0 for lv in config.levels]
        shift = [math.atanh(o / h) for o, h in zip(offset, half_l)]
        basis = [1]
        for lv in config.levels[:-1]:
            basis.append(basis[-1] * lv)
        f32 = torch.float32
        self.register_buffer("levels", torch.tensor(config.levels, dtype=f32), persistent=False)
        self.register_buffer("half_l", torch.tensor(half_l, dtype=f32), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=f32), persistent=False)
        self.register_buffer("shift", torch.tensor(shift, dtype=f32), persistent=False)
        self.register_buffer("half_width", torch.tensor([lv // 2 for lv in config.levels], dtype=f32), persistent=False)
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def bound(self, z: Tensor) -> Tensor:
        """Continuous, bounded values whose rounding gives the integer codes; (..., C) channels last."""
        return torch.tanh(z + self.shift) * self.half_l - self.offset

    def quantize(self, z: Tensor) -> Tensor:
        """Channels-last z -> normalised codes in [-1, 1) with a straight-through gradient."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self.half_width

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Channels-last normalised codes -> integer indices (channel 0 least significant)."""
        digits = torch.round(codes * self.half_width + self.half_width).long()
        return (digits * self.basis).sum(dim=-1).to(self.index_dtype)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Integer indices (...) -> channels-last normalised codes (..., C)."""
        digits = (indices.long().unsqueeze(-1) // self.basis) % self.levels.long()
        return (digits.float() - self.half_width) / self.half_width

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """(B, T, H, W) integer tokens -> (B, C, T, H, W) latent."""
        return rearrange(self.indices_to_codes(indices), "b t h w c -> b c t h w")

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) -> codes (B, C, T, H, W) and indices (B, T, H, W); always fp32."""
        with no_autocast(h):
            z = rearrange(h.float(), "b c t h w -> b t h w c")
            codes = self.quantize(z)
            indices = self.codes_to_indices(codes)
            latent = rearrange(codes, "b t h w c -> b c t h w")
        loss = h.new_zeros((), dtype=torch.float32)
        return RegOut(latent=latent, loss=loss, indices=indices, logs={})


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [FSQRegularizer]
