"""Codebook statistics of a discrete tokenizer: utilisation, perplexity and dead codes.

The VidTok paper (arXiv:2412.13061, Table 3) compares quantizers by their utilisation rate (U.R.):
the fraction of the codebook used at least once over an evaluation set. That needs counts
accumulated over many batches and, in a distributed evaluation, over every process, so a batch
statistic logged by the regularizer is not enough. :class:`CodebookStats` is that accumulator:
``update(indices)`` per batch, ``all_reduce()`` once at the end (or ``merge`` by hand), then read
:attr:`utilisation`, :attr:`perplexity` and :attr:`dead_codes`.

Counts are dense int64 for codebooks up to ``dense_limit`` codes (262,144 codes = 2 MB) and
sparse (sorted unique codes + counts) above it, so a 2^32-code LFQ does not allocate 32 GB.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from vidtok_kit.errors import InputError

__all__ = ["DENSE_LIMIT", "CodebookStats", "all_reduce_sum_", "batch_codebook_logs", "broadcast_"]

#: codebooks up to this size keep one int64 count per code
DENSE_LIMIT = 2**22


class CodebookStats:
    """Code-usage counts accumulated over batches and processes.

    :param codebook_size: number of codes; indices must lie in ``0 .. codebook_size - 1``.
    :param dense_limit: above this size counts are kept sparse.
    """

    def __init__(self, codebook_size: int, *, dense_limit: int = DENSE_LIMIT) -> None:
        if codebook_size < 1:
            raise InputError(f"codebook_size must be >= 1, got {codebook_size}")
        self.codebook_size = int(codebook_size)
        self.dense = self.codebook_size <= dense_limit
        self._counts = torch.zeros(self.codebook_size if self.dense else 0, dtype=torch.int64)
        #: sparse mode: sorted distinct codes seen so far, aligned with ``_counts``
        self._codes = torch.zeros(0, dtype=torch.int64)

    # -- accumulation ---------------------------------------------------------------------------

    def update(self, indices: Tensor) -> CodebookStats:
        """Count every index in ``indices`` (any shape, any integer dtype, any device)."""
        if indices.is_floating_point() or indices.is_complex():
            raise InputError(f"expected integer code indices, got dtype {indices.dtype}")
        flat = indices.detach().reshape(-1).to("cpu", torch.int64)
        if flat.numel() == 0:
            return self
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= self.codebook_size:
            bad = lo if lo < 0 else hi
            raise InputError(f"code index {bad} outside the codebook 0..{self.codebook_size - 1}")
        if self.dense:
            self._counts += torch.bincount(flat, minlength=self.codebook_size)
        else:
            codes, counts = torch.unique(flat, return_counts=True)
            self._add_sparse(codes, counts)
        return self

    def _add_sparse(self, codes: Tensor, counts: Tensor) -> None:
        merged, inverse = torch.unique(torch.cat([self._codes, codes]), return_inverse=True)
        total = torch.zeros(merged.numel(), dtype=torch.int64)
        total.index_add_(0, inverse, torch.cat([self._counts, counts]))
        self._codes, self._counts = merged, total

    def merge(self, other: CodebookStats) -> CodebookStats:
        """Add ``other``'s counts into this accumulator (same codebook size); returns self."""
        if other.codebook_size != self.codebook_size:
            raise InputError(f"cannot merge statistics of {other.codebook_size} codes into {self.codebook_size}")
        if self.dense and other.dense:
            self._counts += other._counts
        else:
            codes, counts = other._sparse()
            if self.dense:
                self._counts.index_add_(0, codes, counts)
            else:
                self._add_sparse(codes, counts)
        return self

    def all_reduce(self, group: dist.ProcessGroup | None = None) -> CodebookStats:
        """Sum counts over all processes of ``group`` (no-op unless torch.distributed is initialised).

        Every process must call it. Dense counts go through ``all_reduce`` on a tensor on the
        backend's device (CUDA for NCCL); sparse ones through ``all_gather_object``.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
            return self
        if self.dense:
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else "cpu"
            counts = self._counts.to(device)
            dist.all_reduce(counts, group=group)
            self._counts = counts.cpu()
        else:
            gathered: list[tuple[Tensor, Tensor] | None] = [None] * dist.get_world_size(group)
            dist.all_gather_object(gathered, (self._codes, self._counts), group=group)
            self._codes, self._counts = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
            for item in gathered:
                assert item is not None
                self._add_sparse(*item)
        return self

    def reset(self) -> None:
        """Forget every count (start a new evaluation)."""
        if self.dense:
            self._counts.zero_()
        else:
            self._codes = torch.zeros(0, dtype=torch.int64)
            self._counts = torch.zeros(0, dtype=torch.int64)

    def _sparse(self) -> tuple[Tensor, Tensor]:
        if not self.dense:
            return self._codes, self._counts
        codes = self._counts.nonzero().flatten()
        return codes, self._counts[codes]

    # -- statistics -----------------------------------------------------------------------------

    @property
    def counts(self) -> Tensor:
        """Dense (codebook_size,) int64 counts (materialised on demand in sparse mode)."""
        if self.dense:
            return self._counts.clone()
        out = torch.zeros(self.codebook_size, dtype=torch.int64)
        out[self._codes] = self._counts
        return out

    @property
    def total(self) -> int:
        """Tokens counted."""
        return int(self._counts.sum())

    @property
    def used(self) -> int:
        """Codes used at least once."""
        return int((self._counts > 0).sum())

    @property
    def dead_codes(self) -> int:
        """Codes never used."""
        return self.codebook_size - self.used

    @property
    def utilisation(self) -> float:
        """Fraction of the codebook used at least once (the paper's utilisation rate, U.R.)."""
        return self.used / self.codebook_size

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the empirical code distribution; 0 before any update."""
        counts = self._counts[self._counts > 0].double()
        if counts.numel() == 0:
            return 0.0
        p = counts / counts.sum()
        return float(-(p * p.log()).sum())

    @property
    def perplexity(self) -> float:
        """``exp(entropy)``: the number of equally used codes with the same entropy (1 .. codebook_size)."""
        return math.exp(self.entropy)

    def summary(self) -> dict[str, float]:
        """The statistics as plain numbers, for logs and reports."""
        return {
            "codebook_size": float(self.codebook_size),
            "tokens": float(self.total),
            "used": float(self.used),
            "dead_codes": float(self.dead_codes),
            "utilisation": self.utilisation,
            "perplexity": self.perplexity,
        }

    def __repr__(self) -> str:
        return (
            f"CodebookStats(codebook_size={self.codebook_size}, tokens={self.total}, "
            f"utilisation={self.utilisation:.4f}, perplexity={self.perplexity:.1f})"
        )


def batch_codebook_logs(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Detached per-batch ``codebook_usage`` (fraction of codes used) and ``codebook_perplexity``.

    For training logs only (data-dependent; not exportable). Evaluation-set figures come from
    :class:`CodebookStats`.
    """
    with torch.no_grad():
        flat = indices.reshape(-1).long()
        if codebook_size <= DENSE_LIMIT:
            counts = torch.bincount(flat, minlength=codebook_size)
            counts = counts[counts > 0]
        else:
            counts = torch.unique(flat, return_counts=True)[1]
        p = counts.double() / flat.numel()
        perplexity = torch.exp(-(p * p.log()).sum()).float()
        usage = torch.tensor(counts.numel() / codebook_size, dtype=torch.float32, device=indices.device)
    return {"codebook_usage": usage, "codebook_perplexity": perplexity}


# -- keeping learned codebooks identical across processes ----------------------------------------


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(t: Tensor) -> Tensor:
    """Sum ``t`` over processes in place (EMA codebook statistics); a no-op without torch.distributed."""
    if _distributed():
        dist.all_reduce(t)
    return t


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``t`` with process ``src``'s copy in place (dead-code restarts); no-op when not distributed."""
    if _distributed():
        dist.broadcast(t, src)
    return t
