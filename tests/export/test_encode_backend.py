"""`vidtok-kit encode --backend onnx` streams a real video through the exported graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

pytest.importorskip("onnxruntime")


TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "kl_causal.toml"


@pytest.mark.onnx
def test_encode_with_onnx_backend_equals_pytorch(tmp_path: Path, cli: object) -> None:
    from vidtok_kit import build_model, load_recipe
    from vidtok_kit.convert.checkpoint import save_tokenizer
    from vidtok_kit.io import sample_videos

    recipe = load_recipe(TINY)
    torch.manual_seed(3)
    model = build_model(recipe)
    with torch.no_grad():  # zero-initialised temporal convs would hide the time axis
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ckpt = save_tokenizer(model, recipe, tmp_path / "tiny.safetensors")
    video = str(sample_videos()[1])
    runner = CliRunner()
    out = runner.invoke(cli, ["export", "-c", str(ckpt), "-o", str(tmp_path / "exp"), "--onnx", "-q"])
    assert out.exit_code == 0, out.output
    common = [video, "--size", "32", "--end", "1"]
    ref = runner.invoke(cli, ["encode", *common, "--checkpoint", str(ckpt), "-o", str(tmp_path / "torch.safetensors")])
    assert ref.exit_code == 0, ref.output
    got = runner.invoke(
        cli, ["encode", *common, "--backend", "onnx", "--export", str(tmp_path / "exp"), "-o", str(tmp_path / "onnx.safetensors")]
    )
    assert got.exit_code == 0, got.output
    a, b = load_file(str(tmp_path / "torch.safetensors")), load_file(str(tmp_path / "onnx.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        scale = a[key].abs().max().clamp_min(1e-6)
        assert ((a[key] - b[key]).abs().max() / scale) < 1e-4, key


def test_onnx_backend_needs_an_export_directory(tmp_path: Path, cli: object) -> None:
    from vidtok_kit.io import sample_videos

    out = CliRunner().invoke(cli, ["encode", str(sample_videos()[1]), "--backend", "onnx", "-o", str(tmp_path / "x.safetensors")])
    assert out.exit_code != 0 and "--export" in out.output
    assert not (tmp_path / "x.safetensors").exists()
