"""What :func:`vidtok_kit.load` returns runs the fast path and equals the reference model on tiny models.

Speed targets are not tested here (they live in ``benchmarks/``, run by hand); these tests pin the
numbers: the fast arithmetic, channels-last, inference mode and chunked time (the one driver,
whole clips being its one-chunk case) change nothing beyond fp32 rounding, the 5-D temporal
convolution equals the per-pixel Conv1d, bf16 stays close, compiled equals eager.
"""

from __future__ import annotations

import shutil
import time
import warnings

import pytest
import torch
from torch import nn

import vidtok_kit
from vidtok_kit.compiled import AUTO_COMPILE_AFTER_SECONDS, CompiledFunction
from vidtok_kit.errors import InputError
from vidtok_kit.interfaces import Tokenizer
from vidtok_kit.model.blocks import TemporalResBlock
from vidtok_kit.model.layers import StreamState, TimeConv, TimeMode, causal_front_pad, from_pixels, to_pixels
from vidtok_kit.model.shortcuts import arithmetic_of
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
def test_loaded_tokenizer_equals_reference(causal: bool, reg: str, chunked: bool) -> None:
    model = _model(causal, reg)
    frames = 17 if causal else 16
    x = torch.rand(1, 3, frames, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        recon = model.decode(ref.latent)
    tok = vidtok_kit.load(model, compile="off")
    assert isinstance(tok, Tokenizer)
    chunk = {"chunk_frames": 4} if chunked and causal else {}
    reg_out = tok.encode(x, **chunk)
    assert reg_out.latent.shape == ref.latent.shape and reg_out.latent.dtype == torch.float32
    torch.testing.assert_close(reg_out.latent, ref.latent, atol=1e-5, rtol=0)
    if ref.indices is not None:
        assert torch.equal(reg_out.indices, ref.indices) and reg_out.indices.dtype == tok.index_dtype
    out = tok.decode(ref.latent, **({"chunk_latents": 1} if chunked and causal else {}))
    assert out.shape == recon.shape
    torch.testing.assert_close(out, recon, atol=1e-5, rtol=0)


def test_load_switches_the_model_to_the_fast_arithmetic_per_module() -> None:
    """No process-wide switch: a loaded tokenizer's modules are fast, another model stays reference."""
    model, other = _model(True, "kl"), _model(True, "kl")
    assert set(arithmetic_of(model).values()) == {"reference"}
    tok = vidtok_kit.load(model, compile="off")
    assert tok.model is model and set(arithmetic_of(model).values()) == {"fast"}
    assert set(arithmetic_of(other).values()) == {"reference"}
    assert set(arithmetic_of(vidtok_kit.load(other, arithmetic="reference", compile="off").model).values()) == {"reference"}


def test_decode_num_frames_keeps_the_last_frames() -> None:
    model = _model(True, "kl")
    z = torch.randn(1, 4, 3, 4, 4)
    with torch.no_grad():
        ref = model.decode(z, num_frames=7)
    tok = vidtok_kit.load(model, compile="off")
    torch.testing.assert_close(tok.decode(z, num_frames=7), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(tok.decode(z, num_frames=7, chunk_latents=1), ref, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="num_frames"):
        tok.decode(z, num_frames=13)


def test_bf16_tokenizer_is_a_copy_and_close() -> None:
    model = _model(True, "kl")
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    half = vidtok_kit.load(model, dtype="bf16", compile="off")
    assert half.model is not model and next(model.parameters()).dtype == torch.float32
    assert next(half.model.decoder.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        ref = model.encode(x).latent
    latent = half.encode(x).latent
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


def test_chunked_tokens_equal_whole_clip_tokens() -> None:
    model = _model(True, "fsq")
    x = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        recon = model.decode(ref.latent)
    tok = vidtok_kit.load(model, compile="off")
    for chunk in (None, 4, 8, 12):
        reg = tok.encode(x, chunk_frames=chunk)
        torch.testing.assert_close(reg.latent, ref.latent, atol=1e-5, rtol=0)
        assert torch.equal(reg.indices, ref.indices)
        torch.testing.assert_close(tok.decode_indices(reg.indices, chunk_latents=chunk and chunk // 4), recon, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="chunk_frames"):
        tok.encode(x, chunk_frames=3)


def test_auto_compile_waits_for_a_signature_to_come_back_after_enough_eager_time() -> None:
    calls: list[int] = []

    def counting_backend(graph, inputs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return graph.forward

    def slow_double(x):  # type: ignore[no-untyped-def]
        time.sleep(0.1)
        return x * 2

    fn = CompiledFunction.for_mode(slow_double, name="the doubler", mode="auto")
    assert isinstance(fn, CompiledFunction) and fn.compile_after_seconds == AUTO_COMPILE_AFTER_SECONDS
    fn._backend = counting_backend
    fn.compile_after_seconds = 0.25
    fn(torch.ones(3))
    assert calls == []  # a one-off call runs eagerly
    fn(torch.ones(4))
    assert calls == []  # another shape: its first call
    fn(torch.ones(3))
    assert calls == []  # back, but its one eager call took 0.1 s: cheaper than compiling
    fn(torch.ones(3))
    fn(torch.ones(3))
    assert calls == [1]  # 0.3 s spent eagerly: compiled on the next call
    fn(torch.ones(4))
    assert calls == [1]  # the other shape has cost 0.1 s: still eager
    assert CompiledFunction.for_mode(abs, name="x", mode="off") is abs
    with pytest.raises(InputError, match="compile must be one of"):
        CompiledFunction.for_mode(abs, name="x", mode="sometimes")  # type: ignore[arg-type]


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
    compiled = vidtok_kit.load(model, compile="on")
    latent = compiled.encode(x).latent
    out = compiled.decode(ref)
    backend = compiled.backend
    assert backend.compiled, "compiling failed: " + str(backend._encoder.failure or backend._decoder.failure)
    torch.testing.assert_close(latent, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out, recon, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", [TimeMode.CAUSAL_V1_0, TimeMode.CAUSAL_V1_1], ids=lambda m: m.value)
def test_causal_padding_keeps_channels_last(mode: TimeMode) -> None:
    """A channels-last clip stays channels-last through the causal front padding (the fast conv layout)."""
    x = torch.randn(1, 8, 5, 4, 4).contiguous(memory_format=torch.channels_last_3d)
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
    tokenizer = vidtok_kit.load(model, compile="off")
    tokenizer.decode(tokenizer.encode(torch.rand(1, 3, 9 if causal else 8, 32, 32) * 2 - 1).latent)
    assert off == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda x: (x + 1) * 127.5, r"video values span \[\d.*, 255\]; the model takes \[-1, 1\] \(map 0\.\.255 frames with x / 127\.5 - 1"),
        (lambda x: x.index_fill(2, torch.tensor([4]), float("nan")), "the video holds NaN or infinite values"),
        (lambda x: x * 1.6, r"video values span"),
    ],
    ids=["0..255", "nan", "too wide"],
)
def test_encode_refuses_a_video_off_the_model_scale(values, message: str) -> None:
    tok = vidtok_kit.load(tiny_model(), compile="off")
    x = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with pytest.raises(InputError, match=message):
        tok.encode(values(x))
    # a reconstruction overshoots [-1, 1] a little and may be encoded again
    tok.encode((x * 1.05).clamp(-1.05, 1.05))
