"""SSIM per frame against an independent direct implementation of the SSIM formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from vidtok_kit.errors import InputError
from vidtok_kit.metrics import ssim_downsample_factor, ssim_per_frame


def _window() -> np.ndarray:
    """11x11 Gaussian, sigma 1.5, built directly in 2-D (the module builds it separably)."""
    yy, xx = np.mgrid[-5:6, -5:6]
    w = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    return w / w.sum()


def _ssim_loops(a: np.ndarray, b: np.ndarray) -> float:
    """Direct SSIM of (C, H, W) images: explicit loops over channels and valid window positions."""
    w = _window()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(a.shape[0]):
        for i in range(a.shape[1] - 10):
            for j in range(a.shape[2] - 10):
                pa, pb = a[c, i : i + 11, j : j + 11], b[c, i : i + 11, j : j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def _ssim_filtered(a: np.ndarray, b: np.ndarray, f: int) -> float:
    """Textbook SSIM (E[xy] - E[x]E[y] form) with scipy 'valid' correlation, after f x f block means."""
    c, h, w = a.shape
    a = a[:, : h // f * f, : w // f * f].reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))
    b = b[:, : h // f * f, : w // f * f].reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))
    win = _window()
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for ca, cb in zip(a, b):

        def filt(img):
            return correlate2d(img, win, mode="valid")

        ma, mb = filt(ca), filt(cb)
        va, vb, cov = filt(ca * ca) - ma**2, filt(cb * cb) - mb**2, filt(ca * cb) - ma * mb
        maps.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(maps))


def _pair(shape, noise, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x = torch.nn.functional.avg_pool3d(x, (1, 3, 3), stride=1, padding=(0, 1, 1))  # some structure
    y = (x + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


def test_matches_direct_loops_on_small_frames():
    x, y = _pair((2, 3, 3, 24, 24), noise=0.1)
    got = ssim_per_frame(x, y)
    assert got.shape == (2, 3)
    expected = np.array(
        [[_ssim_loops(x[b, :, t].numpy(), y[b, :, t].numpy()) for t in range(3)] for b in range(2)]
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_float32_close_to_float64():
    x, y = _pair((1, 3, 2, 24, 30), noise=0.2)
    np.testing.assert_allclose(
        ssim_per_frame(x.float(), y.float()).double().numpy(), ssim_per_frame(x, y).numpy(), atol=2e-5
    )


def test_large_frames_are_average_pooled_first():
    """384x384 -> factor round(1.5) = 2, so SSIM is computed on 192x192 block means."""
    x, y = _pair((1, 3, 1, 384, 384), noise=0.1)
    got = ssim_per_frame(x, y)[0, 0].item()
    assert got == pytest.approx(_ssim_filtered(x[0, :, 0].numpy(), y[0, :, 0].numpy(), f=2), rel=1e-10)


@pytest.mark.parametrize(
    ("h", "w", "f"),
    [(24, 24, 1), (256, 256, 1), (383, 1000, 1), (384, 384, 2), (640, 640, 2), (720, 1280, 3)],
)
def test_downsample_factor(h, w, f):
    """Python's round-half-to-even is part of the reference (384 -> 2, 640 -> 2)."""
    assert ssim_downsample_factor(h, w) == f


def test_identical_videos_give_one():
    x, _ = _pair((2, 3, 2, 24, 24), noise=0.0, dtype=torch.float32)
    x[0, :, 1] = 0.5  # a flat frame: zero variance must still give exactly 1
    torch.testing.assert_close(ssim_per_frame(x, x), torch.ones(2, 2))


def test_more_noise_lowers_ssim():
    x, y1 = _pair((1, 3, 1, 32, 32), noise=0.05)
    _, y2 = _pair((1, 3, 1, 32, 32), noise=0.3)
    assert ssim_per_frame(x, y1).item() > ssim_per_frame(x, y2).item()


def test_frames_smaller_than_window_raise():
    x = torch.rand(1, 3, 1, 10, 32)
    with pytest.raises(InputError, match="11x11") as info:
        ssim_per_frame(x, x)
    assert "\n" not in str(info.value)
