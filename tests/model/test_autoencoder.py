"""VideoTokenizer: input validation (one InputError saying what is allowed), KL/FSQ latents, decode paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.testing import perturb_parameters

FSQ = {"regularizer": {"kind": "fsq", "levels": [8, 5, 4]}, "z_channels": 3}


def _raises(model, x, *needles: str) -> str:
    with pytest.raises(InputError) as info:
        model(x)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_wrong_rank_says_the_expected_layout(make_tiny_model) -> None:
    m = make_tiny_model()
    _raises(m, torch.zeros(3, 9, 32, 32), "(B, 3, T, H, W)", "(3, 9, 32, 32)")
    _raises(m, np.zeros((1, 3, 9, 32, 32), dtype=np.float32), "(B, 3, T, H, W)", "ndarray")


def test_wrong_channel_count(make_tiny_model) -> None:
    _raises(make_tiny_model(), torch.zeros(1, 4, 9, 32, 32), "expected 3 channels", "got 4")


def test_size_not_divisible_by_the_spatial_factor(make_tiny_model) -> None:
    m = make_tiny_model()
    assert m.spatial_factor == 4
    _raises(m, torch.zeros(1, 3, 9, 30, 32), "multiples of 4", "30x32")
    _raises(m, torch.zeros(1, 3, 9, 32, 0), "multiples of 4")


@pytest.mark.parametrize(
    ("model", "frames", "rule"),
    [
        ({"causal": True, "version": "v1.0"}, 8, "this v1.0 model takes 1 + 4k frames (1, 5, 9, ...), got 8"),
        ({"causal": False}, 9, "this noncausal model takes a positive multiple of 4 frames, got 9"),
        ({"causal": True, "version": "v1.1"}, 0, "this v1.1 model takes any number of frames >= 1, got 0"),
    ],
    ids=["v1.0", "noncausal", "v1.1"],
)
def test_frame_count_the_model_cannot_take(make_tiny_model, model: dict, frames: int, rule: str) -> None:
    assert _raises(make_tiny_model(**model), torch.zeros(1, 3, frames, 32, 32)) == rule


def test_integer_video_is_rejected(make_tiny_model) -> None:
    _raises(make_tiny_model(), torch.zeros(1, 3, 9, 32, 32, dtype=torch.uint8), "floating-point", "uint8")


def test_decode_checks_latents_and_frame_counts(make_tiny_model) -> None:
    m = make_tiny_model()
    with pytest.raises(InputError, match=r"latent of shape \(B, 4, T', H', W'\)"):
        m.decode(torch.zeros(1, 3, 3, 8, 8))
    with pytest.raises(InputError, match="num_frames must be in 1..12"):
        m.decode(torch.zeros(1, 4, 3, 8, 8), num_frames=13)
    with pytest.raises(InputError, match="continuous"):
        m.decode_indices(torch.zeros(1, 3, 8, 8, dtype=torch.long))


def test_kl_encode_is_the_deterministic_posterior_mean(make_tiny_model, make_video) -> None:
    m = perturb_parameters(make_tiny_model())
    x = make_video()
    with torch.no_grad():
        a, b = m.encode(x), m.encode(x)
        moments = m.encoder(m.pad_frames(x))
        sampled = m.encode(x, sample=True)
    assert torch.equal(a.latent, b.latent) and a.indices is None
    torch.testing.assert_close(a.latent, moments[:, :4], rtol=0, atol=0)
    assert not torch.allclose(sampled.latent, a.latent)  # sampling is opt-in
    assert torch.isfinite(a.loss) and a.loss > 0 and "kl_loss" in a.logs


def test_fsq_decode_indices_equals_decode_of_codes(make_tiny_model, make_video) -> None:
    m = perturb_parameters(make_tiny_model(**FSQ))
    with torch.no_grad():
        enc = m.encode(make_video())
        assert enc.indices.shape == (1, 3, 8, 8) and enc.indices.dtype == torch.uint8  # 160 codes
        torch.testing.assert_close(m.decode_indices(enc.indices), m.decode(enc.latent), rtol=0, atol=0)
    with pytest.raises(InputError, match="integer indices"):
        m.decode_indices(enc.latent)


def test_forward_keeps_the_input_frame_count_and_range_is_unclamped(make_tiny_model, make_video) -> None:
    m = perturb_parameters(make_tiny_model(), scale=0.5)
    x = make_video()
    with torch.no_grad():
        out = m(x)
    assert out.recon.shape == x.shape and out.reg.latent.shape == (1, 4, 3, 8, 8)
    assert torch.isfinite(out.recon).all()
