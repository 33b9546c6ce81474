"""WebDataset-style tar shards of tokenized clips: one writer per rank, an index for all of them.

A shard ``tokens-r<rank>-<n>.tar`` holds up to ``clips_per_shard`` clips, each as two members
sharing a key (the WebDataset convention: the key is the name up to the first dot):

* ``<key>.tokens.npy``: the token array (integer indices (T', H', W') or float latents
  (C, T', H', W')), readable by ``numpy.load`` and by ``webdataset``'s default decoders;
* ``<key>.json``: the token file's metadata (source path, frame rate, frame counts, recipe,
  checkpoint hash, ...), the same fields as a per-video token file.

A shard is written under a hidden temporary name and renamed when it is complete, with a
``.json`` sidecar listing its clips, so a crash leaves only whole shards; a rerun skips every
source that a complete shard holds (:func:`finished_sources`). ``index.json`` lists every shard
with its clip count once all ranks are done (:func:`write_index`).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.io.outputs import atomic_write, atomic_write_text

__all__ = ["INDEX_FILE", "ShardWriter", "finished_sources", "read_shard", "shard_files", "write_index"]

INDEX_FILE = "index.json"
_SHARD = re.compile(r"^tokens-r(\d{3,})-(\d{5,})\.tar$")


def shard_files(directory: str | Path) -> list[Path]:
    """The complete shards in ``directory`` (those with their sidecar), in name order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _SHARD.match(p.name) and p.with_suffix(".json").is_file())


def _sidecar(shard: Path) -> dict[str, Any]:
    try:
        return json.loads(shard.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{shard.with_suffix('.json')}: damaged shard sidecar ({type(exc).__name__})") from None


def finished_sources(directory: str | Path) -> set[str]:
    """Every source (relative path) held by a complete shard: what a rerun skips."""
    return {clip["source"] for shard in shard_files(directory) for clip in _sidecar(shard)["clips"]}


def _key(source: str) -> str:
    """A WebDataset key for a source path: no dots (the key ends at the first one), no slashes."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", source.replace("/", "__"))


class ShardWriter:
    """Appends clips to this rank's shards; each shard appears under its final name only when complete.

    :param rank: the writing process (shard names carry it, so ranks never collide).
    :param clips_per_shard: clips in a full shard (the last one of a run may hold fewer).
    """

    def __init__(self, directory: str | Path, *, rank: int = 0, clips_per_shard: int = 256) -> None:
        if clips_per_shard < 1:
            raise InputError(f"clips per shard must be >= 1, got {clips_per_shard}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rank, self.clips_per_shard = rank, clips_per_shard
        taken = [int(m.group(2)) for p in self.directory.iterdir() if (m := _SHARD.match(p.name)) and int(m.group(1)) == rank]
        self._next = max(taken, default=-1) + 1  # a rerun appends new shards after the finished ones
        self._members: list[tuple[str, bytes]] = []
        self._clips: list[dict[str, Any]] = []
        self.written: list[Path] = []

    def add(self, source: str, tokens: Tensor, meta: dict[str, Any]) -> None:
        """One clip: ``source`` is its path relative to the input folder (unique in a dataset)."""
        key = _key(source)
        buffer = io.BytesIO()
        array = tokens.detach().cpu()
        np.save(buffer, (array.float() if array.is_floating_point() else array).numpy(), allow_pickle=False)
        self._members += [(f"{key}.tokens.npy", buffer.getvalue()),
                          (f"{key}.json", json.dumps({**meta, "source_path": source}, sort_keys=True).encode())]
        self._clips.append({"key": key, "source": source, "shape": list(array.shape)})
        if len(self._clips) >= self.clips_per_shard:
            self.flush()

    def flush(self) -> Path | None:
        """Write the clips added so far as one shard (nothing if none)."""
        if not self._clips:
            return None
        shard = self.directory / f"tokens-r{self.rank:03d}-{self._next:05d}.tar"

        def write(tmp: Path) -> None:
            with tarfile.open(tmp, "w") as tar:
                for name, data in self._members:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))

        atomic_write(shard, write)
        # the sidecar is what makes the shard count as complete: written last
        atomic_write_text(shard.with_suffix(".json"), json.dumps({"clips": self._clips}, indent=1) + "\n")
        self.written.append(shard)
        self._members, self._clips = [], []
        self._next += 1
        return shard

    def close(self) -> list[Path]:
        self.flush()
        return self.written


def write_index(directory: str | Path) -> Path:
    """``index.json``: every complete shard and its clip count (rank 0 writes it once all ranks are done)."""
    directory = Path(directory)
    shards = [{"file": s.name, "clips": len(_sidecar(s)["clips"])} for s in shard_files(directory)]
    path = directory / INDEX_FILE
    atomic_write_text(path, json.dumps({"format": "vidtok-kit-token-shards", "version": 1, "shards": shards,
                                        "clips": sum(s["clips"] for s in shards)}, indent=1) + "\n")
    return path


def read_shard(shard: str | Path) -> Iterator[dict[str, Any]]:
    """The clips of one shard: ``{"key", "tokens" (Tensor), "meta" (dict)}``, in stored order."""
    shard = Path(shard)
    pending: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(shard, "r") as tar:
            for member in tar:
                data = tar.extractfile(member)
                if data is None:
                    continue
                key, _, ext = member.name.partition(".")
                sample = pending.setdefault(key, {"key": key})
                if ext == "tokens.npy":
                    sample["tokens"] = torch.from_numpy(np.load(io.BytesIO(data.read()), allow_pickle=False))
                elif ext == "json":
                    sample["meta"] = json.loads(data.read())
                if "tokens" in sample and "meta" in sample:
                    yield pending.pop(key)
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise InputError(f"{shard}: not a readable token shard ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if pending:
        raise InputError(f"{shard}: clips without tokens or metadata: {', '.join(sorted(pending))[:200]}")
