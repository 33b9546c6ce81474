"""The released-size FSQ tokenizer (recipes/fsq_488.toml, 157 M parameters) exports and passes parity.

Minutes of CPU time (PyTorch and ONNX Runtime each run every graph at three sizes up to
17x64x64), so it runs only when asked: ``VIDTOK_KIT_RUN_SLOW=1 pytest -m slow tests/export``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.onnx,
    pytest.mark.skipif(
        not os.environ.get("VIDTOK_KIT_RUN_SLOW"),
        reason="full-size export takes minutes on CPU; set VIDTOK_KIT_RUN_SLOW=1 to run it",
    ),
]


@pytest.mark.timeout(3600)
def test_fsq_488_exports_with_parity_at_17x64x64(repo_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from vidtok_kit.export.pipeline import export_tokenizer

    recipe = repo_root / "recipes" / "fsq_488.toml"
    if not recipe.is_file():
        pytest.skip(f"{recipe} is not in this checkout")
    manifest = export_tokenizer(
        recipe, tmp_path / "fsq_488", shapes="1x64x64,9x64x64,17x64x64", batch=(1, 1, 1), stream_chunk=4,
        log=print,
    )
    assert {"encode", "decode", "decode_indices", "dequantize", "encode_step", "decode_step"} <= set(manifest["graphs"])
    video = manifest["graphs"]["encode"]["inputs"][0]
    assert video["max"] == [1, 3, 17, 64, 64]
    for name, graph in manifest["graphs"].items():
        for which, report in graph["parity"]["onnxruntime"].items():
            assert report["ok"], (name, which, report)
            for out, r in report.items():
                if isinstance(r, dict) and "rel" in r:
                    assert r["rel"] <= 1e-4, (name, which, out, r)
    assert manifest["graphs"]["encode"]["outputs"][1]["max"] == [1, 5, 8, 8]  # int32 indices, 5 latents of 8x8
