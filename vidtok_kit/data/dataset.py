"""``TokenDataset``: the token shards of a dataset as an iterable PyTorch dataset, for a generator's training loop.

Shards, not clips, are split: each (rank, data-loader worker) slot reads whole shards, so no two
processes open the same file and every clip comes out exactly once per epoch. The shard order is
shuffled per epoch with a seed every rank agrees on (call :meth:`TokenDataset.set_epoch`), and
clips within a shard keep their stored order (shuffle them downstream with a buffer if needed)::

    data = TokenDataset("tokens/", shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=4)
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for clip in loader:   # {"key", "tokens": (T', H', W') integer tensor, "meta": dict}
            ...

Rank and world size come from ``torch.distributed`` when it is initialised, else from the
``RANK`` / ``WORLD_SIZE`` environment variables that ``torchrun`` sets, else a single process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vidtok_kit.data.shards import INDEX_FILE, read_shard, shard_files
from vidtok_kit.errors import InputError

__all__ = ["TokenDataset"]


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class TokenDataset(IterableDataset):
    """Clips of token shards (``{"key", "tokens", "meta"}``), split across ranks and workers.

    :param source: a folder of shards (its ``index.json`` when present, else its complete shards)
        or an ``index.json`` file.
    :param shuffle: shuffle the shard order each epoch (the same order on every rank).
    :param seed: base of the per-epoch shard order.
    :param rank: / :param world_size: override the process's place in the job.
    """

    def __init__(self, source: str | Path, *, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        self.shards = self._find(Path(source))
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    @staticmethod
    def _find(source: Path) -> list[Path]:
        index = source if source.is_file() else source / INDEX_FILE
        if index.is_file():
            try:
                listed = json.loads(index.read_text(encoding="utf-8"))["shards"]
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"{index}: not a token-shard index ({type(exc).__name__})") from None
            shards = [index.parent / s["file"] for s in listed]
            missing = [s.name for s in shards if not s.is_file()]
            if missing:
                raise InputError(f"{index}: lists shards that are missing: {', '.join(missing[:5])}")
            return shards
        shards = shard_files(source)
        if not shards:
            raise InputError(f"{source}: no token shards (write them with `vidtok-kit encode DIR -o OUT --format shards`)")
        return shards

    def set_epoch(self, epoch: int) -> None:
        """Use the shard order of ``epoch`` (call on every rank before iterating)."""
        self.epoch = epoch

    def shards_for(self, rank: int, world_size: int, worker: int = 0, workers: int = 1) -> list[Path]:
        """The shards one (rank, worker) slot reads this epoch."""
        order = list(self.shards)
        if self.shuffle:
            perm = torch.randperm(len(order), generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
            order = [order[i] for i in perm]
        slot, slots = rank * workers + worker, world_size * workers
        return order[slot::slots]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _world()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for shard in self.shards_for(rank, world, worker, workers):
            yield from read_shard(shard)
