"""Lookup-free quantization: one bit per latent channel, ``2^d`` implicit codes.

Paper: Language Model Beats Diffusion -- Tokenizer is Key to Visual Generation (MAGVIT-v2),
arXiv:2310.05737 §3.1; the LFQ row of VidTok's Table 3 (arXiv:2412.13061 §4.3).
Adapted from lucidrains/vector-quantize-pytorch ``lookup_free_quantization.py``.

Each channel is quantized to ``-scale`` or ``+scale`` by its sign (``z > 0``), with a
straight-through gradient; the index is ``sum_c bit_c 2^c`` (channel 0 the least-significant bit,
as in vidtok-kit's FSQ; lucidrains makes channel 0 the most significant).

Training losses, on the raw encoder output ``z``:

* entropy regularisation ``mean_n H(p_n) - gamma * H(mean_n p_n)`` with
  ``p_n = softmax(2 * inv_temperature * <z_n, c>)`` over all ``2^d`` codes, as in the original
  (there ``|c|^2 = d scale^2`` is constant, so this is a true Euclidean softmax). It factorises
  into per-channel Bernoullis, so the per-token entropy is a sum of binary entropies and the
  codebook distribution is built without a tokens x codebook matrix
  (:func:`~vidtok_kit.model.entropy.factorized_entropy`); both lie in ``[0, d log 2]``;
* commitment ``MSE(z, sg(codes))``.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from einops import rearrange
from torch import Tensor

from vidtok_kit import hookimpl
from vidtok_kit.codebook import batch_codebook_logs
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.entropy import EntropyTerms, annealed_weight, factorized_entropy
from vidtok_kit.model.layers import no_autocast

__all__ = ["LFQConfig", "LFQRegularizer"]

#: the codebook-entropy term holds 2^d floats; beyond this many channels it is refused
MAX_ENTROPY_CHANNELS = 26


@attrs.frozen(kw_only=True)
class LFQConfig:
    #: magnitude of the binary code values (codes are +-scale)
    codebook_scale: float = attrs.field(default=1.0, validator=v.gt(0.0))
    #: weight of the entropy regularisation (0 = off; MAGVIT-v2: 0.1)
    entropy_loss_weight: float = attrs.field(default=0.1, validator=v.ge(0.0))
    entropy_loss_annealing_steps: int = attrs.field(default=0, validator=v.ge(0))
    entropy_loss_annealing_factor: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: code probabilities are softmax(2 * inv_temperature * <z, c>)
    entropy_inv_temperature: float = attrs.field(default=100.0, validator=v.gt(0.0))
    #: weight of the codebook-entropy (diversity) term relative to the per-token term
    diversity_gamma: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: weight of the commitment loss MSE(z, sg(codes)) (0 = off)
    commitment_loss_weight: float = attrs.field(default=0.25, validator=v.ge(0.0))


class LFQRegularizer(Regularizer):
    """Sign of every channel (straight-through); ``2 ** z_channels`` codes."""

    name = "lfq"
    Config = LFQConfig
    discrete = True

    bits: Tensor

    def __init__(self, config: LFQConfig, *, z_channels: int) -> None:
        super().__init__(config, z_channels=z_channels)
        if z_channels > 62:
            raise ValueError(f"lfq: indices are int64, so z_channels must be <= 62, got {z_channels}")
        if config.entropy_loss_weight > 0 and z_channels > MAX_ENTROPY_CHANNELS:
            raise ValueError(
                f"lfq: the entropy loss holds 2^z_channels floats; use z_channels <= {MAX_ENTROPY_CHANNELS} "
                f"or entropy_loss_weight = 0, got z_channels = {z_channels}"
            )
        self.register_buffer("bits", 2 ** torch.arange(z_channels, dtype=torch.int64), persistent=False)

    @property
    def codebook_size(self) -> int:
        return 2**self.z_channels

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Channels-last codes (+-scale) -> indices (channel 0 least significant)."""
        return ((codes > 0).long() * self.bits).sum(dim=-1).to(self.index_dtype)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Integer indices (...) -> channels-last codes (..., C) of +-scale."""
        on = (indices.long().unsqueeze(-1) // self.bits) % 2
        return (on.float() * 2 - 1) * self.config.codebook_scale

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """(B, T, H, W) integer tokens -> (B, C, T, H, W) latent."""
        return rearrange(self.indices_to_codes(indices), "b t h w c -> b c t h w")

    def entropy_terms(self, z: Tensor) -> EntropyTerms:
        """Per-token and codebook entropy of ``softmax(2 * inv_temperature * <z, c>)``; z is (N, C) raw."""
        values = torch.tensor([-1.0, 1.0], device=z.device) * self.config.codebook_scale
        scale = 2.0 * self.config.entropy_inv_temperature
        return factorized_entropy([scale * z[:, c : c + 1] * values for c in range(z.shape[1])])

    def _losses(self, z: Tensor, codes: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        loss = z.new_zeros(())
        logs: dict[str, Tensor] = {}
        if cfg.entropy_loss_weight > 0:
            terms = self.entropy_terms(z.reshape(-1, z.shape[-1]))
            weight = annealed_weight(
                cfg.entropy_loss_weight, step, cfg.entropy_loss_annealing_steps, cfg.entropy_loss_annealing_factor
            )
            loss = loss + weight * terms.loss(cfg.diversity_gamma)
            logs.update(entropy_per_token=terms.per_token.detach(), entropy_codebook=terms.codebook.detach())
        if cfg.commitment_loss_weight > 0:
            commitment = F.mse_loss(z, codes)
            loss = loss + cfg.commitment_loss_weight * commitment
            logs["commitment"] = commitment.detach()
        return loss, logs

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) -> codes (B, C, T, H, W) of +-scale and indices (B, T, H, W); fp32.

        :param step: training iteration, for the entropy weight's annealing.
        """
        with no_autocast(h):
            z = rearrange(h.float(), "b c t h w -> b t h w c")
            scale = self.config.codebook_scale
            codes = torch.where(z > 0, scale, -scale)
            # straight-through, exact in value: codes + (z - z) = codes
            quantized = codes + (z - z.detach())
            indices = self.codes_to_indices(codes)
            loss, logs = z.new_zeros(()), dict[str, Tensor]()
            if self.training:
                loss, logs = self._losses(z, codes, step)
                logs.update(batch_codebook_logs(indices, self.codebook_size))
        return RegOut(latent=rearrange(quantized, "b t h w c -> b c t h w"), loss=loss, indices=indices, logs=logs)


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [LFQRegularizer]
