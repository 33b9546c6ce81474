"""The ``dynamo`` exporter (torch.export + onnxscript) on a causal v1.1 model, stream graphs included.

Tens of seconds per graph on CPU (the default torchscript exporter takes one or two), so it runs
only when asked: ``VIDTOK_KIT_RUN_SLOW=1 pytest -m slow tests/export``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.onnx,
    pytest.mark.skipif(
        not os.environ.get("VIDTOK_KIT_RUN_SLOW"),
        reason="the dynamo exporter takes minutes for all graphs on CPU; set VIDTOK_KIT_RUN_SLOW=1 to run it",
    ),
]


@pytest.mark.timeout(1800)
def test_dynamo_export_passes_parity_and_streams(
    tiny_recipe: Path, tmp_path: Path, checkpoint_factory: Callable[..., Any], small_overrides: tuple[str, ...]
) -> None:
    pytest.importorskip("onnxscript")
    from vidtok_kit.export.pipeline import export_tokenizer

    import vidtok_kit

    v11 = ('model.version="v1.1"',)
    model, ckpt = checkpoint_factory(tiny_recipe, v11, tmp_path / "m.safetensors")
    manifest = export_tokenizer(
        tiny_recipe, tmp_path / "out", checkpoint=ckpt, shapes="1x8x8,6x16x16,9x16x24", stream_chunk=3,
        overrides=(*small_overrides, *v11), exporter="dynamo",
    )
    assert manifest["export"]["exporter"] == "dynamo"
    assert {"encode_first", "decode_first", "decode_final"} <= set(manifest["graphs"])
    rt = vidtok_kit.load(tmp_path / "out", backend="onnx")
    x = torch.rand(1, 3, 11, 16, 24, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
    streamed = torch.cat([c.latent for c in rt.encode_stream(list(x.split(3, dim=2)), num_frames=11)], dim=2)
    span = float(ref.latent.max() - ref.latent.min())
    assert (streamed - ref.latent).abs().max() <= 1e-4 * span
    with torch.no_grad():
        rec = model.decode(ref.latent)
    frames = torch.cat(list(rt.decode_stream(list(ref.latent.split(2, dim=2)))), dim=2)
    assert frames.shape == rec.shape
    assert (frames - rec).abs().max() <= 1e-4 * float(rec.max() - rec.min())
