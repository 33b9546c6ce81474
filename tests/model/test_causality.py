"""Causal conventions, against the reference's description (shared/spec/vidtok-reference.md §2).

diffusers only implements v1.1, so v1.0 is checked here with hand-built cases: zero front padding
in time convolutions, the AlphaBlender formulas, nearest time upsampling, tdf-1 replicated input
frames and the decoder's crop. Causality: latent j covers input frames 1+tdf(j-1) .. tdf*j
(latent 0 only frame 0); nothing earlier may change when a later frame does.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from vidtok_kit.plugins.temporal.alphablender import AlphaBlenderConfig, AlphaBlenderDown, AlphaBlenderUp

from vidtok_kit.model.layers import TimeConv, TimeMode, upsample_time
from vidtok_kit.testing import perturb_parameters

V10, V11 = TimeMode.CAUSAL_V1_0, TimeMode.CAUSAL_V1_1


# -- v1.0 building blocks, by hand ---------------------------------------------------------------


def test_v1_0_time_conv_is_a_zero_front_padded_conv() -> None:
    conv = perturb_parameters(TimeConv(4, 5, 3, mode=V10))
    x = torch.randn(2, 4, 6, 5, 5)
    want = F.conv3d(F.pad(x, (1, 1, 1, 1, 2, 0)), conv.conv.weight, conv.conv.bias)
    torch.testing.assert_close(conv(x), want)
    conv1d = perturb_parameters(TimeConv(4, 4, 3, mode=V10, dims=1))
    seq = torch.randn(3, 4, 7)
    torch.testing.assert_close(conv1d(seq), F.conv1d(F.pad(seq, (2, 0)), conv1d.conv.weight, conv1d.conv.bias))


def test_v1_1_time_conv_replicates_the_first_frame() -> None:
    conv = perturb_parameters(TimeConv(4, 5, 3, mode=V11))
    x = torch.randn(2, 4, 6, 5, 5)
    padded = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
    torch.testing.assert_close(conv(x), F.conv3d(padded, conv.conv.weight, conv.conv.bias, padding=(0, 1, 1)))


def test_v1_0_alphablender_down_by_hand() -> None:
    down = perturb_parameters(AlphaBlenderDown(AlphaBlenderConfig(mix_factor=0.3), channels=4, mode=V10))
    x = torch.randn(2, 4, 8, 5, 5)
    alpha = torch.sigmoid(down.mix_factor)
    zero_padded = torch.cat([torch.zeros_like(x[:, :, :1]), x], dim=2)
    avg = torch.stack([zero_padded[:, :, 2 * j : 2 * j + 3].mean(dim=2) for j in range(4)], dim=2)
    w, b = down.conv.conv.weight, down.conv.conv.bias
    conv = F.conv3d(F.pad(x, (1, 1, 1, 1, 1, 0)), w, b, stride=(2, 1, 1))
    torch.testing.assert_close(down(x), alpha * avg + (1 - alpha) * conv)


def test_v1_0_time_upsampling_is_nearest_and_the_blender_mixes_its_conv() -> None:
    x = torch.randn(2, 4, 3, 5, 5)
    nearest = torch.stack([x, x], dim=3).flatten(2, 3)
    assert torch.equal(upsample_time(x, V10), nearest)
    up = perturb_parameters(AlphaBlenderUp(AlphaBlenderConfig(mix_factor=-0.4), channels=4, mode=V10))
    alpha = torch.sigmoid(up.mix_factor)
    conv = F.conv3d(F.pad(nearest, (1, 1, 1, 1, 2, 0)), up.conv.conv.weight, up.conv.conv.bias)
    torch.testing.assert_close(up(x), alpha * nearest + (1 - alpha) * conv)


def test_v1_1_time_upsampling_is_linear_with_separate_lead_frames() -> None:
    x = torch.randn(1, 2, 5, 3, 3)
    lead = 2
    parts = [
        F.interpolate(p, scale_factor=(2.0, 1.0, 1.0), mode="trilinear", align_corners=False)
        for p in (x[:, :, :lead], x[:, :, lead:])
    ]
    torch.testing.assert_close(upsample_time(x, V11, lead_frames=lead), torch.cat(parts, dim=2))


# -- the model's frame conventions ------------------------------------------------------------------


def test_v1_0_model_front_pads_tdf_minus_1_copies_and_decode_crops(make_tiny_model, make_video) -> None:
    m = perturb_parameters(make_tiny_model(causal=True, version="v1.0"))
    assert m.temporal_factor == 4
    x = make_video(frames=9)
    with torch.no_grad():
        latent = m.encode(x).latent
        by_hand = m.encoder(torch.cat([x[:, :, :1]] * 3 + [x], dim=2))[:, :4]
        torch.testing.assert_close(latent, by_hand, rtol=0, atol=0)
        assert latent.shape[2] == 3
        full = m.decoder(latent)
        decoded = m.decode(latent)
    assert full.shape[2] == 12 and decoded.shape[2] == 9  # 1 + k*tdf: the first tdf-1 frames dropped
    torch.testing.assert_close(decoded, full[:, :, 3:], rtol=0, atol=0)


def test_v1_0_and_v1_1_weights_are_not_interchangeable(make_tiny_model, make_video) -> None:
    v10 = perturb_parameters(make_tiny_model(version="v1.0"))
    v11 = make_tiny_model(version="v1.1")
    v11.load_state_dict(v10.state_dict(), strict=True)  # same keys and shapes ...
    x = make_video(frames=9)
    with torch.no_grad():
        a, b = v10(x), v11(x)
    assert (a.recon - b.recon).abs().max() > 1e-3  # ... different maths
    assert (a.reg.latent - b.reg.latent).abs().max() > 1e-3


# -- causality ---------------------------------------------------------------------------------------


def _group(frame: int, tdf: int) -> int:
    """The latent an input frame belongs to: frame 0 -> 0, frames 1..tdf -> 1, ..."""
    return (frame + tdf - 1) // tdf


def _perturbed_batch(x: torch.Tensor, dim: int) -> torch.Tensor:
    variants = [x]
    for k in range(x.shape[dim]):
        y = x.clone()
        y.select(dim, k).add_(0.5)
        variants.append(y)
    return torch.cat(variants)


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_encoder_latent_j_depends_only_on_frames_up_to_its_group(make_tiny_model, make_video, version: str) -> None:
    m = perturb_parameters(make_tiny_model(version=version))
    x = make_video(frames=17, size=16)
    with torch.no_grad():
        z = m.encode(_perturbed_batch(x, 2)).latent
    for k in range(17):
        diff = (z[k + 1] - z[0]).abs().amax(dim=(0, 2, 3))  # per latent frame
        j = _group(k, 4)
        assert diff[:j].sum() < 1e-6, f"frame {k} changed latents before {j}: {diff}"
        assert diff[j] > 1e-4, f"frame {k} did not change latent {j}"


def test_v1_0_decoder_is_strictly_causal_in_latents(make_tiny_model) -> None:
    m = perturb_parameters(make_tiny_model(version="v1.0"))
    z = torch.randn(1, 4, 5, 4, 4)
    with torch.no_grad():
        out = m.decode(_perturbed_batch(z, 2))
    assert out.shape[2] == 17
    for j in range(5):
        diff = (out[j + 1] - out[0]).abs().amax(dim=(0, 2, 3))
        first = 0 if j == 0 else 1 + 4 * (j - 1)
        assert diff[:first].sum() < 1e-6, f"latent {j} changed frames before {first}"
        assert diff[first] > 1e-4
    # the reference measured it on the real model: latent 4 changes only output frames 13..16
    last = (out[5] - out[0]).abs().amax(dim=(0, 2, 3))
    assert torch.nonzero(last > 1e-6).flatten().tolist() == [13, 14, 15, 16]


def test_v1_1_decoder_looks_one_latent_ahead(make_tiny_model) -> None:
    # reference §2 [measured]: perturbing the last latent changes output frames 10..16 (17 frames)
    m = perturb_parameters(make_tiny_model(version="v1.1"))
    z = torch.randn(1, 4, 5, 4, 4)
    with torch.no_grad():
        out = m.decode(torch.cat([z, z + torch.eye(5)[4].view(1, 1, 5, 1, 1)]))
    changed = torch.nonzero((out[1] - out[0]).abs().amax(dim=(0, 2, 3)) > 1e-6).flatten().tolist()
    assert changed == list(range(10, 17))
