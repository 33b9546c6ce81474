"""A folder run split across ``torchrun`` ranks: every file encoded exactly once, the work balanced by duration.

``torchrun --nproc-per-node N [--nnodes M ...] --no-python vidtok-kit encode DIR -o OUT`` starts the
same command N x M times; each process learns its rank from the environment
(:class:`~vidtok_kit.train.distributed.DistInfo`), computes the same assignment from the same file
list (no communication needed), encodes its share on its own device, and the summaries are gathered
on rank 0 at the end. Finished token files are skipped as in a single-process run, so a rerun after
any rank crashed completes only what is missing, whatever the number of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["assign_by_duration", "durations_of", "rank_device", "summary_line"]

Job = TypeVar("Job")


def assign_by_duration(jobs: Sequence[Job], durations: Sequence[float], world_size: int) -> list[list[Job]]:
    """Jobs per rank: longest first, each to the least-loaded rank (ties: the lowest rank).

    Deterministic in the job list and durations, so every rank computes the same split; each job
    lands on exactly one rank, and no rank gets more than the longest job over its fair share.
    """
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    order = sorted(range(len(jobs)), key=lambda i: (-durations[i], i))
    loads = [0.0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += durations[i]
        shares[rank].append(i)
    return [[jobs[i] for i in sorted(share)] for share in shares]  # each rank keeps the listing order


def durations_of(paths: Sequence[Path]) -> list[float]:
    """Each video's duration in seconds from its container (no decoding); an unreadable file counts
    as 1 s, so it is still assigned to exactly one rank, which reports it."""
    from vidtok_kit.io import VideoError, probe_video

    out = []
    for path in paths:
        try:
            out.append(max(float(probe_video(path).duration_s), 1e-3))
        except (VideoError, OSError, ValueError):
            out.append(1.0)
    return out


def rank_device(device: str, local_rank: int) -> str:
    """``cuda`` means this process's GPU under torchrun (one per local rank); other devices as given."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def summary_line(summaries: Sequence[dict[str, Any]]) -> str:
    """One line for the whole job from every rank's ``{"encoded", "skipped", "failed", "frames", "files"}``."""
    total = {k: sum(s[k] for s in summaries) for k in ("encoded", "skipped", "failed", "frames", "files")}
    ranks = f" on {len(summaries)} ranks" if len(summaries) > 1 else ""
    return (f"encoded {total['encoded']}, skipped {total['skipped']}, failed {total['failed']} of {total['files']} videos"
            f"{ranks} ({total['frames']} frames encoded)")
