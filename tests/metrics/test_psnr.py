"""PSNR per frame against a hand computation of the reference formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.metrics import psnr_per_frame


def test_constant_error_matches_hand_value():
    x = torch.zeros(1, 3, 2, 8, 8)
    y = torch.full_like(x, 0.1)
    y[:, :, 1] = 0.2  # second frame: MSE 0.04
    got = psnr_per_frame(x, y)
    assert got.shape == (1, 2)
    expected = [-10 * math.log10(0.01 + 1e-8), -10 * math.log10(0.04 + 1e-8)]
    torch.testing.assert_close(
        got[0].double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-4
    )


def test_identical_frames_give_80_db():
    """The 1e-8 offset of the reference caps PSNR at 80 dB instead of +inf."""
    x = torch.rand(2, 3, 3, 8, 8)
    torch.testing.assert_close(psnr_per_frame(x, x), torch.full((2, 3), 80.0))


def test_random_videos_match_per_frame_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 10, 12, generator=g, dtype=torch.float64)
    y = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    xn, yn = x.numpy(), y.numpy()
    expected = np.empty((2, 4))
    for b in range(2):
        for t in range(4):
            mse = np.mean((xn[b, :, t] - yn[b, :, t]) ** 2)
            expected[b, t] = -10 * np.log10(mse + 1e-8)
    np.testing.assert_allclose(psnr_per_frame(x, y).numpy(), expected, rtol=1e-12)


def test_half_precision_is_upcast():
    x = torch.rand(1, 3, 2, 16, 16)
    y = (x + 0.01).clamp(0, 1)
    got = psnr_per_frame(x.half(), y.half())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, psnr_per_frame(x.half().float(), y.half().float()))


@pytest.mark.parametrize("shapes", [((1, 3, 2, 8, 8), (1, 3, 2, 8, 9)), ((3, 2, 8, 8), (3, 2, 8, 8))])
def test_bad_shapes_raise_one_line_error(shapes):
    a, b = (torch.zeros(s) for s in shapes)
    with pytest.raises(InputError) as info:
        psnr_per_frame(a, b)
    assert "\n" not in str(info.value)
