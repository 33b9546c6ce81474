"""Fréchet distance between two Gaussians, the core of FID and FVD.

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein distance is
``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` (Dowson & Landau 1982).
FID: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule ...", arXiv:1706.08500;
FVD: Unterthiner et al., "Towards Accurate Generative Models of Video", arXiv:1812.01717.

Adapted from the numerics of mseitzer/pytorch-fid ``calculate_frechet_distance`` so that numbers
are comparable with published FID/FVD: float64 NumPy, ``scipy.linalg.sqrtm``, an ``eps * I``
offset when the product of covariances is singular (typical when there are fewer samples than
feature dimensions), and discarding a negligible imaginary part that ``sqrtm`` produces from
round-off. scipy is imported lazily because it is only needed for these metrics.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from vidtok_kit.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["frechet_distance", "gaussian_stats"]


def _to_numpy64(a: ArrayLike) -> np.ndarray:
    """Torch tensors (any device, with or without grad) and array-likes become float64 arrays."""
    if hasattr(a, "detach"):  # torch.Tensor without importing torch here
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a set of feature vectors, as FID/FVD fit them.

    The covariance is the unbiased estimate (``np.cov``, divisor ``N - 1``), matching pytorch-fid
    and the reference FVD code.

    :param features: ``(N, D)`` array or tensor of N feature vectors, N >= 2
    :return: ``(mu, sigma)`` with shapes ``(D,)`` and ``(D, D)``, float64
    :raises InputError: if ``features`` is not 2-D or has fewer than two rows
    """
    feats = _to_numpy64(features)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise InputError(f"expected features shaped (N, D) with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm`` that reports a near-singular input as non-finite instead of warning.

    scipy >= 1.16 warns (``LinAlgWarning``) on singular inputs and may still return an inaccurate
    root; pytorch-fid's cue for adding the ``eps`` offset is a non-finite result. Mapping an
    inaccurate root (relative residual above 1e-3) to NaN routes both cases to the same offset
    path, and keeps the warning out of user code that runs with warnings as errors.
    """
    from scipy import linalg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = linalg.sqrtm(a)
    if caught and np.all(np.isfinite(root)):
        scale = max(float(np.linalg.norm(a)), np.finfo(np.float64).tiny)
        if float(np.linalg.norm(root @ root - a)) / scale > 1e-3:
            root = np.full_like(root, np.nan)
    return root


def frechet_distance(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    :param mu1: mean of the first Gaussian, ``(D,)``
    :param sigma1: covariance of the first Gaussian, ``(D, D)``
    :param mu2: mean of the second Gaussian, ``(D,)``
    :param sigma2: covariance of the second Gaussian, ``(D, D)``
    :param eps: diagonal offset added to both covariances when ``sqrtm(sigma1 @ sigma2)`` is not
        finite, as in pytorch-fid
    :return: the distance as a Python float (>= 0 up to round-off)
    :raises InputError: on mismatched shapes
    :raises ValueError: if ``sqrtm`` leaves a significant imaginary part (pytorch-fid's check)
    """
    m1, m2 = np.atleast_1d(_to_numpy64(mu1)), np.atleast_1d(_to_numpy64(mu2))
    s1, s2 = np.atleast_2d(_to_numpy64(sigma1)), np.atleast_2d(_to_numpy64(sigma2))
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(
            f"expected means (D,) and covariances (D, D) of one D, got {m1.shape}, {s1.shape}, "
            f"{m2.shape}, {s2.shape}"
        )

    diff = m1 - m2
    covmean = _sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(d) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))

    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}"
            )
        covmean = covmean.real

    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
