"""The inference fast path (:mod:`vidtok_kit.fast`) equals the reference path on tiny models.

Speed targets are not tested here (they live in ``benchmarks/inference.py``, run by hand); these
tests pin the numbers: channels-last, inference mode and chunked time change nothing beyond fp32
rounding, the 5-D temporal convolution equals the per-pixel Conv1d, and bf16 stays close.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from torch import nn

from vidtok_kit import fast
from vidtok_kit.compiled import CompiledFunction
from vidtok_kit.errors import InputError
from vidtok_kit.model.blocks import TemporalResBlock
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, causal_front_pad, from_pixels, to_pixels
from vidtok_kit.model.shortcuts import fast_arithmetic
from vidtok_kit.testing import tiny_model

CASES = [(True, "kl"), (True, "fsq"), (False, "kl")]


def _model(causal: bool, reg: str):
    torch.manual_seed(0)
    kw: dict = {"causal": causal, "version": "v1.1"}
    if reg == "fsq":
        kw.update(regularizer={"kind": "fsq", "levels": [8, 8, 8]}, z_channels=3)
    model = tiny_model(**kw).eval()
    with torch.no_grad():
        for p in model.parameters():  # wake the zero-initialised temporal convs
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize(("causal", "reg"), CASES, ids=[f"{'causal' if c else 'noncausal'}-{r}" for c, r in CASES])
def test_fast_equals_reference(causal: bool, reg: str, chunked: bool) -> None:
    model = _model(causal, reg)
    frames = 17 if causal else 16
    x = torch.rand(1, 3, frames, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        recon = model.decode(ref.latent)
    latent = fast.encode(model, x, chunked=chunked, chunk_latents=1)
    assert latent.shape == ref.latent.shape and latent.dtype == torch.float32
    torch.testing.assert_close(latent, ref.latent, atol=1e-5, rtol=0)
    out = fast.decode(model, ref.latent, chunked=chunked, chunk_latents=1)
    assert out.shape == recon.shape
    torch.testing.assert_close(out, recon, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.encode_reg(model, x).latent, ref.latent, atol=1e-5, rtol=0)


def test_fast_decode_num_frames() -> None:
    model = _model(True, "kl")
    z = torch.randn(1, 4, 3, 4, 4)
    with torch.no_grad():
        ref = model.decode(z, num_frames=7)
    torch.testing.assert_close(fast.decode(model, z, num_frames=7), ref, atol=1e-5, rtol=0)


def test_bf16_mode_is_a_copy_and_close() -> None:
    model = _model(True, "kl")
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    half = fast.for_inference(model, torch.bfloat16)
    assert half is not model and next(model.parameters()).dtype == torch.float32
    assert fast.for_inference(model) is model
    with torch.no_grad():
        ref = model.encode(x).latent
    latent = fast.encode(half, x)
    assert latent.dtype == torch.float32
    assert (latent - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("channels_last", [False, True], ids=["ncdhw", "channels-last"])
@pytest.mark.parametrize("mode", list(TimeMode), ids=lambda m: m.value)
@pytest.mark.parametrize("stride", [1, 2])
def test_timeconv_5d_equals_per_pixel(mode: TimeMode, stride: int, channels_last: bool) -> None:
    """The 5-D forms (a (3, 1, 1) Conv3d, or for channels-last clips a dilated 2-D conv) equal Conv1d per pixel."""
    torch.manual_seed(0)
    conv = TimeConv(6, 5, 3, mode=mode, dims=1, time_stride=stride, time_padding=0 if stride == 2 else None)
    x = torch.randn(2, 6, 8, 3, 4)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        ref = from_pixels(conv(to_pixels(x)), 2, 3)
        out = conv(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_temporal_block_5d_equals_per_pixel_and_streams() -> None:
    torch.manual_seed(0)
    block = TemporalResBlock(6, mode=TimeMode.CAUSAL_V1_1)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(1, 6, 8, 3, 4)
    with torch.no_grad():
        ref = from_pixels(block.forward_pixels(to_pixels(x)), 1, 3)
        torch.testing.assert_close(block(x), ref, atol=1e-6, rtol=0)
        s1 = StreamState()
        a = block(x[:, :, :3], s1)
        b = block(x[:, :, 3:], StreamState(s1.present))
    torch.testing.assert_close(torch.cat([a, b], dim=2), ref, atol=1e-6, rtol=0)


def test_fast_tokenizer_chunked_equals_whole_and_reference() -> None:
    model = _model(True, "fsq")
    x = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        recon = model.decode(ref.latent)
    for chunk in (None, 1, 2, 3):
        fast_model = fast.FastTokenizer(model, chunk_latents=chunk)
        reg = fast_model.encode_reg(x)
        torch.testing.assert_close(reg.latent, ref.latent, atol=1e-5, rtol=0)
        assert torch.equal(reg.indices, ref.indices)
        torch.testing.assert_close(fast_model.decode(ref.latent), recon, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="chunk_latents"):
        fast.FastTokenizer(model, chunk_latents=0)


def test_compile_failure_falls_back_to_eager_once() -> None:
    def broken_backend(graph, inputs):
        raise RuntimeError("no C++ compiler on this machine")

    doubled = CompiledFunction(lambda x: x * 2, name="the doubler", backend=broken_backend)
    with pytest.warns(RuntimeWarning, match=r"the doubler \(RuntimeError: no C\+\+ compiler on this machine\)"):
        out = doubled(torch.ones(3))
    assert torch.equal(out, torch.full((3,), 2.0))
    assert not doubled.active and "no C++ compiler" in doubled.failure
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later calls run eagerly and quietly
        assert torch.equal(doubled(torch.ones(2)), torch.full((2,), 2.0))


def test_compiled_function_passes_input_errors_through() -> None:
    def strict(x):
        if x.shape[0] > 2:
            raise InputError("too many rows")
        return x + 1

    fn = CompiledFunction(strict, name="strict")
    with pytest.raises(InputError, match="too many rows"):
        fn(torch.ones(3))
    assert fn.active


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="Inductor on CPU needs a C++ compiler")
def test_compiled_tokenizer_equals_eager() -> None:
    """A real Inductor compile of a tiny causal model (about half a minute on 2 cores)."""
    model = _model(True, "kl")
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x).latent
        recon = model.decode(ref)
    compiled = fast.FastTokenizer(model, compile=True)
    latent = compiled.encode(x)
    out = compiled.decode(ref)
    assert compiled.compiled, "compiling failed: " + str(compiled._encoder.failure or compiled._decoder.failure)
    torch.testing.assert_close(latent, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out, recon, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", [TimeMode.CAUSAL_V1_0, TimeMode.CAUSAL_V1_1], ids=lambda m: m.value)
def test_causal_padding_keeps_channels_last(mode: TimeMode) -> None:
    """A channels-last clip stays channels-last through the causal front padding (the fast conv layout)."""
    x = torch.randn(1, 8, 5, 4, 4).contiguous(memory_format=torch.channels_last_3d)
    with fast_arithmetic():
        padded = causal_front_pad(x, 2, mode, None)
    assert padded.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(padded[:, :, 2:], x)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "noncausal"])
def test_fast_path_stays_channels_last_through_every_layer(causal: bool) -> None:
    """One channels-first layer output turns the residual stream channels-first (an add keeps its
    first operand's layout): every later conv then reads NCHW frames. Small clips are where
    oneDNN's 3-D conv returns NCDHW for a channels-last input."""
    model = _model(causal, "kl")
    layers = (nn.Conv3d, nn.Conv2d, nn.Conv1d, nn.LayerNorm)  # inner modules: their wrappers are checked
    off: list[str] = []

    def check(name: str):  # type: ignore[no-untyped-def]
        def hook(module, args, out) -> None:  # type: ignore[no-untyped-def]
            if isinstance(out, torch.Tensor) and out.ndim == 5 and not out.is_contiguous(memory_format=torch.channels_last_3d):
                off.append(name)

        return hook

    for name, module in [*model.encoder.named_modules(prefix="encoder"), *model.decoder.named_modules(prefix="decoder")]:
        if not isinstance(module, layers):
            module.register_forward_hook(check(name))
    tokenizer = fast.FastTokenizer(model)
    tokenizer.decode(tokenizer.encode(torch.rand(1, 3, 9 if causal else 8, 32, 32) * 2 - 1))
    assert off == []
