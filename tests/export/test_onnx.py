"""ONNX export of every tiny variant: checker, TensorRT op set, parity, manifest, runtime and streaming.

Causal v1.0 / v1.1 and non-causal models, KL and FSQ, each exported once (``exported`` fixture)
with parity at min / opt / max shapes (T = 1 at the minimum for causal models); the runtime is then
compared with the PyTorch model at sizes the export was *not* checked at, and streaming through the
step graphs with the PyTorch streaming engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from click.testing import CliRunner

pytestmark = pytest.mark.onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _expected_graphs(name: str, stream: bool) -> set[str]:
    graphs = {"encode", "decode"}
    if name.endswith("fsq"):
        graphs |= {"decode_indices", "dequantize"}
    if stream:
        graphs |= {"encode_step", "decode_step"}
        if name.startswith("v1.1"):
            graphs |= {"encode_first", "decode_first", "decode_final"}
    return graphs


def test_export_checker_trt_ops_and_parity(variant: str, exported: Callable[[str], Any], variants: dict[str, Any]) -> None:
    from vidtok_kit.export.trt_ops import TRT_ONNX_OPS, tensorrt_problems

    from vidtok_kit.convert.checkpoint import file_sha256

    name = variant
    ex = exported(name)
    m = ex.manifest
    assert set(m["graphs"]) == _expected_graphs(name, bool(variants[name].stream))
    assert m["checkpoint"]["sha256"] == file_sha256(ex.checkpoint)
    assert m["model"]["causal"] == (not name.startswith("noncausal"))
    assert m["model"]["discrete"] == name.endswith("fsq")
    for graph_name, g in m["graphs"].items():
        path = ex.directory / g["file"]
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        assert tensorrt_problems(model) == [], graph_name
        assert set(g["ops"]) <= TRT_ONNX_OPS
        assert g["sha256"] == file_sha256(path)
        for which in ("min", "opt", "max"):
            report = g["parity"]["onnxruntime"][which]
            assert report["ok"], (graph_name, which, report)
            for r in report.values():
                if isinstance(r, dict) and "rel" in r:
                    assert r["rel"] <= r["tolerance"] == 1e-4
                if isinstance(r, dict) and "mismatches" in r:
                    assert r["mismatches"] == 0 or r["max_margin_of_mismatch"] < 1e-3
    video = m["graphs"]["encode"]["inputs"][0]
    assert video["dims"] == ["batch", 3, "frames", "height", "width"]
    t_min = int(variants[name].shapes.split("x")[0])
    assert video["min"][2] == t_min and video["max"][0] == 2
    if m["model"]["causal"]:
        assert t_min == 1  # the causal single-frame case (an empty branch in naive graphs) is checked
    if m["model"]["discrete"]:
        indices = m["graphs"]["encode"]["outputs"][1]
        assert indices["name"] == "indices" and indices["dtype"] == "int32"


def _clip(name: str) -> tuple[int, int, int]:
    """A (T, H, W) that is valid but none of the export's three checked sizes."""
    return {"v1.0": (3, 24, 16), "v1.1": (4, 24, 16), "noncausal": (6, 24, 16)}[name.split("-")[0]]


def test_runtime_matches_pytorch(variant: str, exported: Callable[[str], Any]) -> None:
    import vidtok_kit

    name = variant
    ex = exported(name)
    rt = vidtok_kit.load(ex.directory, backend="onnx")
    t, h, w = _clip(name)
    x = torch.rand(2, 3, t, h, w, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        ref = ex.model.encode(x)
        rec = ex.model.decode(ref.latent)
    got = rt.encode(x)
    assert got.latent.shape == ref.latent.shape and got.latent.dtype == torch.float32
    span = float(ref.latent.max() - ref.latent.min())
    if ref.indices is None:
        assert got.indices is None
        assert (got.latent - ref.latent).abs().max() <= 1e-4 * span
    else:
        assert got.indices.dtype == ref.indices.dtype
        assert torch.equal(got.indices, ref.indices)
        assert torch.equal(rt.decode_indices(ref.indices), rt.decode(ref.latent))
        assert (rt.decode_indices(ref.indices) - ex.model.decode_indices(ref.indices)).abs().max() <= 1e-4 * float(rec.max() - rec.min())
    out = rt.decode(ref.latent)
    assert out.shape == rec.shape and out.dtype == torch.float32
    assert (out - rec).abs().max() <= 1e-4 * float(rec.max() - rec.min())
    if name.startswith("v1.1"):  # v1.1 returns a clip of any length when asked (the forward pass does)
        with torch.no_grad():
            ref_clip = ex.model.decode(ref.latent, num_frames=t)
        clip = rt.decode(ref.latent, num_frames=t)
        assert clip.shape == ref_clip.shape == x.shape
        assert (clip - ref_clip).abs().max() <= 1e-4 * float(ref_clip.max() - ref_clip.min())


def test_streaming_through_step_graphs_equals_pytorch_streaming(stream_variant: str, exported: Callable[[str], Any]) -> None:
    import vidtok_kit

    ex = exported(stream_variant)
    rt = vidtok_kit.load(ex.directory, backend="onnx")
    frames = 15
    x = torch.rand(1, 3, frames, 16, 24, generator=torch.Generator().manual_seed(5)) * 2 - 1
    chunks = list(x.split(4, dim=2))  # reader chunks unrelated to the step size
    step = ex.manifest["export"]["stream_chunk"] * ex.model.temporal_factor
    with torch.no_grad():
        ref_chunks = list(vidtok_kit.load(ex.model, arithmetic="reference").encode_stream(chunks, chunk_frames=step, num_frames=frames))
        whole = ex.model.encode(x)
    got_chunks = list(rt.encode_stream(chunks, chunk_frames=step, num_frames=frames))
    assert [c.latent.shape[2] for c in got_chunks] == [c.latent.shape[2] for c in ref_chunks]
    latent = torch.cat([c.latent for c in got_chunks], dim=2)
    span = float(whole.latent.max() - whole.latent.min())
    assert (latent - torch.cat([c.latent for c in ref_chunks], dim=2)).abs().max() <= 1e-4 * span
    assert (latent - whole.latent).abs().max() <= 1e-4 * span
    if whole.indices is not None:
        assert torch.equal(torch.cat([c.indices for c in got_chunks], dim=1), whole.indices)

    latents = list(whole.latent.split(2, dim=2))
    with torch.no_grad():
        ref_frames = torch.cat(list(vidtok_kit.load(ex.model, arithmetic="reference").decode_stream(latents, chunk_latents=ex.manifest["export"]["stream_chunk"])), 2)
        ref_whole = ex.model.decode(whole.latent)
    got = torch.cat(list(rt.decode_stream(latents)), dim=2)
    span = float(ref_whole.max() - ref_whole.min())
    assert got.shape == ref_frames.shape == ref_whole.shape
    assert (got - ref_frames).abs().max() <= 1e-4 * span
    assert (got - ref_whole).abs().max() <= 1e-4 * span
    if whole.indices is not None:  # token chunks go through the dequantize graph
        tokens = torch.cat(list(rt.decode_stream(list(whole.indices.split(3, dim=1)))), dim=2)
        assert (tokens - got).abs().max() <= 1e-5 * span


def _cli() -> Any:
    from vidtok_kit.export.commands import export_command

    from vidtok_kit.cli import cli

    cli.add_command(export_command)  # what the vidtok_kit_add_commands hook does in main()
    return cli


def test_cli_export_writes_manifest(tiny_recipe: Any, tmp_path: Any, fresh_cli: None, checkpoint_factory: Any) -> None:
    import json
    import tomllib

    _, ckpt = checkpoint_factory(tiny_recipe, (), tmp_path / "m.safetensors")
    # no RECIPE: the recipe stored in our checkpoint is used
    args = ["export", "-c", str(ckpt), "-o", str(tmp_path / "out"), "--onnx", "--no-stream",
            "--shapes", "1x8x8,3x8x8,3x8x16", "--batch", "1,1,1", "-q"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"exported 2 graphs to {tmp_path / 'out'} (parity ok)"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == "vidtok-kit-export" and manifest["version"] == 1
    assert manifest["shapes"] == {"batch": [1, 1, 1], "frames": [1, 3, 3], "height": [8, 8, 8], "width": [8, 8, 16]}
    assert manifest["export"]["exporter"] == "torchscript" and manifest["export"]["opset"] == 18
    stored = tomllib.loads(manifest["recipe"]["toml"])["model"]
    assert stored["regularizer"]["kind"] == "kl" and stored["channel_mult"] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decode.onnx", "encode.onnx", "manifest.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp dir left behind
