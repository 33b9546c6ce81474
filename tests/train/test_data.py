"""Training data: resumable sharded sampling, unreadable files, short videos, the built-in split."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.io import sample_videos
from vidtok_kit.recipe import DataConfig
from vidtok_kit.train.data import BUILTIN_HOLDOUT, ClipSampler, TrainClips, split_videos


def _take(sampler: ClipSampler, n: int) -> list[tuple[int, int]]:
    return list(itertools.islice(iter(sampler), n))


def test_sampler_shards_one_global_stream_and_resumes_inside_it() -> None:
    one = _take(ClipSampler(5, batch_size=4, seed=3), 12)  # 3 steps of a global batch of 4
    r0 = _take(ClipSampler(5, batch_size=2, rank=0, world_size=2, seed=3), 6)
    r1 = _take(ClipSampler(5, batch_size=2, rank=1, world_size=2, seed=3), 6)
    merged = [k for step in range(3) for k in r0[2 * step : 2 * step + 2] + r1[2 * step : 2 * step + 2]]
    assert merged == one
    assert [p for _, p in one] == list(range(12))
    # every epoch visits each video once, in an order that changes between epochs
    epochs = [sorted(v for v, _ in one[i : i + 5]) for i in (0, 5)]
    assert epochs == [list(range(5))] * 2 and [v for v, _ in one[:5]] != [v for v, _ in one[5:10]]
    assert _take(ClipSampler(5, batch_size=4, seed=3, start=8), 4) == one[8:12]


def test_unreadable_video_is_skipped_with_a_warning_and_counted(tmp_path, caplog) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    good = next(p for p in sample_videos() if p.name == "carphone_pristine.mp4")
    data = TrainClips([broken, good], frames=5, fps=8.0, resolution=32, seed=0)
    with caplog.at_level("WARNING", logger="vidtok_kit.train"):
        item = data[(0, 7)]
    assert item["skipped"] == 1 and item["video"].shape == (3, 5, 32, 32)
    assert "broken.mp4" in caplog.text
    assert data[(0, 8)]["skipped"] == 1  # remembered, not re-opened
    assert data[(1, 9)]["skipped"] == 0
    with pytest.raises(InputError, match="no readable training video"):
        TrainClips([broken], frames=5, fps=8.0, resolution=32)[(0, 0)]


@pytest.mark.parametrize("cache_mb", [0, 64])
def test_clips_are_a_function_of_the_position_and_short_videos_repeat_the_last_frame(cache_mb: int) -> None:
    video = next(p for p in sample_videos() if p.name == "carphone_pristine.mp4")  # 4 s
    data = TrainClips([video], frames=9, fps=1.0, resolution=32, seed=0, cache_mb=cache_mb)
    clip = data[(0, 3)]["video"]
    assert clip.shape == (3, 9, 32, 32)
    # 1 fps over 4 s gives 4-5 real frames (depending on the start); the rest repeat the last one
    real = next(i for i in range(9) if all(torch.equal(clip[:, j], clip[:, i]) for j in range(i, 9))) + 1
    assert real in (4, 5), real
    assert all(not torch.equal(clip[:, i], clip[:, i + 1]) for i in range(real - 1))
    again = TrainClips([video], frames=9, fps=1.0, resolution=32, seed=0, cache_mb=cache_mb)
    assert torch.equal(again[(0, 3)]["video"], clip)
    crops = {tuple(data[(0, p)]["video"][:, 0, 0, :4].flatten().tolist()) for p in range(6)}
    assert len(crops) > 1  # random crops differ between positions


def test_builtin_samples_hold_bikes_out_for_validation(tmp_path: Path) -> None:
    train, val = split_videos(DataConfig())
    assert [p.name for p in val] == [BUILTIN_HOLDOUT]
    assert BUILTIN_HOLDOUT not in {p.name for p in train} and len(train) == 3
    train, val = split_videos(DataConfig(val="none"))
    assert val == [] and len(train) == 4
    listing = tmp_path / "one.txt"
    listing.write_text(f"{train[0]}\n")
    with pytest.raises(InputError, match="no training videos left"):
        split_videos(DataConfig(train=str(listing)))


def test_augmentations_only_flip_permute_or_negate() -> None:
    import numpy as np

    from vidtok_kit.train.data import augment

    clip = torch.rand(3, 5, 8, 8) * 2 - 1
    expected = {
        "hflip": lambda c: c.flip(-1), "vflip": lambda c: c.flip(-2), "reverse": lambda c: c.flip(1), "invert": lambda c: -c,
    }
    for name, transform in expected.items():
        outs = [augment(clip, (name,), np.random.default_rng(s)) for s in range(12)]
        assert all(torch.equal(o, clip) or torch.equal(o, transform(clip)) for o in outs), name
        assert any(not torch.equal(o, clip) for o in outs) and any(torch.equal(o, clip) for o in outs), name
    for s in range(12):
        out = augment(clip, ("rgb_shuffle",), np.random.default_rng(s))
        assert sorted(out[c].sum().item() for c in range(3)) == sorted(clip[c].sum().item() for c in range(3))
