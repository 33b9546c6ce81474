"""Token datasets for the next stage: tar shards of tokenized clips and the dataset that reads them.

``vidtok-kit encode DIR -o OUT --format shards`` writes WebDataset-style tar shards
(:mod:`vidtok_kit.data.shards`); :class:`TokenDataset` streams them into a generator's training
loop, split across ranks and data-loader workers (:mod:`vidtok_kit.data.dataset`).
"""

from __future__ import annotations

from vidtok_kit._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["INDEX_FILE", "ShardWriter", "finished_sources", "read_shard", "shard_files", "write_index"], "shards"),
    "TokenDataset": "dataset",
})

__all__ = ["INDEX_FILE", "ShardWriter", "TokenDataset", "finished_sources", "read_shard", "shard_files", "write_index"]
