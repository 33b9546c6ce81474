"""Residual FSQ: several FSQ stages, each quantizing what the previous ones left over.

Papers: Finite Scalar Quantization: VQ-VAE Made Simple, arXiv:2309.15505 (the stage quantizer);
Autoregressive Image Generation using Residual Quantization, arXiv:2203.01941 (the residual
scheme). Adapted from lucidrains/vector-quantize-pytorch ``residual_fsq.py``: stage ``q`` works on
``residual / scale_q`` with ``scale_q = (L - 1) ** -q`` per channel, so later stages refine at a
finer grid.

This module is the worked example of a third-party vidtok-kit plugin (docs/plugins.md). It
imports only vidtok-kit's public API (``hookimpl``, the ``Regularizer`` interface, ``RegOut`` and
``no_autocast``), registers through the ``vidtok_kit`` entry-point group (see pyproject.toml), and
its name ``rfsq`` is the recipe ``kind``::

    [model.regularizer]
    kind = "rfsq"
    levels = [4, 4, 4]
    num_quantizers = 2

One token index packs every stage: ``index = sum_q idx_q * K**q`` with ``K = prod(levels)``
(stage 0 least significant), so the codebook has ``K ** num_quantizers`` codes and the decoder
can be driven from indices like any discrete vidtok-kit tokenizer.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from einops import rearrange
from torch import Tensor

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.layers import no_autocast

__all__ = ["ResidualFSQConfig", "ResidualFSQRegularizer"]


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in value)


@attrs.frozen(kw_only=True)
class ResidualFSQConfig:
    #: FSQ levels per latent channel, shared by every stage
    levels: tuple[int, ...] = attrs.field(default=(4, 4, 4), converter=_ints, validator=v.deep_iterable(v.ge(2), v.min_len(1)))
    #: number of residual stages; the codebook has prod(levels) ** num_quantizers codes
    num_quantizers: int = attrs.field(default=2, validator=[v.ge(1), v.le(8)])
    #: weight of MSE(z, sg(latent)) in the training loss (0 = off)
    commitment_loss_weight: float = attrs.field(default=0.0, validator=v.ge(0.0))


class ResidualFSQRegularizer(Regularizer):
    """FSQ applied ``num_quantizers`` times to the remaining residual; latent = sum of the stages."""

    name = "rfsq"
    Config = ResidualFSQConfig
    discrete = True

    levels: Tensor
    half_l: Tensor
    offset: Tensor
    shift: Tensor
    half_width: Tensor
    basis: Tensor
    scales: Tensor

    def __init__(self, config: ResidualFSQConfig, *, z_channels: int) -> None:
        super().__init__(config, z_channels=z_channels)
        if len(config.levels) != z_channels:
            raise ValueError(f"rfsq: {len(config.levels)} levels need z_channels = {len(config.levels)}, got {z_channels}")
        if self.codebook_size >= 2**63:
            raise ValueError(f"rfsq: {self.codebook_size} codes do not fit int64 indices; use fewer stages or levels")
        levels = config.levels
        half_l = [(lv - 1) * (1 + 1e-3) / 2 for lv in levels]
        offset = [0.5 if lv % 2 == 0 else 0.0 for lv in levels]
        basis = [math.prod(levels[:c]) for c in range(len(levels))]
        scales = [[(lv - 1) ** -q for lv in levels] for q in range(config.num_quantizers)]
        f32 = torch.float32
        # derived constants: not saved in checkpoints
        self.register_buffer("levels", torch.tensor(levels, dtype=f32), persistent=False)
        self.register_buffer("half_l", torch.tensor(half_l, dtype=f32), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=f32), persistent=False)
        self.register_buffer("shift", torch.tensor([math.atanh(o / h) for o, h in zip(offset, half_l)], dtype=f32), persistent=False)
        self.register_buffer("half_width", torch.tensor([lv // 2 for lv in levels], dtype=f32), persistent=False)
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.int64), persistent=False)
        self.register_buffer("scales", torch.tensor(scales, dtype=f32), persistent=False)

    @property
    def stage_size(self) -> int:
        return math.prod(self.config.levels)

    @property
    def codebook_size(self) -> int:
        return self.stage_size**self.config.num_quantizers

    def _stage(self, x: Tensor) -> Tensor:
        """One FSQ stage on channels-last ``x``: integer digits - L//2 (as floats), straight-through."""
        bounded = torch.tanh(x + self.shift) * self.half_l - self.offset
        # exact in value (round + 0), identity gradient: keeps indices_to_latent bit-identical
        return torch.round(bounded).detach() + (bounded - bounded.detach())

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Channels-last ``z`` -> (latent, packed indices)."""
        residual, latent = z, torch.zeros_like(z)
        index = torch.zeros(z.shape[:-1], dtype=torch.int64, device=z.device)
        for q in range(self.config.num_quantizers):
            centred = self._stage(residual / self.scales[q])
            codes = centred / self.half_width * self.scales[q]
            latent = latent + codes
            residual = residual - codes.detach()
            digits = (centred.detach() + self.half_width).long()
            index = index + (digits * self.basis).sum(dim=-1) * self.stage_size**q
        return latent, index

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """(B, T, H, W) packed tokens -> (B, C, T, H, W) latent, the same sum the encoder formed."""
        rest = indices.long()
        latent = torch.zeros((*indices.shape, self.z_channels), device=indices.device)
        for q in range(self.config.num_quantizers):
            stage = rest % self.stage_size
            rest = rest // self.stage_size
            digits = (stage.unsqueeze(-1) // self.basis) % self.levels.long()
            latent = latent + (digits.float() - self.half_width) / self.half_width * self.scales[q]
        return rearrange(latent, "b t h w c -> b c t h w")

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) -> latent (B, C, T, H, W) and packed indices (B, T, H, W); always fp32."""
        with no_autocast(h):
            z = rearrange(h.float(), "b c t h w -> b t h w c")
            latent, index = self.quantize(z)
            loss, logs = z.new_zeros(()), dict[str, Tensor]()
            if self.training and self.config.commitment_loss_weight > 0:
                commitment = F.mse_loss(z, latent.detach())
                loss = self.config.commitment_loss_weight * commitment
                logs = {"commitment": commitment.detach()}
        latent = rearrange(latent, "b t h w c -> b c t h w")
        return RegOut(latent=latent, loss=loss, indices=index.to(self.index_dtype), logs=logs)


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [ResidualFSQRegularizer]
