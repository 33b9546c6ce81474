"""Chunk and tile sizes from a memory budget."""

from __future__ import annotations

import pytest

from vidtok_kit import load
from vidtok_kit.errors import InputError
from vidtok_kit.stream import parse_memory, plan_stream
from vidtok_kit.stream.budget import RUNTIME_BYTES, activation_bytes, check_frame_budget, frame_bytes


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
    # what the plan charges before any step: runtime, weights, read-ahead frames and causal state
    weights = RUNTIME_BYTES + sum(p.numel() * 4 for p in m.parameters()) + frame_bytes(m, 256, 256, "encode", 4, tiled=False)
    per_frame = activation_bytes(m, 256, 256, "encode", 4)
    plan = plan_stream(m, 256, 256, "encode", max_memory=weights + 9 * per_frame)
    assert (plan.chunk, plan.tile) == (8, None)  # the largest multiple of tdf = 4 that fits
    assert plan.estimated_bytes <= weights + 9 * per_frame
    assert plan_stream(m, 256, 256, "encode", max_memory=weights + 20 * per_frame).chunk == 20
    tiled_fixed = frame_bytes(m, 256, 256, "encode", 4, tiled=True) - frame_bytes(m, 256, 256, "encode", 4, tiled=False)
    tiled = plan_stream(m, 256, 256, "encode", max_memory=weights + tiled_fixed + 2 * per_frame)
    assert tiled.chunk == 4 and tiled.tile is not None and tiled.tile < 256 and tiled.tile % 8 == 0
    assert tiled.estimated_bytes <= weights + tiled_fixed + 2 * per_frame
    per_out_frame = activation_bytes(m, 256, 256, "decode", 4)
    dec_fixed = RUNTIME_BYTES + sum(p.numel() * 4 for p in m.parameters()) + frame_bytes(m, 256, 256, "decode", 4, tiled=False)
    assert plan_stream(m, 64, 64, "decode", max_memory=dec_fixed + 9 * per_out_frame).chunk == 2  # latents
    dec_tiled = frame_bytes(m, 256, 256, "decode", 4, tiled=True) - frame_bytes(m, 256, 256, "decode", 4, tiled=False)
    dec = plan_stream(m, 64, 64, "decode", max_memory=dec_fixed + dec_tiled + 2 * per_out_frame)
    assert dec.tile is not None and dec.tile < 64 and dec.chunk == 1
    with pytest.raises(InputError, match="too small"):
        plan_stream(m, 256, 256, "encode", max_memory=2**10)


def test_stream_uses_the_budget_plan(model, clip) -> None:
    m = model()
    enc = load(m).streaming_encoder(max_memory=2**30)
    list(enc([clip(9, size=32)]))
    assert enc.plan == plan_stream(m, 32, 32, "encode", max_memory=2**30)


def test_a_frame_that_cannot_fit_even_tiled_is_one_line_before_allocation(model) -> None:
    """Tiles shrink activations, not the whole-frame buffers and causal state: those are charged
    first, and a frame whose fixed part exceeds the budget is refused (``--size 100000``)."""
    m = model()
    fixed = frame_bytes(m, 4096, 4096, "encode", 4, tiled=True)
    assert fixed > 16 * 3 * 4096 * 4096  # read-ahead frames alone are 8 fp32 RGB frames
    with pytest.raises(InputError, match=r"clip.mp4: --size 100000: 100000x100000 frames do not fit: .*use a smaller --size") as info:
        check_frame_budget(m, 100_000, 100_000, max_memory=4 * 2**30, what="clip.mp4: --size 100000")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="do not fit"):
        check_frame_budget(m, 32, 32, max_memory=2**20, decode=True)
    assert check_frame_budget(m, 64, 64, max_memory=2**30, decode=True).chunk >= 4
    plan = plan_stream(m, 768, 768, "encode", max_memory=2**30)
    assert plan.estimated_bytes <= 2**30  # the plan keeps the budget it was given
    with pytest.raises(InputError, match="before any tile runs"):  # peaked at 2 GiB under a 1 GiB budget
        plan_stream(m, 1536, 1536, "encode", max_memory=2**30)
