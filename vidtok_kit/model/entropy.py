"""Entropy regularisation of quantizers, computed without a tokens x codebook matrix.

The entropy penalty of MAGVIT-v2 (arXiv:2310.05737 §3.1) and VidTok's FSQ (arXiv:2412.13061 §3.2)
turns each token's distances to every code into a distribution ``p_n = softmax(logits_n)`` and
penalises ``mean_n H(p_n) - gamma * H(mean_n p_n)``: confident tokens, evenly used codes. Done
literally (lucidrains' ``LFQ`` / VidTok's ``FSQRegularizer``) that is an ``N x K`` matrix, 5.4 GB
for one 17x256x256 clip at K = 262,144. Two exact ways around it live here:

* **Product codebooks** (FSQ, LFQ): the implicit codebook is the Cartesian product of per-channel
  value sets and the logit ``2 * inv_temperature * <z, c>`` is a sum over channels, so ``p_n``
  factorises into per-channel distributions. The per-token entropy is then the sum of the
  per-channel entropies (no codebook at all), and the batch-mean distribution
  ``q = mean_n (x)_c p_{n,c}`` is one GEMM between the row-wise outer products of two halves of
  the channels (``N x sqrt(K)`` each). Memory: ``K`` floats for ``q`` plus ``2 N sqrt(K)``.
* **Dense codebooks** (VQ): the logits do not factorise, so token chunks of the ``N x K`` matrix are
  built, reduced to their entropy sum and probability sum, and freed (again checkpointed).

Entropies are exact (from log-probabilities). The originals clamp probabilities at 1e-5 inside
the log as a guard against ``log 0``; that changes nothing where every probability exceeds 1e-5 and
is why their codebook entropy saturates at ``log 1e5 = 11.5`` for 262,144 codes instead of
reaching ``log 262144 = 12.5``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "EntropyTerms",
    "annealed_weight",
    "dense_entropy",
    "distributed_mean",
    "entropy",
    "factorized_entropy",
    "product_distribution_mean",
]

#: elements of the largest temporary one chunk may build (16 Mi floats = 64 MB)
DEFAULT_CHUNK_ELEMENTS = 2**24


class EntropyTerms(NamedTuple):
    """The two entropy terms; the loss is ``per_token - gamma * codebook``."""

    #: mean over tokens of the entropy of each token's code distribution (nats)
    per_token: Tensor
    #: entropy of the token-averaged distribution (nats); across processes when distributed
    codebook: Tensor

    def loss(self, diversity_gamma: float = 1.0) -> Tensor:
        return self.per_token - diversity_gamma * self.codebook


def entropy(probs: Tensor) -> Tensor:
    """Exact entropy (nats) over the last dim; zero probabilities contribute zero, with finite gradients."""
    tiny = torch.finfo(probs.dtype).tiny
    return -(probs * probs.clamp_min(tiny).log()).sum(dim=-1)


def annealed_weight(weight: float, step: int, steps: int, factor: float) -> float:
    """Weight annealed linearly from ``factor * weight`` at step 0 to ``weight`` at ``steps`` (VidTok FSQ).

    :param step: the training step the caller passes in; see the regularizer docs for its unit.
    """
    if steps <= 0 or step >= steps:
        return weight
    start = factor * weight
    return start - (step / steps) * (start - weight)


def distributed_mean(t: Tensor) -> Tensor:
    """Mean of ``t`` over processes when torch.distributed is initialised, else ``t``.

    The gradient flows to the local contribution only (scaled by 1/world), which is what the
    original's in-place ``all_reduce`` followed by a division does.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    world = dist.get_world_size()
    total = t.detach().clone()
    dist.all_reduce(total)
    return t / world + (total - t.detach()) / world


def _maybe_checkpoint(fn: Callable[..., Tensor], *args: Any) -> Tensor:
    if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _khatri_rao(probs: Sequence[Tensor]) -> Tensor:
    """Row-wise outer product (N, prod L_c) of (N, L_c) factors, channel 0 the least-significant digit."""
    out = probs[-1]
    for p in reversed(probs[:-1]):
        out = (out[:, :, None] * p[:, None, :]).flatten(1)
    return out


def _split(levels: Sequence[int]) -> int:
    """Where to cut the channels so the two halves' code counts are as balanced as possible."""
    best, best_cost = 1, None
    for m in range(1, len(levels)):
        cost = math.prod(levels[:m]) + math.prod(levels[m:])
        if best_cost is None or cost < best_cost:
            best, best_cost = m, cost
    return best


def _product_sum(split: int, *probs: Tensor) -> Tensor:
    """``sum_n`` of the product distributions: one GEMM between the two halves' Khatri-Rao products."""
    low = _khatri_rao(probs[:split])  # (n, K_low): channels 0 .. split-1
    high = _khatri_rao(probs[split:])  # (n, K_high): the more significant channels
    return (high.T @ low).flatten()  # index = k_high * K_low + k_low


def product_distribution_mean(probs: Sequence[Tensor], *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    """``mean_n`` of the product distribution of per-channel distributions, never building ``N x K``.

    The channels are cut into two halves with about ``sqrt(K)`` codes each; the sum over tokens of
    the outer products is then ``high^T @ low``, a GEMM of ``N * K`` multiply-adds whose operands
    are ``N x sqrt(K)`` (20 MB for 5120 tokens at K = 262,144). Tokens are processed in chunks of
    at most ``chunk_elements / (K_low + K_high)``, each checkpointed, to bound memory for huge N.

    :param probs: per channel c, a tensor (N, L_c) of probabilities over that channel's values.
    :return: (prod L_c,) probabilities, channel 0 the least-significant digit of the code index.
    """
    n = probs[0].shape[0]
    if len(probs) == 1:
        return probs[0].mean(0)
    levels = [p.shape[1] for p in probs]
    split = _split(levels)
    width = math.prod(levels[:split]) + math.prod(levels[split:])
    step = max(1, chunk_elements // width)
    total: Tensor | None = None
    for start in range(0, n, step):
        part = _maybe_checkpoint(_product_sum, split, *(p[start : start + step] for p in probs))
        total = part if total is None else total + part
    assert total is not None, "no tokens"
    return total / n


def factorized_entropy(logits: Sequence[Tensor], *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> EntropyTerms:
    """Entropy terms of a product codebook whose token logits are a sum of per-channel logits.

    :param logits: per channel c, (N, L_c) logits of that channel's values; the logit of code
        ``(k_0, ..., k_{C-1})`` for token n is ``sum_c logits[c][n, k_c]``.
    """
    logp = [lg.float().log_softmax(dim=-1) for lg in logits]
    probs = [lp.exp() for lp in logp]
    per_token = torch.stack([-(p * lp).sum(dim=-1) for p, lp in zip(probs, logp)]).sum(dim=0).mean()
    q = distributed_mean(product_distribution_mean(probs, chunk_elements=chunk_elements))
    return EntropyTerms(per_token=per_token, codebook=entropy(q))


def _dense_chunk(logits_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def run(z: Tensor, *params: Tensor) -> Tensor:
        logp = logits_fn(z, *params).float().log_softmax(dim=-1)
        p = logp.exp()
        # [entropy sum over the chunk's tokens, probability sums per code]
        return torch.cat([-(p * logp).sum().reshape(1), p.sum(0)])

    return run


def dense_entropy(
    logits_fn: Callable[..., Tensor],
    z: Tensor,
    *params: Tensor,
    codebook_size: int,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> EntropyTerms:
    """Entropy terms when ``logits_fn(z_chunk, *params) -> (n, K)`` does not factorise (VQ).

    :param z: (N, D) tokens; chunks of rows are passed to ``logits_fn``.
    :param params: further tensors ``logits_fn`` needs (the codebook); gradients reach them.
    """
    n = z.shape[0]
    step = max(1, chunk_elements // codebook_size)
    run = _dense_chunk(logits_fn)
    total: Tensor | None = None
    for start in range(0, n, step):
        part = _maybe_checkpoint(run, z[start : start + step], *params)
        total = part if total is None else total + part
    assert total is not None, "no tokens"
    q = distributed_mean(total[1:] / n)
    return EntropyTerms(per_token=total[0] / n, codebook=entropy(q))
