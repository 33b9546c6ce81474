"""TensorRT engines from the ONNX export: build with profiles, parity against PyTorch, runtime backend.

Runs only where ``tensorrt`` is installed and PyTorch sees a CUDA GPU; elsewhere every test is
skipped with that reason (shown by ``-ra`` in the test report).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed (pip install 'vidtok-kit[tensorrt]')"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to PyTorch"),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engines_pass_parity_and_run_through_the_runtime(
    precision: str, tiny_recipe: Path, tmp_path: Path, checkpoint_factory: Callable[..., Any], small_overrides: tuple[str, ...]
) -> None:
    from vidtok_kit.export.pipeline import export_tokenizer

    import vidtok_kit

    fsq = ('model.version="v1.1"', 'model.regularizer={kind="fsq", levels=[4,4,4]}', "model.z_channels=3")
    model, ckpt = checkpoint_factory(tiny_recipe, fsq, tmp_path / "m.safetensors")
    manifest = export_tokenizer(
        tiny_recipe, tmp_path / "out", checkpoint=ckpt, trt=True, precision=precision, shapes="1x8x8,6x16x16,9x16x24",
        batch=(1, 1, 2), stream_chunk=3, overrides=(*small_overrides, *fsq), timing_cache=tmp_path / "timing.cache",
    )
    assert set(manifest["engines"]) == set(manifest["graphs"])
    assert (tmp_path / "timing.cache").stat().st_size > 0
    for name, graph in manifest["graphs"].items():
        assert graph["parity"]["tensorrt"]["max"]["ok"], name
        assert (tmp_path / "out" / manifest["engines"][name]["file"]).is_file()
    engine = vidtok_kit.load(tmp_path / "out", backend="tensorrt")
    x = torch.rand(2, 3, 6, 16, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        rec = model.decode(ref.latent, num_frames=6)
    got = engine.encode(x)
    assert got.latent.device == x.device and got.indices.dtype == ref.indices.dtype
    flips = (got.indices != ref.indices).float().mean().item()
    assert flips <= (0.0 if precision == "fp32" else 0.01)
    out = engine.decode(ref.latent, num_frames=6)
    tol = 1e-4 if precision == "fp32" else 1e-2
    assert (out - rec).abs().max() <= tol * float(rec.max() - rec.min())
    chunks = list(x[:1].split(4, dim=2))
    streamed = torch.cat([c.latent for c in engine.encode_stream(chunks, num_frames=6)], dim=2)
    span = float(ref.latent.max() - ref.latent.min())
    assert (streamed - got.latent[:1]).abs().max() <= max(tol * span, 0.51)  # one code step where an index flips
