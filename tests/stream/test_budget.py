"""Chunk and tile sizes from a memory budget."""

from __future__ import annotations

import pytest

from vidtok_kit import load
from vidtok_kit.errors import InputError
from vidtok_kit.stream import parse_memory, plan_stream
from vidtok_kit.stream.budget import RUNTIME_BYTES, activation_bytes


def test_parse_memory() -> None:
    assert parse_memory("4G") == 4 * 2**30
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5GiB") == int(1.5 * 2**30)
    assert parse_memory("2048") == 2048
    for bad in ("lots", "-1G", "0", "4X"):
        with pytest.raises(InputError, match="memory"):
            parse_memory(bad)


def test_activation_estimate_scales_with_pixels_and_precision(model) -> None:
    m = model()
    a = activation_bytes(m, 64, 64, "encode", 4)
    # feature maps grow with the pixels, the per-frame attention matrix with their square
    assert 4 * a <= activation_bytes(m, 128, 128, "encode", 4) <= 16 * a
    assert activation_bytes(m, 64, 64, "encode", 2) < a
    assert activation_bytes(m, 64, 64, "decode", 4) > 0


def test_budget_picks_bigger_chunks_then_tiles_then_gives_up(model) -> None:
    m = model()
    weights = RUNTIME_BYTES + sum(p.numel() * 4 for p in m.parameters())
    per_frame = activation_bytes(m, 256, 256, "encode", 4)
    plan = plan_stream(m, 256, 256, "encode", max_memory=weights + 9 * per_frame)
    assert (plan.chunk, plan.tile) == (8, None)  # the largest multiple of tdf = 4 that fits
    assert plan.estimated_bytes <= weights + 9 * per_frame
    assert plan_stream(m, 256, 256, "encode", max_memory=weights + 20 * per_frame).chunk == 20
    tiled = plan_stream(m, 256, 256, "encode", max_memory=weights + 2 * per_frame)
    assert tiled.chunk == 4 and tiled.tile is not None and tiled.tile < 256 and tiled.tile % 8 == 0
    assert tiled.estimated_bytes <= weights + 2 * per_frame
    per_out_frame = activation_bytes(m, 256, 256, "decode", 4)
    assert plan_stream(m, 64, 64, "decode", max_memory=weights + 9 * per_out_frame).chunk == 2  # latents
    dec = plan_stream(m, 64, 64, "decode", max_memory=weights + 2 * per_out_frame)
    assert dec.tile is not None and dec.tile < 64 and dec.chunk == 1
    with pytest.raises(InputError, match="too small"):
        plan_stream(m, 256, 256, "encode", max_memory=2**10)


def test_stream_uses_the_budget_plan(model, clip) -> None:
    m = model()
    enc = load(m).streaming_encoder(max_memory=2**30)
    list(enc([clip(9, size=32)]))
    assert enc.plan == plan_stream(m, 32, 32, "encode", max_memory=2**30)
