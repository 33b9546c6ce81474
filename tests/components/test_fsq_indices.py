"""FSQ invariants: codebook, index round trip, channel 0 least significant, the reference's bounding."""

from __future__ import annotations

import math

import pytest
import torch
from vidtok_kit.plugins.regularizers.fsq import FSQConfig, FSQRegularizer


def _fsq(levels: tuple[int, ...]) -> FSQRegularizer:
    return FSQRegularizer(FSQConfig(levels=levels), z_channels=len(levels))


@pytest.mark.parametrize("levels", [(8, 8, 8), (8, 5, 4), (3, 7), (2, 2, 2, 2)])
def test_every_index_round_trips(levels: tuple[int, ...]) -> None:
    fsq = _fsq(levels)
    assert fsq.codebook_size == math.prod(levels)
    indices = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(indices)
    assert codes.shape == (fsq.codebook_size, len(levels))
    assert torch.equal(fsq.codes_to_indices(codes).long(), indices)
    assert len(torch.unique(codes, dim=0)) == fsq.codebook_size
    assert codes.min() == -1  # even levels stop one step short of +1, odd ones reach it
    for c, level in enumerate(levels):
        assert codes[:, c].max() == (1.0 if level % 2 else 1 - 2 / level)


def test_channel_0_is_the_least_significant_digit() -> None:
    fsq = _fsq((8, 5, 4))
    half = torch.tensor([4.0, 2.0, 2.0])
    for digits, index in (((1, 0, 0), 1), ((0, 1, 0), 8), ((0, 0, 1), 40), ((7, 4, 3), 159), ((3, 2, 1), 3 + 16 + 40)):
        codes = (torch.tensor(digits, dtype=torch.float32) - half) / half
        assert int(fsq.codes_to_indices(codes)) == index
        assert torch.equal(fsq.indices_to_codes(torch.tensor(index)), codes)


def test_quantize_follows_the_reference_formula() -> None:
    # reference §3: bounded = tanh(z + atanh(0.5 / h)) * h - 0.5, h = (L-1)(1+1e-3)/2; code = round / (L//2)
    fsq = _fsq((8, 8, 8))
    z = torch.randn(4, 3, 2, 3, 3) * 3  # (B, C, T, H, W)
    out = fsq(z)
    h = 7 * (1 + 1e-3) / 2
    bounded = torch.tanh(z + math.atanh(0.5 / h)) * h - 0.5
    torch.testing.assert_close(out.latent, torch.round(bounded) / 4)
    assert set(out.latent.unique().tolist()) <= {v / 4 for v in range(-4, 4)}
    digits = (torch.round(bounded) + 4).long()
    want = digits[:, 0] + 8 * digits[:, 1] + 64 * digits[:, 2]
    assert torch.equal(out.indices.long(), want)


def test_odd_levels_are_symmetric_without_offset() -> None:
    fsq = _fsq((5, 5))
    out = fsq(torch.zeros(1, 2, 1, 1, 1))
    assert torch.equal(out.latent, torch.zeros(1, 2, 1, 1, 1))
    assert int(out.indices) == 2 + 5 * 2


def test_straight_through_gradient_is_identity_times_the_bound_slope() -> None:
    fsq = _fsq((8, 8))
    z = torch.zeros(1, 2, 1, 1, 1, requires_grad=True)
    fsq(z).latent.sum().backward()
    h = 7 * (1 + 1e-3) / 2
    slope = (1 - math.tanh(math.atanh(0.5 / h)) ** 2) * h / 4
    torch.testing.assert_close(z.grad, torch.full_like(z, slope))


@pytest.mark.parametrize(("levels", "dtype"), [((4, 4, 4, 4), torch.uint8), ((8, 8, 8), torch.int16),
                                              ((8,) * 5, torch.int16), ((8,) * 6, torch.int32)])
def test_index_dtype_is_the_smallest_that_holds_the_codebook(levels: tuple[int, ...], dtype: torch.dtype) -> None:
    fsq = _fsq(levels)
    assert fsq.index_dtype == dtype
    top = torch.tensor([fsq.codebook_size - 1])
    assert int(fsq.codes_to_indices(fsq.indices_to_codes(top))) == fsq.codebook_size - 1


def test_levels_must_match_latent_channels() -> None:
    with pytest.raises(ValueError, match="need z_channels = 3"):
        FSQRegularizer(FSQConfig(levels=(8, 8, 8)), z_channels=4)
