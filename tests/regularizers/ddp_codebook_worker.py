"""One rank of a 2-process gloo group for ``test_codebook_stats.py``: ``python ddp_codebook_worker.py RANK OUT_DIR``.

A script rather than a function in the test module because pytest imports test modules with
``--import-mode=importlib``, which spawned children cannot re-import; the test starts both ranks
at once (a file:// rendezvous in OUT_DIR). Each rank writes ``OUT_DIR/rank{r}.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from vidtok_kit.plugins.regularizers.vq import VQConfig, VQRegularizer

from vidtok_kit.codebook import CodebookStats
from vidtok_kit.model.entropy import distributed_mean

__all__ = ["main"]


def _worker(rank: int, world: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=world)
    try:
        gen = torch.Generator().manual_seed(rank)
        indices = torch.randint(0, 50, (3, 10), generator=gen) + 25 * rank
        dense = CodebookStats(100).update(indices).all_reduce()
        sparse = CodebookStats(100, dense_limit=0).update(indices).all_reduce()
        # distributed_mean: value = mean over ranks; gradient reaches the local tensor only (1/world)
        t = torch.full((3,), float(rank + 1), requires_grad=True)
        mean = distributed_mean(t)
        mean.sum().backward()
        # EMA codebooks and dead-code restarts stay identical although each rank sees other data
        torch.manual_seed(0)
        cfg = VQConfig(codebook_size=16, ema_decay=0.5, dead_code_threshold=0.5, init="normal")
        vq = VQRegularizer(cfg, z_channels=2).train()
        torch.manual_seed(100 + rank)  # different restart candidates per rank: the broadcast must align them
        restarted = 0
        for _ in range(3):
            # codes below the threshold now are restarted at the start of the next forward
            restarted += int((vq.cluster_size < cfg.dead_code_threshold).sum())
            vq(torch.randn(1, 2, 1, 4, 4, generator=gen) * 0.1 + rank)
        result = {
            "dense": dense.counts.tolist(),
            "sparse": sparse.counts.tolist(),
            "mean": mean.tolist(),
            "grad": t.grad.tolist(),
            "codebook": vq.codebook.tolist(),
            "cluster_size": vq.cluster_size.tolist(),
            "restarted": restarted,
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def main(argv: list[str]) -> None:
    _worker(int(argv[0]), 2, argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
