"""Vector quantization with a learned codebook: the VQ baseline of VidTok's Table 3.

Paper: Neural Discrete Representation Learning (VQ-VAE), arXiv:1711.00937 (straight-through
estimator, commitment and codebook losses; EMA codebook updates in its appendix and in VQ-VAE-2,
arXiv:1906.00446); VidTok arXiv:2412.13061 §4.3 (Table 3: plain VQ uses few codes).
Adapted from taming-transformers ``VectorQuantizer2`` (uniform init in +-1/K) and
lucidrains/vector-quantize-pytorch ``vector_quantize_pytorch.py`` (EMA with Laplace smoothing,
cluster sizes starting at 1, dead-code restart from random encoder outputs).

The tricks are all opt-in, so the default is the plain baseline:

* ``ema_decay > 0``: the codebook is a buffer that follows the EMA of its assigned encoder
  outputs instead of a codebook loss (counts and sums are summed over processes first, so every
  process keeps the same codebook);
* ``dead_code_threshold > 0``: codes whose EMA usage (tokens per step) fell below it are replaced,
  at the start of the next training step, by random encoder outputs of that step's batch
  (broadcast from process 0);
* ``entropy_loss_weight > 0``: the entropy regularisation of MAGVIT-v2 / VidTok with logits
  ``-inv_temperature * |z - e|^2``, computed in token chunks (never a full N x K matrix).

Nearest-neighbour lookup runs in token chunks of at most ``DEFAULT_CHUNK_ELEMENTS`` distances.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from einops import rearrange
from torch import Tensor, nn

from vidtok_kit import hookimpl
from vidtok_kit.codebook import all_reduce_sum_, batch_codebook_logs, broadcast_
from vidtok_kit.interfaces import RegOut, Regularizer
from vidtok_kit.model.entropy import DEFAULT_CHUNK_ELEMENTS, annealed_weight, dense_entropy
from vidtok_kit.model.layers import no_autocast

__all__ = ["VQConfig", "VQRegularizer", "nearest_codes"]


@attrs.frozen(kw_only=True)
class VQConfig:
    #: number of codes; each has ``z_channels`` dimensions
    codebook_size: int = attrs.field(default=1024, validator=v.ge(2))
    #: "uniform" (taming VQGAN: U(-1/K, 1/K)) or "normal" (N(0, 1))
    init: str = attrs.field(default="uniform", validator=v.in_(("uniform", "normal")))
    #: weight of MSE(z, sg(e)), pulling encoder outputs to their codes (VQ-VAE beta)
    commitment_loss_weight: float = attrs.field(default=0.25, validator=v.ge(0.0))
    #: weight of MSE(sg(z), e), pulling codes to encoder outputs (unused with EMA)
    codebook_loss_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: EMA decay of the codebook (0 = learn it by gradient; VQ-VAE-2: 0.99)
    ema_decay: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.lt(1.0)])
    #: Laplace smoothing of EMA cluster sizes
    ema_epsilon: float = attrs.field(default=1e-5, validator=v.gt(0.0))
    #: restart codes whose EMA usage (tokens per step) is below this (0 = never)
    dead_code_threshold: float = attrs.field(default=0.0, validator=v.ge(0.0))
    #: decay of the usage EMA that detects dead codes when ``ema_decay`` is 0
    usage_decay: float = attrs.field(default=0.99, validator=[v.ge(0.0), v.lt(1.0)])
    #: weight of the entropy regularisation (0 = off)
    entropy_loss_weight: float = attrs.field(default=0.0, validator=v.ge(0.0))
    entropy_loss_annealing_steps: int = attrs.field(default=0, validator=v.ge(0))
    entropy_loss_annealing_factor: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: code probabilities are softmax(-inv_temperature * |z - e|^2)
    entropy_inv_temperature: float = attrs.field(default=100.0, validator=v.gt(0.0))
    diversity_gamma: float = attrs.field(default=1.0, validator=v.ge(0.0))


def nearest_codes(z: Tensor, codebook: Tensor, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    """Index (N,) int64 of the nearest code (squared Euclidean) of each row of ``z`` (N, D).

    Never holds more than ``chunk_elements`` distances: tokens go in chunks of
    ``chunk_elements // K`` rows. ``|z|^2`` is constant per row and left out.
    """
    with torch.no_grad():
        sq = codebook.pow(2).sum(dim=1)
        step = max(1, chunk_elements // codebook.shape[0])
        parts = [(sq - 2 * z[s : s + step] @ codebook.T).argmin(dim=1) for s in range(0, z.shape[0], step)]
    return torch.cat(parts)


def _neg_sq_distance(z: Tensor, codebook: Tensor, inv_temperature: float) -> Tensor:
    dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)
    return -inv_temperature * dist


class VQRegularizer(Regularizer):
    """Nearest code of a learned codebook, with a straight-through gradient to the encoder."""

    name = "vq"
    Config = VQConfig
    discrete = True

    codebook: Tensor
    embed_sum: Tensor
    cluster_size: Tensor

    def __init__(self, config: VQConfig, *, z_channels: int) -> None:
        super().__init__(config, z_channels=z_channels)
        k = config.codebook_size
        init = torch.empty(k, z_channels)
        if config.init == "uniform":
            nn.init.uniform_(init, -1.0 / k, 1.0 / k)
        else:
            nn.init.normal_(init)
        self.ema = config.ema_decay > 0
        if self.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        #: EMA of tokens per step assigned to each code (starts at 1 so unused codes keep their place)
        self.register_buffer("cluster_size", torch.ones(k))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """(B, T, H, W) integer tokens -> (B, C, T, H, W) codebook vectors."""
        return rearrange(F.embedding(indices.long(), self.codebook.float()), "b t h w c -> b c t h w")

    # -- training-time codebook maintenance (buffers are training state, saved in checkpoints) ---

    @torch.no_grad()
    def _restart_dead_codes(self, flat: Tensor) -> None:
        cfg = self.config
        candidates = flat[torch.randint(flat.shape[0], (cfg.codebook_size,), device=flat.device)]
        broadcast_(candidates)
        dead = (self.cluster_size < cfg.dead_code_threshold)[:, None]
        self.codebook.copy_(torch.where(dead, candidates, self.codebook))
        if self.ema:
            self.embed_sum.copy_(torch.where(dead, candidates * cfg.dead_code_threshold, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead[:, 0], cfg.dead_code_threshold, self.cluster_size))

    @torch.no_grad()
    def _update_statistics(self, flat: Tensor, idx: Tensor) -> None:
        cfg = self.config
        decay = cfg.ema_decay if self.ema else cfg.usage_decay
        counts = all_reduce_sum_(torch.bincount(idx, minlength=cfg.codebook_size).float())
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        if self.ema:
            sums = all_reduce_sum_(torch.zeros_like(self.embed_sum).index_add_(0, idx, flat))
            self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + cfg.ema_epsilon) / (n + cfg.codebook_size * cfg.ema_epsilon) * n
            self.codebook.copy_(self.embed_sum / smoothed[:, None])

    def _losses(self, flat: Tensor, codes: Tensor, codebook: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        commitment = F.mse_loss(flat, codes.detach())
        loss = cfg.commitment_loss_weight * commitment
        logs = {"commitment": commitment.detach()}
        if not self.ema:
            codebook_loss = F.mse_loss(codes, flat.detach())
            loss = loss + cfg.codebook_loss_weight * codebook_loss
            logs["codebook_loss"] = codebook_loss.detach()
        if cfg.entropy_loss_weight > 0:
            terms = dense_entropy(
                lambda z, e: _neg_sq_distance(z, e, cfg.entropy_inv_temperature),
                flat,
                codebook,
                codebook_size=cfg.codebook_size,
            )
            weight = annealed_weight(
                cfg.entropy_loss_weight, step, cfg.entropy_loss_annealing_steps, cfg.entropy_loss_annealing_factor
            )
            loss = loss + weight * terms.loss(cfg.diversity_gamma)
            logs.update(entropy_per_token=terms.per_token.detach(), entropy_codebook=terms.codebook.detach())
        return loss, logs

    def forward(self, h: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) -> codebook vectors (B, C, T, H, W) and indices (B, T, H, W); fp32.

        :param step: training iteration, for the entropy weight's annealing.
        """
        with no_autocast(h):
            z = rearrange(h.float(), "b c t h w -> b t h w c")
            flat = z.reshape(-1, z.shape[-1])
            if self.training and self.config.dead_code_threshold > 0:
                self._restart_dead_codes(flat.detach())
            # EMA mode rewrites the buffer in place after this step's graph is built: use a copy
            codebook = self.codebook.detach().clone() if self.ema else self.codebook
            idx = nearest_codes(flat.detach(), codebook.detach())
            codes = F.embedding(idx, codebook)
            # straight-through, exact in value: codes + (z - z) = codes
            latent = codes.detach() + (flat - flat.detach())
            loss, logs = flat.new_zeros(()), dict[str, Tensor]()
            if self.training:
                loss, logs = self._losses(flat, codes, codebook, step)
                self._update_statistics(flat.detach(), idx)
                logs.update(batch_codebook_logs(idx, self.codebook_size))
            latent = rearrange(latent.reshape(z.shape), "b t h w c -> b c t h w")
        indices = idx.reshape(z.shape[:-1]).to(self.index_dtype)
        return RegOut(latent=latent, loss=loss, indices=indices, logs=logs)


@hookimpl
def vidtok_kit_register_regularizers() -> list[type[Regularizer]]:
    return [VQRegularizer]
