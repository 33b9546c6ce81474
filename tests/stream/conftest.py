"""Fixtures for the streaming tests: real frames from the bundled sample videos, tiny perturbed models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from vidtok_kit.io import read_video, sample_videos
from vidtok_kit.testing import perturb_parameters, tiny_model


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    try:
        return {p.name: p for p in sample_videos()}
    except ModuleNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def clip(samples: dict[str, Path]) -> Callable[..., torch.Tensor]:
    """``clip(frames, size)``: the first frames of both carphone clips (real motion), (1, 3, T, size, size).

    Cached per size; the two clips are concatenated so that up to 240 frames are available.
    """
    cache: dict[int, torch.Tensor] = {}

    def make(frames: int, size: int = 16) -> torch.Tensor:
        if size not in cache:
            parts = [read_video(samples[name], size=size)[0] for name in ("carphone_pristine.mp4", "carphone_distorted.mp4")]
            cache[size] = torch.cat(parts, dim=1).unsqueeze(0)
        assert frames <= cache[size].shape[2]
        return cache[size][:, :, :frames].clone()

    return make


@pytest.fixture(scope="session")
def model() -> Callable[..., Any]:
    """``model(**recipe_model_keys)``: a tiny tokenizer with every weight perturbed, so temporal
    convs (zero-initialised in VidTok) really mix frames and a wrong cache would show."""

    def make(**keys: Any) -> Any:
        return perturb_parameters(tiny_model(**keys), scale=0.05)

    return make
