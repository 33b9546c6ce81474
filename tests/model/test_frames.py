"""Frame arithmetic of the three time conventions (vidtok_kit.model.frames), and that the model obeys it."""

from __future__ import annotations

import pytest
import torch

from vidtok_kit.model.frames import allowed_frames, front_padding, latent_frames, output_frames, valid_frames
from vidtok_kit.model.layers import TimeMode

V10, V11, NC = TimeMode.CAUSAL_V1_0, TimeMode.CAUSAL_V1_1, TimeMode.NONCAUSAL


@pytest.mark.parametrize("tdf", [2, 4, 8])
def test_v1_0_takes_one_plus_k_tdf_frames_and_pads_tdf_minus_one(tdf: int) -> None:
    # reference §2: EncoderCausal3DPadding prepends tdf-1 copies of frame 0 whenever T % tdf != 0
    for k in range(5):
        t = 1 + k * tdf
        assert valid_frames(t, tdf=tdf, mode=V10)
        assert front_padding(t, tdf=tdf, mode=V10) == tdf - 1
        assert latent_frames(t, tdf=tdf, mode=V10) == k + 1
        assert output_frames(k + 1, tdf=tdf, mode=V10) == t
    invalid = [t for t in range(1, 4 * tdf) if t % tdf != 1]
    assert not any(valid_frames(t, tdf=tdf, mode=V10) for t in invalid)


def test_v1_0_with_tdf_1_takes_any_count() -> None:
    # 1 % 1 == 0: a model without temporal downsampling takes every frame count, pads nothing
    assert all(valid_frames(t, tdf=1, mode=V10) and front_padding(t, tdf=1, mode=V10) == 0 for t in range(1, 6))


@pytest.mark.parametrize("tdf", [2, 4, 8])
def test_v1_1_takes_any_count_and_pads_to_a_multiple(tdf: int) -> None:
    # reference §2 v1.1: tdf - T % tdf replicated frames in front, only when T % tdf != 0
    for t in range(1, 5 * tdf):
        pad = front_padding(t, tdf=tdf, mode=V11)
        assert valid_frames(t, tdf=tdf, mode=V11)
        assert (t + pad) % tdf == 0 and 0 <= pad < tdf
        assert latent_frames(t, tdf=tdf, mode=V11) == -(-t // tdf)
    assert latent_frames(17, tdf=4, mode=V11) == 5  # 17 -> 20 frames -> 5 latents (reference)
    assert latent_frames(33, tdf=8, mode=V11) == 5


@pytest.mark.parametrize("tdf", [2, 4, 8])
def test_noncausal_needs_a_multiple_and_never_pads(tdf: int) -> None:
    for t in range(1, 5 * tdf):
        assert valid_frames(t, tdf=tdf, mode=NC) == (t % tdf == 0)
        assert front_padding(t, tdf=tdf, mode=NC) == 0
    assert latent_frames(16, tdf=4, mode=NC) == 4 and output_frames(4, tdf=4, mode=NC) == 16


@pytest.mark.parametrize("mode", list(TimeMode))
def test_zero_and_negative_counts_are_invalid(mode: TimeMode) -> None:
    assert not valid_frames(0, tdf=4, mode=mode) and not valid_frames(-3, tdf=4, mode=mode)


def test_allowed_frames_texts() -> None:
    assert allowed_frames(tdf=4, mode=V10) == "1 + 4k frames (1, 5, 9, ...)"
    assert allowed_frames(tdf=4, mode=V11) == "any number of frames >= 1"
    assert allowed_frames(tdf=8, mode=NC) == "a positive multiple of 8 frames"


@pytest.mark.parametrize(
    ("model", "frames"),
    [
        ({"causal": True, "version": "v1.0"}, [1, 5, 9]),
        ({"causal": True, "version": "v1.1"}, [1, 2, 6, 9]),
        ({"causal": False}, [4, 8]),
    ],
    ids=["v1.0", "v1.1", "noncausal"],
)
def test_model_follows_the_rules(make_tiny_model, make_video, model: dict, frames: list[int]) -> None:
    m = make_tiny_model(**model)
    for t in frames:
        with torch.no_grad():
            out = m(make_video(frames=t, size=16))
        assert out.reg.latent.shape[2] == m.latent_frames(t), t
        assert out.recon.shape[2] == t
        with torch.no_grad():
            assert m.decode(out.reg.latent).shape[2] == m.output_frames(m.latent_frames(t))
