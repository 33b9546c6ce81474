"""Finite Scalar Quantization: the discrete VidTok models.

Paper: Finite Scalar Quantization: VQ-VAE Made Simple, arXiv:2309.15505; VidTok arXiv:2412.13061 §3.2.
Adapted from lucidrains/vector-quantize-pytorch ``finite_scalar_quantization.py`` as used by
microsoft/VidTok ``FSQRegularizer``. Indices use channel 0 as the least-significant digit.
The ``atanh`` offsets are computed in Python and stored as constants so that the legacy ONNX
exporter never sees an ``atanh`` of a constant tensor.

Training losses (VidTok's ``aux_loss``), both computed on the **raw, unbounded** encoder output
``z`` (channels last, fp32), as in the original:

* entropy regularisation ``mean_n H(p_n) - gamma * H(mean_n p_n)`` with
  ``p_n = softmax(-distance * inv_temperature)`` over the whole implicit codebook and
  ``distance = -2 <z_n, c>`` (c = normalised codes; not a Euclidean distance, as ``|c|^2`` varies).
  The original builds the tokens x codebook matrix (5.4 GB per 17x256x256 clip at 262,144 codes);
  here the logits factorise over channels and :func:`~vidtok_kit.model.entropy.factorized_entropy`
  gives the same value and gradient in ``O(K)`` memory. Entropies are exact (the original clamps
  probabilities at 1e-5 inside the log; identical wherever probabilities exceed it).
  Its weight is annealed linearly from ``annealing_factor * w`` to ``w`` over
  ``annealing_steps`` steps.
* commitment ``MSE(z, sg(codes)) * commitment_loss_weight``.

**Step unit.** The original anneals with ``n_steps = global_step // 2`` because Lightning's
``global_step`` counts both optimizer steps (autoencoder and discriminator) of an iteration. The
``step`` passed to :meth:`FSQRegularizer.forward` counts iterations (vidtok-kit's trainer passes
its iteration counter), which equals ``global_step // 2``: ``entropy_loss_annealing_steps = 2000``
means the same schedule as the released configs.

The losses are computed only in training mode; the original also runs them inside ``encode()`` at
inference (spec §8.3), which changes no code.
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
from vidtok_kit.codebook import batch_codebook_logs
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.entropy import annealed_weight, factorized_entropy
from vidtok_kit.model.layers import no_autocast

__all__ = ["FSQConfig", "FSQRegularizer"]


def _levels(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen(kw_only=True)
class FSQConfig:
    #: quantization levels per latent channel; the codebook size is their product
    levels: tuple[int, ...] = attrs.field(
        default=(8, 8, 8, 8, 8, 8),
        converter=_levels,
        validator=v.deep_iterable(v.ge(2), v.min_len(1)),
    )
    #: weight of the entropy regularisation (0 = off; VidTok: 0.1)
    entropy_loss_weight: float = attrs.field(default=0.0, validator=v.ge(0.0))
    #: steps over which the entropy weight falls linearly from factor * weight to weight (VidTok: 2000)
    entropy_loss_annealing_steps: int = attrs.field(default=0, validator=v.ge(0))
    #: the entropy weight at step 0 is this times ``entropy_loss_weight`` (VidTok: 3)
    entropy_loss_annealing_factor: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: code probabilities are softmax(2 * inv_temperature * <z, c>) (VidTok: 100)
    entropy_inv_temperature: float = attrs.field(default=100.0, validator=v.gt(0.0))
    #: weight of the codebook-entropy (diversity) term relative to the per-token term
    diversity_gamma: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: weight of the commitment loss MSE(z, sg(codes)) (0 = off; VidTok: 0.25)
    commitment_loss_weight: float = attrs.field(default=0.0, validator=v.ge(0.0))

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)


class FSQRegularizer(Regularizer):
    """Bounds each channel with tanh, rounds to its levels (straight-through), normalises to [-1, 1)."""

    name = "fsq"
    Config = FSQConfig
    discrete = True

    levels: Tensor
    half_l: Tensor
    offset: Tensor
    shift: Tensor
    half_width: Tensor
    basis: Tensor

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

    def channel_values(self, channel: int) -> Tensor:
        """The normalised code values of one channel, in digit order: ``(digit - L//2) / (L//2)``."""
        level = self.config.levels[channel]
        half = level // 2
        return (torch.arange(level, dtype=torch.float32, device=self.half_width.device) - half) / half

    def entropy_terms(self, z: Tensor) -> Any:
        """Per-token and codebook entropy of ``softmax(2 * inv_temperature * <z, c>)``; z is (N, C) raw."""
        scale = 2.0 * self.config.entropy_inv_temperature
        logits = [scale * z[:, c : c + 1] * self.channel_values(c) for c in range(z.shape[1])]
        return factorized_entropy(logits)

    def aux_loss(self, z: Tensor, codes: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """VidTok's ``aux_loss`` on channels-last raw ``z`` and its normalised ``codes``."""
        cfg = self.config
        loss = z.new_zeros(())
        logs: dict[str, Tensor] = {}
        if cfg.entropy_loss_weight > 0:
            terms = self.entropy_terms(z.reshape(-1, z.shape[-1]))
            weight = annealed_weight(
                cfg.entropy_loss_weight, step, cfg.entropy_loss_annealing_steps, cfg.entropy_loss_annealing_factor
            )
            loss = loss + weight * terms.loss(cfg.diversity_gamma)
            logs["entropy_per_token"] = terms.per_token.detach()
            logs["entropy_codebook"] = terms.codebook.detach()
            logs["entropy_weight"] = z.new_tensor(weight)
        if cfg.commitment_loss_weight > 0:
            commitment = F.mse_loss(z, codes.detach())
            loss = loss + cfg.commitment_loss_weight * commitment
            logs["commitment"] = commitment.detach()
        return loss, logs

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) -> codes (B, C, T, H, W) and indices (B, T, H, W); always fp32.

        :param step: training iteration (= the original's ``global_step // 2``), for annealing.
        """
        with no_autocast(h):
            z = rearrange(h.float(), "b c t h w -> b t h w c")
            codes = self.quantize(z)
            indices = self.codes_to_indices(codes)
            latent = rearrange(codes, "b t h w c -> b c t h w")
            if self.training:
                loss, logs = self.aux_loss(z, codes, step)
                logs.update(batch_codebook_logs(indices, self.codebook_size))
            else:
                loss, logs = z.new_zeros(()), {}
        return RegOut(latent=latent, loss=loss, indices=indices, logs=logs)


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [FSQRegularizer]
