"""Shared pieces of the training tests: a two-video list of real clips and fast recipe overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny" / "kl_causal.toml"
TINY_FSQ = REPO / "recipes" / "tiny" / "fsq_causal.toml"


@pytest.fixture(scope="session")
def carphone_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text list of the two small (176x144) sample videos: cheap to decode, real content."""
    from vidtok_kit.io import sample_videos

    videos = [p for p in sample_videos() if p.name.startswith("carphone")]
    listing = tmp_path_factory.mktemp("data") / "train.txt"
    listing.write_text("# the carphone sample clips\n" + "".join(f"{p}\n" for p in videos))
    return listing


@pytest.fixture
def fast_sets(carphone_list: Path) -> list[str]:
    """Overrides that keep a tiny run at well under a second per step on one CPU thread."""
    return [
        "train.batch_size=1", "train.num_frames=9", "train.resolution=32", "train.precision='fp32'",
        "train.log_every=1", "train.eval_every=1000", f"data.train={json.dumps(str(carphone_list))}",
        "data.val='none'", "data.num_workers=0", "data.cache_mb=64", "data.sample_fps=8.0",
    ]


@pytest.fixture
def make_recipe() -> Callable[..., Any]:
    def make(sets: list[str], path: Path = TINY) -> Any:
        from vidtok_kit import load_recipe

        return load_recipe(path, overrides=sets)

    return make
