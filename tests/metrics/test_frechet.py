"""Fréchet distance against closed forms for known Gaussians."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.metrics import frechet_distance, gaussian_stats


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(s)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_rotated_commuting_covariances_closed_form():
    """Covariances sharing eigenvectors: the distance only sees the eigenvalues."""
    rng = np.random.default_rng(1)
    r = _rotation(5, rng)
    a, b = rng.uniform(0.1, 2, size=5), rng.uniform(0.1, 2, size=5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    got = frechet_distance(mu1, r @ np.diag(a) @ r.T, mu2, r @ np.diag(b) @ r.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_general_covariances_match_symmetric_form():
    """tr((S1 S2)^1/2) == tr((S1^1/2 S2 S1^1/2)^1/2), computed here with eigh only."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    r1 = _psd_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(_psd_sqrt(r1 @ s2 @ r1))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    s, mu = a @ a.T + np.eye(5), rng.normal(size=5)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_singular_covariances_are_handled_without_warnings():
    """Fewer samples than dimensions, as in small FVD runs: finite, ~0 for identical sets."""
    rng = np.random.default_rng(4)
    f, g = rng.normal(size=(4, 30)), rng.normal(size=(5, 30)) + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = frechet_distance(*gaussian_stats(f), *gaussian_stats(f))
        diff = frechet_distance(*gaussian_stats(f), *gaussian_stats(g))
    assert abs(same) < 1e-4
    assert np.isfinite(diff) and diff > 10


def test_gaussian_stats_matches_numpy_and_accepts_tensors():
    feats = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian_stats(feats)
    np.testing.assert_allclose(mu, feats.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.double().numpy(), rowvar=False), rtol=1e-12)
    assert mu.dtype == sigma.dtype == np.float64


@pytest.mark.parametrize("shape", [(1, 4), (8,), (2, 3, 4)])
def test_gaussian_stats_rejects_bad_shapes(shape):
    with pytest.raises(InputError):
        gaussian_stats(np.zeros(shape))


def test_mismatched_dimensions_raise():
    with pytest.raises(InputError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
