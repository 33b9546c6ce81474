"""Chunked encode/decode of causal models equals the whole-clip result, on real video frames.

The whole-clip reference is ``VideoTokenizer.encode`` / ``decode``; the stream is fed in reader
chunks of odd sizes that never line up with the model's steps, so re-chunking, front/tail padding
and the carried :class:`StreamState` are all exercised. Weights are perturbed (VidTok
zero-initialises the temporal convs, which would hide a wrong cache).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vidtok_kit import load
from vidtok_kit.errors import InputError
from vidtok_kit.pluginmanager import default_registry

FSQ = {"regularizer": {"kind": "fsq", "levels": [8, 8, 8]}, "z_channels": 3}
TOL = 1e-5
TDF = 4  # the tiny recipe's temporal factor


def pieces(x: torch.Tensor, sizes: tuple[int, ...] = (3, 5, 1, 7, 2)) -> Iterator[torch.Tensor]:
    """Split along time in uneven reader chunks (cycling ``sizes``)."""
    i, k = 0, 0
    while i < x.shape[2]:
        n = sizes[k % len(sizes)]
        yield x[:, :, i : i + n]
        i, k = i + n, k + 1


def encode(model, x, **options):
    enc = load(model).streaming_encoder(**options)
    chunks = list(enc(pieces(x)))
    indices = torch.cat([c.indices for c in chunks], dim=1) if chunks[0].indices is not None else None
    return enc, torch.cat([c.latent for c in chunks], dim=2), indices


def assert_same_indices(model, x_padded, got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal FSQ indices, except where the whole-clip value sits within 1e-4 of a rounding boundary."""
    with torch.no_grad():
        bounded = model.regularizer.bound(model.encoder(x_padded).float().movedim(1, -1))
    near = ((bounded - bounded.floor() - 0.5).abs() < 1e-4).any(dim=-1)
    assert torch.equal(got[~near], want[~near])
    assert near.float().mean() < 0.01


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
@pytest.mark.parametrize("kind", ["kl", "fsq"])
def test_chunked_encode_and_decode_equal_whole_clip(model, clip, version: str, kind: str) -> None:
    m = model(version=version, **(FSQ if kind == "fsq" else {}))
    frames = 25  # 1 + 6 * tdf: a length both conventions take whole
    x = clip(frames)
    with torch.no_grad():
        ref = m.encode(x)
        want = m.decode(ref.latent)
    assert want.shape[2] == frames
    for chunk in (4, 8, 12):
        enc, latent, indices = encode(m, x, chunk_frames=chunk, num_frames=frames)
        assert (enc.frames, enc.front_pad, enc.tail_pad, enc.latent_frames) == (frames, 3, 0, 7)
        assert latent.shape == ref.latent.shape
        assert (latent - ref.latent).abs().max() < TOL, chunk
        if kind == "fsq":
            assert_same_indices(m, m.pad_frames(x), indices, ref.indices)
    for chunk in (1, 2, 3, 5):
        dec = load(m).streaming_decoder(chunk_latents=chunk)
        got = torch.cat(list(dec(ref.latent.split(2, dim=2))), dim=2)
        assert got.shape == want.shape, chunk
        assert (got - want).abs().max() < TOL, chunk
        assert dec.frames == frames


def test_v11_any_length_needs_the_length_up_front(model, clip) -> None:
    """v1.1 front-pads by ``tdf - T % tdf``: with ``num_frames`` the stream equals ``model.encode``;
    without it the stream assumes ``1 + k*tdf`` frames and pads the tail, which equals encoding the
    tail-padded clip (and decoding with ``num_frames`` drops that padding again)."""
    m = model(version="v1.1")
    frames = 18
    x = clip(frames)
    with torch.no_grad():
        ref = m.encode(x)
        want = m.decode(ref.latent, num_frames=frames)
    enc, latent, _ = encode(m, x, chunk_frames=8, num_frames=frames)
    assert (enc.front_pad, enc.tail_pad) == (2, 0)
    assert (latent - ref.latent).abs().max() < TOL
    dec = load(m).streaming_decoder(chunk_latents=1, front_pad=enc.front_pad, num_frames=frames)
    got = torch.cat(list(dec(latent.split(1, dim=2))), dim=2)
    assert got.shape == want.shape and (got - want).abs().max() < TOL

    enc, latent, _ = encode(m, x, chunk_frames=8)
    assert (enc.front_pad, enc.tail_pad) == (3, 3)
    padded = torch.cat([x, x[:, :, -1:].expand(-1, -1, 3, -1, -1)], dim=2)
    with torch.no_grad():
        ref = m.encode(padded)
        want = m.decode(ref.latent)[:, :, :frames]
    assert (latent - ref.latent).abs().max() < TOL
    got = torch.cat(list(load(m).streaming_decoder(chunk_latents=2, num_frames=frames)(latent.split(3, dim=2))), dim=2)
    assert got.shape == want.shape and (got - want).abs().max() < TOL


def test_v10_stream_pads_the_tail_of_other_lengths(model, clip) -> None:
    m = model(version="v1.0")
    x = clip(15)  # v1.0 takes 1 + 4k frames whole; the stream appends 2 copies of the last frame
    enc, latent, _ = encode(m, x, chunk_frames=4)
    assert (enc.frames, enc.tail_pad) == (15, 2)
    with torch.no_grad():
        ref = m.encode(torch.cat([x, x[:, :, -1:].expand(-1, -1, 2, -1, -1)], dim=2))
    assert (latent - ref.latent).abs().max() < TOL
    with pytest.raises(InputError, match="15 frames but num_frames=16"):
        encode(m, x, chunk_frames=4, num_frames=16)


@pytest.mark.parametrize("sampler", default_registry().names("temporal_sampler"))
@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_every_temporal_sampler_streams_exactly(model, clip, sampler: str, version: str) -> None:
    """A time upsampler that forgets to pass its state to ``upsample_time`` breaks v1.1 streaming."""
    m = model(version=version, temporal_sampler={"kind": sampler})
    x = clip(13)
    with torch.no_grad():
        ref = m.encode(x)
        want = m.decode(ref.latent)
    _, latent, _ = encode(m, x, chunk_frames=4, num_frames=13)
    assert (latent - ref.latent).abs().max() < TOL
    got = torch.cat(list(load(m).streaming_decoder(chunk_latents=1)(latent.split(1, dim=2))), dim=2)
    assert got.shape == want.shape and (got - want).abs().max() < TOL


def test_batch_and_bf16(model, clip) -> None:
    m = model(version="v1.1")
    x = torch.cat([clip(9), clip(9).flip(-1)], dim=0)
    with torch.no_grad():
        ref = m.encode(x)
    _, latent, _ = encode(m, x, chunk_frames=4, num_frames=9)
    assert (latent - ref.latent).abs().max() < TOL
    _, low, _ = encode(load(m, dtype=torch.bfloat16), x, chunk_frames=4, num_frames=9)
    assert low.dtype == torch.float32
    assert (low - ref.latent).abs().max() < 0.1 * ref.latent.abs().max()


def test_bad_streams_are_one_line_errors(model) -> None:
    m = model(version="v1.0")
    with pytest.raises(InputError, match="no frames to encode"):
        list(load(m).streaming_encoder()(iter([])))
    with pytest.raises(InputError, match="multiples of 4"):
        list(load(m).streaming_encoder()([torch.zeros(1, 3, 5, 18, 18)]))
    with pytest.raises(InputError, match="5-D"):
        list(load(m).streaming_encoder()([torch.zeros(3, 5, 16, 16)]))
    with pytest.raises(InputError, match="changed shape"):
        list(load(m).streaming_encoder(chunk_frames=8)([torch.zeros(1, 3, 5, 16, 16), torch.zeros(1, 3, 5, 32, 32)]))
    with pytest.raises(InputError, match="multiple of the temporal factor"):
        load(m).streaming_encoder(chunk_frames=6)
    with pytest.raises(InputError, match="no latents"):
        list(load(m).streaming_decoder()(iter([])))
