"""Process-group plumbing for training under stock ``torchrun``.

``torchrun --nproc-per-node K --no-python vidtok-kit train RECIPE`` starts K copies of the CLI;
each learns who it is from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and nothing else (torchrun
also exports ``MASTER_ADDR`` / ``MASTER_PORT``, which ``init_process_group``'s default ``env://``
rendezvous reads itself). Multi-node runs are the same through torchrun's rendezvous. Without those
variables the run is a single process and every helper here is a no-op.

The collectives are tiny (flags, a few logged scalars, the discriminator's gradients); the
autoencoder's gradients go through :class:`~torch.nn.parallel.DistributedDataParallel`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import Tensor, nn

from vidtok_kit.errors import InputError

__all__ = [
    "DistInfo",
    "all_gather_objects",
    "any_true",
    "average_gradients",
    "broadcast_buffers",
    "init_distributed",
    "pick_device",
    "reduce_mean",
    "shutdown",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@attrs.frozen(kw_only=True)
class DistInfo:
    """Who this process is in the job (single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistInfo:
        """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (all or none must be set)."""
        env = os.environ if environ is None else environ
        present = [name for name in _ENV if name in env]
        if not present:
            return cls()
        if len(present) != len(_ENV):
            missing = ", ".join(n for n in _ENV if n not in env)
            raise InputError(f"distributed launch: {', '.join(present)} set but {missing} missing; launch with torchrun")
        try:
            rank, world, local = (int(env[name]) for name in _ENV)
        except ValueError:
            raise InputError(f"distributed launch: RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {[env[n] for n in _ENV]}") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InputError(f"distributed launch: inconsistent RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
        return cls(rank=rank, world_size=world, local_rank=local)


def pick_device(choice: str, info: DistInfo) -> torch.device:
    """``train.device`` -> a device: one GPU per local rank, else the CPU."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("train.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if info.local_rank >= torch.cuda.device_count():
        raise InputError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} CUDA devices on this node")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group: NCCL for GPUs, gloo on CPU. No-op for a single process."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, device_id=device if backend == "nccl" else None)


def shutdown() -> None:
    """Leave the process group (if joined), so torchrun sees a clean exit."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (all ranks must call it)."""
    if not _active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def reduce_mean(values: Tensor) -> Tensor:
    """Mean of a tensor over ranks (returned, not in place); the identity for one process."""
    if not _active():
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average ``.grad`` over ranks for parameters outside DDP (discriminator, learned log-variance).

    One flat all-reduce per call: these are small, and a single collective keeps ranks in lock-step.
    """
    if not _active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank, as DDP's
    ``broadcast_buffers`` does for the modules it wraps, so the ranks hold identical states."""
    if not _active():
        return
    for buf in module.buffers():
        dist.broadcast(buf, src)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` for one process."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
