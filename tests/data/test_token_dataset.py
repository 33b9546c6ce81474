"""Token shards: complete or absent, every clip exactly once per epoch across ranks x workers, readable by webdataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from vidtok_kit.data import ShardWriter, TokenDataset, finished_sources, read_shard, shard_files, write_index
from vidtok_kit.errors import InputError


def _write(directory: Path, ranks: int = 2, clips: int = 7, per_shard: int = 2) -> set[str]:
    sources = set()
    for rank in range(ranks):
        writer = ShardWriter(directory, rank=rank, clips_per_shard=per_shard)
        for i in range(clips):
            source = f"videos/rank{rank}/clip.{i}.mp4"  # dots and slashes: keys must still be unique
            writer.add(source, torch.full((2, 3, 3), i, dtype=torch.int16), {"frame_count": 5 + i})
            sources.add(source)
        writer.close()
    write_index(directory)
    return sources


def test_every_clip_once_per_epoch_across_two_ranks_and_two_workers(tmp_path: Path) -> None:
    sources = _write(tmp_path)
    seen: list[str] = []
    for rank in range(2):
        data = TokenDataset(tmp_path, shuffle=True, seed=3, rank=rank, world_size=2)
        data.set_epoch(1)
        for clip in DataLoader(data, batch_size=None, num_workers=2):
            assert clip["tokens"].dtype == torch.int16 and clip["tokens"].shape == (2, 3, 3)
            assert clip["tokens"].flatten()[0].item() == clip["meta"]["frame_count"] - 5
            seen.append(clip["meta"]["source_path"])
    assert sorted(seen) == sorted(sources)  # each exactly once


def test_shard_order_is_shuffled_per_epoch_and_agreed_by_ranks(tmp_path: Path) -> None:
    _write(tmp_path, clips=9, per_shard=1)
    a, b = TokenDataset(tmp_path, seed=0), TokenDataset(tmp_path, seed=0)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert a.shards_for(0, 1) == b.shards_for(0, 1)
        orders.append(a.shards_for(0, 1))
    assert orders[0] != orders[1] or orders[1] != orders[2]
    assert TokenDataset(tmp_path, shuffle=False).shards_for(0, 1) == shard_files(tmp_path)


def test_webdataset_reads_the_shards(tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    sources = _write(tmp_path, ranks=1, clips=3)
    samples = list(wds.WebDataset([str(p) for p in shard_files(tmp_path)], shardshuffle=False).decode())
    assert {s["json"]["source_path"] for s in samples} == sources
    assert all(s["tokens.npy"].shape == (2, 3, 3) for s in samples)


def test_only_complete_shards_count_and_reruns_append(tmp_path: Path) -> None:
    sources = _write(tmp_path, ranks=1, clips=3, per_shard=2)
    (tmp_path / "tokens-r000-00009.tar").write_bytes(b"half a shard, no sidecar")  # a crash mid-write
    assert finished_sources(tmp_path) == sources
    assert len(shard_files(tmp_path)) == 2
    writer = ShardWriter(tmp_path, rank=0)
    writer.add("videos/new.mp4", torch.zeros(1, 1, 1, dtype=torch.uint8), {})
    (new,) = writer.close()
    assert new.name == "tokens-r000-00010.tar"  # after every shard name taken, never over one


def test_damaged_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no token shards"):
        TokenDataset(tmp_path)
    _write(tmp_path, ranks=1, clips=2)
    shard = shard_files(tmp_path)[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(InputError, match="not a readable token shard|clips without tokens"):
        list(read_shard(shard))
    (tmp_path / "index.json").write_text("{")
    with pytest.raises(InputError, match="not a token-shard index"):
        TokenDataset(tmp_path)
