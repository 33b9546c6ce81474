"""FVD accumulation against the Fréchet distance of the same features computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vidtok_kit.errors import InputError
from vidtok_kit.metrics import FVDAccumulator, I3DFeatureExtractor, InceptionI3d, frechet_distance


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(3, 8, 3),
        nn.BatchNorm3d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def _videos(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 4, 12, 12, generator=g) + shift).clamp(0, 1)


def test_matches_hand_computation():
    net = _tiny_net()
    acc = FVDAccumulator(net)
    real = [_videos(4, 1), _videos(3, 2), _videos(5, 3)]
    fake = [_videos(6, 4, shift=0.2), _videos(6, 5, shift=0.2)]
    for r in real:
        acc.update_real(r)
    for f in fake:
        acc.update(f, real=False)
    assert (acc.num_real, acc.num_fake) == (12, 12)

    with torch.no_grad():  # by hand: one pass over everything, numpy statistics
        fr = net(torch.cat(real)).double().numpy()
        ff = net(torch.cat(fake)).double().numpy()
    expected = frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))
    assert expected > 0
    assert acc.compute() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(acc.real_features.numpy(), fr, rtol=1e-5, atol=1e-6)


def test_puts_module_in_eval_mode_and_resets():
    net = _tiny_net().train()
    acc = FVDAccumulator(net)
    assert not net.training
    v = _videos(4, 0)
    acc.update_real(v)
    acc.update_fake(v)
    assert acc.compute() == pytest.approx(0.0, abs=1e-6)
    acc.reset()
    assert acc.num_real == acc.num_fake == 0


def test_too_few_clips_raise():
    acc = FVDAccumulator(_tiny_net())
    acc.update_real(_videos(1, 0))
    acc.update_fake(_videos(3, 1))
    with pytest.raises(InputError, match="at least 2"):
        acc.compute()


def test_extractor_must_return_one_vector_per_clip():
    acc = FVDAccumulator(lambda v: v.flatten(1)[:1])
    with pytest.raises(InputError, match=r"\(B, D\)"):
        acc.update_real(_videos(3, 0))


def test_with_random_i3d_extractor():
    """End to end with the real architecture (random weights, tiny clips, singular covariances)."""
    torch.manual_seed(0)
    acc = FVDAccumulator(I3DFeatureExtractor(InceptionI3d(), size=None))
    acc.update_real(_videos(3, 0).repeat_interleave(2, dim=2))
    acc.update_fake(_videos(3, 1, shift=0.3).repeat_interleave(2, dim=2))
    assert acc.real_features.shape == (3, 400)
    assert np.isfinite(acc.compute())
