"""The single streaming step: flat state layout, v1.0's uniform initial state, v1.1's first/final steps."""

from __future__ import annotations

import pytest
import torch

from vidtok_kit.errors import InputError
from vidtok_kit.stream import V11_MIN_FIRST_LATENTS, decode_step, encode_step, initial_state, state_layout


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_state_layout_depends_on_spatial_size_not_chunk_length(model, version: str) -> None:
    m = model(version=version)
    for which, channels, t, size in (("encode", 3, 4, 16), ("decode", 4, 3, 4)):
        short = state_layout(m, which, (1, channels, t, size, size))
        long = state_layout(m, which, (1, channels, 3 * t, size, size))
        assert [e.shape for e in short] == [e.shape for e in long]
        wide = state_layout(m, which, (2, channels, t, size, 2 * size))
        assert len(wide) == len(short) and all(w.shape != s.shape for w, s in zip(wide, short))
        assert [e.index for e in short] == list(range(len(short)))
        assert all(e.module.startswith(f"{which[:3]}oder.") for e in short)
    ups = [e for e in state_layout(m, "decode", (1, 4, 3, 4, 4)) if e.kind == "AlphaBlenderUp"]
    # v1.1 time upsamplers hold two input frames; v1.0 nearest upsampling needs no state
    assert [e.shape[2] for e in ups] == ([2, 2] if version == "v1.1" else [])


def test_state_layout_matches_what_a_real_step_returns(model, clip) -> None:
    m = model(version="v1.1")
    x = m.pad_frames(clip(13))
    with torch.no_grad():
        first = encode_step(m, x[:, :, :4])
        second = encode_step(m, x[:, :, 4:12], first.state)
    layout = state_layout(m, "encode", (1, 3, 8, 16, 16))
    assert [tuple(t.shape) for t in second.state] == [e.shape for e in layout]


def test_v10_zero_initial_state_reproduces_the_first_step(model, clip) -> None:
    """One uniform step graph for v1.0: zero state == the first-chunk padding."""
    m = model(version="v1.0")
    x = m.pad_frames(clip(9))
    with torch.no_grad():
        a = encode_step(m, x[:, :, :4])
        b = encode_step(m, x[:, :, :4], initial_state(m, "encode", (1, 3, 4, 16, 16)))
        assert torch.equal(a.h, b.h) and all(torch.equal(p, q) for p, q in zip(a.state, b.state))
        z = m.encode(clip(9)).latent
        c = decode_step(m, z[:, :, :2])
        d = decode_step(m, z[:, :, :2], initial_state(m, "decode", tuple(z[:, :, :2].shape)))
        assert torch.equal(c.frames, d.frames)


def test_v11_has_no_initial_state_and_a_minimum_first_decode_step(model, clip) -> None:
    m = model(version="v1.1")
    with pytest.raises(InputError, match="past=None"):
        initial_state(m, "encode", (1, 3, 4, 16, 16))
    with torch.no_grad():
        z = m.encode(clip(9)).latent
        with pytest.raises(InputError, match=f"at least {V11_MIN_FIRST_LATENTS} latents"):
            decode_step(m, z[:, :, :2])
        # first + final in one step is the whole clip
        assert torch.equal(decode_step(m, z, final=True).frames, m.decoder(z))
        # a steady step emits tdf frames per latent: the held-back frame of the previous step
        # and all but the last of this one
        first = decode_step(m, z[:, :, :3])
        assert first.frames.shape[2] == 3 * 4 - 6  # lag 2 + 2*2 = 6 frames at tdf 4


def test_steps_reject_bad_chunks(model) -> None:
    m = model(version="v1.0")
    with pytest.raises(InputError, match="multiple of 4"):
        encode_step(m, torch.zeros(1, 3, 6, 16, 16))
    with pytest.raises(InputError, match="non-causal"):
        encode_step(model(causal=False), torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(InputError, match="n >= 1"):
        decode_step(m, torch.zeros(1, 4, 0, 4, 4))


def test_meta_and_real_layout_runs_agree(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large chunks are laid out on a meta-device copy (no memory); it must match a real run."""
    import vidtok_kit.stream.steps as steps

    m = model(version="v1.1")
    real = state_layout(m, "decode", (1, 4, 3, 4, 4))
    monkeypatch.setattr(steps, "_REAL_RUN_BYTES", 0)
    assert state_layout(m, "decode", (1, 4, 3, 4, 4)) == real
