"""``--precision fp16``: fp16 copies of the graphs that run the encoder or decoder, for GPU providers.

Checked here on ONNX Runtime's CPU provider (it runs fp16 graphs, slowly): the copies are written
next to the fp32 graphs with their own digest and parity report, take and return the same dtypes,
and ``vidtok_kit.load(DIR, backend="onnx", dtype="fp16")`` runs them within fp16 tolerance of the
PyTorch model, while the fp32 default still runs the fp32 graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FSQ_V11 = ('model.version="v1.1"', 'model.regularizer={kind="fsq", levels=[4,4,4]}', "model.z_channels=3")


@pytest.fixture(scope="module")
def fp16_export(tiny_recipe: Path, small_overrides: tuple[str, ...], checkpoint_factory: Callable[..., Any],
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    from vidtok_kit.export.pipeline import export_tokenizer

    root = tmp_path_factory.mktemp("fp16")
    model, ckpt = checkpoint_factory(tiny_recipe, FSQ_V11, root / "model.safetensors")
    manifest = export_tokenizer(tiny_recipe, root / "export", checkpoint=ckpt, shapes="1x8x8,6x16x16,9x16x24",
                                batch=(1, 1, 2), stream_chunk=3, precision="fp16",
                                overrides=(*small_overrides, *FSQ_V11))
    return root / "export", manifest, model


def test_fp16_copies_are_written_checked_and_recorded(fp16_export: tuple[Path, dict[str, Any], Any]) -> None:
    from vidtok_kit.convert.checkpoint import file_sha256

    directory, manifest, _ = fp16_export
    halves = {name for name, entry in manifest["graphs"].items() if "fp16" in entry}
    assert halves == {"encode", "decode", "decode_indices"}  # not the stream steps, not dequantize
    for name in halves:
        half = manifest["graphs"][name]["fp16"]
        assert half["file"] == f"{name}.fp16.onnx"
        assert half["sha256"] == file_sha256(directory / half["file"])
        assert all(report["ok"] for report in half["parity"]["onnxruntime"].values())
        graph = onnx.load(str(directory / half["file"]))
        weights = {init.data_type for init in graph.graph.initializer if len(init.dims) == 4 or len(init.dims) == 5}
        assert onnx.TensorProto.FLOAT16 in weights  # the convolutions' weights are fp16
        # same signature as the fp32 twin: fp32 video / latent in, fp32 frames out
        twin = onnx.load(str(directory / manifest["graphs"][name]["file"]), load_external_data=False)
        assert [(i.name, i.type.tensor_type.elem_type) for i in graph.graph.input] == \
            [(i.name, i.type.tensor_type.elem_type) for i in twin.graph.input]
    assert manifest["export"]["precision"] == "fp16"


def test_load_with_fp16_runs_the_fp16_graphs_within_tolerance(fp16_export: tuple[Path, dict[str, Any], Any]) -> None:
    import vidtok_kit

    directory, _, model = fp16_export
    half = vidtok_kit.load(directory, backend="onnx", dtype="fp16")
    full = vidtok_kit.load(directory, backend="onnx")
    assert half.backend.describe()["precision"] == "fp16" and full.backend.describe()["precision"] == "fp32"
    x = torch.rand(1, 3, 9, 16, 24, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x)
        rec = model.decode(ref.latent)
    span = float(rec.max() - rec.min())
    out16, out32 = half.decode(ref.latent), full.decode(ref.latent)
    assert out16.dtype == torch.float32 and out16.shape == rec.shape
    assert (out32 - rec).abs().max() <= 1e-4 * span
    assert 0 < (out16 - rec).abs().max() <= 1e-2 * span  # fp16 arithmetic: close, not identical
    got = half.encode(x)
    assert (got.indices != ref.indices).float().mean() <= 0.02  # flips only near rounding boundaries


def test_sessions_print_no_onnxruntime_warnings(fp16_export: tuple[Path, dict[str, Any], Any],
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """ORT's optimiser warns (in colour, on the C stderr) that it cannot constant-fold the fp16
    graph's Tile nodes on the CPU; an export or a load must not print that amid its own lines."""
    from vidtok_kit.export.onnx import ort_session

    directory, _, _ = fp16_export
    capfd.readouterr()
    ort_session(directory / "decode.fp16.onnx")
    assert "onnxruntime" not in capfd.readouterr().err


def test_fp16_needs_an_export_with_fp16_graphs(exported: Callable[[str], Any]) -> None:
    from vidtok_kit.export.deps import ExportError

    import vidtok_kit

    with pytest.raises(ExportError, match="no fp16 graphs"):
        vidtok_kit.load(exported("v1.0-kl").directory, backend="onnx", dtype="fp16")
    with pytest.raises(ExportError, match="precision bf16 is not available"):
        vidtok_kit.load(exported("v1.0-kl").directory, backend="onnx", dtype="bf16")


def test_cli_encode_with_fp16_runs_the_fp16_graphs(fp16_export: tuple[Path, dict[str, Any], Any], tmp_path: Path,
                                                    cli: Any) -> None:
    from click.testing import CliRunner

    from vidtok_kit.io import write_video
    from vidtok_kit.tokenize import load_tokens

    directory = fp16_export[0]
    clip = torch.rand(3, 9, 16, 24, generator=torch.Generator().manual_seed(6)) * 2 - 1
    video = write_video(tmp_path / "a.mp4", clip, fps=8.0)
    outs = {}
    for precision in ("fp32", "fp16"):
        out = tmp_path / f"{precision}.safetensors"
        result = CliRunner().invoke(cli, ["encode", str(video), "--backend", "onnx", "--export", str(directory),
                                           "--precision", precision, "-o", str(out)])
        assert result.exit_code == 0, result.output
        outs[precision] = load_tokens(out)[0]
    a, b = outs["fp32"], outs["fp16"]
    assert a.shape == b.shape and (a != b).float().mean() <= 0.02
