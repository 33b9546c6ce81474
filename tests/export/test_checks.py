"""The export's guards, each on its own: bad input, missing dependencies, the TensorRT op check, parity.

These run no (or one tiny) export: every message is one line, the CLI exits non-zero, and a failed
export leaves nothing under the requested name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


def _cli() -> Any:
    from vidtok_kit.export.commands import export_command

    from vidtok_kit.cli import cli

    cli.add_command(export_command)
    return cli


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(_cli(), args)


def _one_line_error(result: Any) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--shapes", "2x8x8,5x16x16,9x16x16"], "this v1.0 model takes 1 + 4k frames (1, 5, 9, ...), got frames [2]"),
        (["--shapes", "1x8x8,5x10x16,9x16x16"], "height must be a multiple of 4 (the spatial factor), got [10]"),
        (["--shapes", "9x8x8,5x8x8,9x8x8"], "frames min,opt,max must be positive and non-decreasing"),
        (["--shapes", "1x8,5x16x16"], "expected min,opt,max as TxHxW"),
        (["--batch", "1,2"], "--batch: expected min,opt,max (three integers)"),
        (["--precision", "bf16"], "--precision bf16 applies to TensorRT engines (add --trt)"),
        (["--opset", "17"], "--opset 17: the torchscript exporter writes opsets 18..20"),
        (["--tolerance", "-1"], "--tolerance must be >= 0"),
    ],
)
def test_bad_options_fail_with_one_line(extra: list[str], expected: str, tiny_recipe: Path, tmp_path: Path, fresh_cli: None) -> None:
    line = _one_line_error(_run(["export", str(tiny_recipe), "-o", str(tmp_path / "out"), *extra]))
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(tiny_recipe: Path, tmp_path: Path, fresh_cli: None) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    line = _one_line_error(_run(["export", str(tiny_recipe), "-o", str(tmp_path / "out")]))
    assert "exists and is not empty" in line and "--force" in line
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available(),
    reason="TensorRT and a GPU are available here; tests/export/test_tensorrt.py covers --trt",
)
def test_trt_without_tensorrt_or_gpu_says_what_is_missing(tiny_recipe: Path, tmp_path: Path, fresh_cli: None) -> None:
    line = _one_line_error(_run(["export", str(tiny_recipe), "-o", str(tmp_path / "out"), "--trt"]))
    assert "--trt needs" in line and ("'tensorrt' is not installed" in line or "CUDA GPU" in line)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_failed_parity_leaves_nothing_behind(tiny_recipe: Path, tmp_path: Path, small_overrides: tuple[str, ...]) -> None:
    """A real parity failure (a tolerance no float graph meets) after the first graph was written."""
    from vidtok_kit.export.deps import ParityError
    from vidtok_kit.export.pipeline import export_tokenizer

    old = tmp_path / "out"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    with pytest.raises(ParityError, match=r"ONNX Runtime parity failed for graph 'encode' at the min shape: output 'latent'"):
        export_tokenizer(tiny_recipe, old, shapes="1x8x8,1x8x8,1x8x8", batch=(1, 1, 1), stream_chunk=None,
                         overrides=small_overrides, tolerance=1e-12, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # temp dir removed
    assert (old / "manifest.json").read_text() == "{}"  # the old export is untouched


def test_runtime_rejects_bad_input_and_missing_engines(tmp_path: Path, exported: Any) -> None:
    from vidtok_kit.export.deps import ExportError, MissingDependencyError

    import vidtok_kit
    from vidtok_kit.errors import InputError

    with pytest.raises(ExportError, match="not an export directory"):
        vidtok_kit.load(tmp_path, backend="onnx")
    directory = exported("noncausal-kl").directory
    rt = vidtok_kit.load(directory, backend="onnx")
    with pytest.raises(InputError, match="takes a positive multiple of 2 frames, got 3"):
        rt.encode(torch.zeros(1, 3, 3, 8, 8))
    with pytest.raises(InputError, match="expected 3 channels"):
        rt.encode(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(InputError, match="height and width must be positive multiples of 2"):
        rt.encode(torch.zeros(1, 3, 2, 8, 7))
    with pytest.raises(InputError, match="continuous"):
        rt.decode_indices(torch.zeros(1, 1, 4, 4, dtype=torch.int32))
    # a non-causal export streams a clip whole (its graphs have no windows to cross-fade)
    clip = torch.rand(1, 3, 4, 8, 8)
    streamed = torch.cat([c.latent for c in rt.encode_stream(clip.split(1, dim=2))], dim=2)
    torch.testing.assert_close(streamed, rt.encode(clip).latent)
    with pytest.raises(InputError, match="runs whole frames only"):
        list(rt.encode_stream([clip], tile=4))
    with pytest.raises(MissingDependencyError, match="no TensorRT engines"):
        vidtok_kit.load(directory, backend="tensorrt")
    with pytest.raises(InputError, match="backend 'tvm' is not one of torch, onnx, tensorrt"):
        vidtok_kit.load(directory, backend="tvm")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ExportError, match="the CUDA provider of ONNX Runtime is not available"):
            vidtok_kit.load(directory, device="cuda", backend="onnx").encode(torch.zeros(1, 3, 2, 8, 8))
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ExportError, match="not a vidtok-kit export manifest"):
        vidtok_kit.load(tmp_path, backend="onnx")


def test_both_onnxruntime_distributions_are_detected() -> None:
    from vidtok_kit.export.deps import MissingDependencyError, check_onnxruntime_install

    check_onnxruntime_install(["onnxruntime"])  # one is fine
    with pytest.raises(MissingDependencyError) as err:
        check_onnxruntime_install(["onnxruntime", "onnxruntime-gpu"])
    message = str(err.value)
    assert "\n" not in message
    assert "onnxruntime and onnxruntime-gpu are all installed" in message
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in message
    check_onnxruntime_install()  # this environment itself is not broken


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] = (), opset: int = 18) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return onnx.shape_inference.infer_shapes(model)


def test_tensorrt_allow_list_rejects_what_tensorrt_cannot_parse() -> None:
    from vidtok_kit.export.deps import ExportError
    from vidtok_kit.export.trt_ops import check_tensorrt_compatible, tensorrt_problems

    x = helper.make_tensor_value_info("x", TensorProto.INT64, [4])
    ok = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32)], [x],
                [helper.make_tensor_value_info("y", TensorProto.INT32, [4])])
    assert check_tensorrt_compatible(ok, graph_name="ok") == ["Cast"]
    bad = _model(
        [
            helper.make_node("BitShift", ["x", "x"], ["s"], direction="LEFT", name="shift"),
            helper.make_node("Cast", ["s"], ["n"], to=TensorProto.INT16, name="narrow"),
            helper.make_node("ReduceSum", ["f", "axes"], ["r"], name="sum"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.UINT64, [4]), helper.make_tensor_value_info("f", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("n", TensorProto.INT16, [4]), helper.make_tensor_value_info("r", TensorProto.FLOAT, [1])],
        opset=21,
    )
    problems = " | ".join(tensorrt_problems(bad))
    for expected in ("opset 21", "operator BitShift (shift)", "Cast narrow: to INT16", "ReduceSum sum: axes must be a constant",
                     "tensor 'n' of type INT16", "tensor 'x' of type UINT64"):
        assert expected in problems
    with pytest.raises(ExportError, match=r"^graph 'bad' would be rejected by TensorRT 10: ") as err:
        check_tensorrt_compatible(bad, graph_name="bad")
    assert "\n" not in str(err.value)


def test_narrow_index_casts_are_folded_exactly() -> None:
    from vidtok_kit.export.onnx import fold_narrow_casts

    model = _model(
        [helper.make_node("Cast", ["x"], ["a"], to=TensorProto.INT16), helper.make_node("Cast", ["a"], ["y"], to=TensorProto.INT32)],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [3])],
    )
    assert fold_narrow_casts(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Cast"]
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([0, 262143, 4095], dtype=np.int64)
    assert sess.run(None, {"x": x})[0].tolist() == [0, 262143, 4095]


def test_parity_rules() -> None:
    from vidtok_kit.export.deps import ParityError
    from vidtok_kit.export.parity import TOLERANCES, check_outputs, raise_on_failure

    tol = TOLERANCES["fp32"]
    ref = np.linspace(-1, 1, 100, dtype=np.float32).reshape(1, 1, 100)
    assert check_outputs(["y"], [ref], [ref + 1.9e-4], tol)["ok"]  # 9.5e-5 of the range 2
    report = check_outputs(["y"], [ref], [ref + 2.1e-4], tol)
    assert not report["ok"] and report["y"]["rel"] == pytest.approx(1.05e-4, rel=1e-2)
    with pytest.raises(ParityError, match=r"graph 'g' at the max shape: output 'y': error 0.000105 of the output range exceeds"):
        raise_on_failure("g", "ONNX Runtime", "max", report)
    nan = ref.copy()
    nan[0, 0, 0] = np.nan
    assert not check_outputs(["y"], [ref], [nan], tol)["ok"]
    # an index may flip only where the reference sits on a rounding boundary
    idx = np.array([[[[1, 2], [3, 4]]]], dtype=np.int32)
    flipped = idx.copy()
    flipped[0, 0, 0, 0] = 0
    margin = np.full(idx.shape, 0.3, dtype=np.float32)
    assert not check_outputs(["indices"], [idx], [flipped], tol, margin=margin)["ok"]
    margin[0, 0, 0, 0] = 1e-5
    codes = np.zeros((1, 3, 1, 2, 2), dtype=np.float32)
    moved = codes.copy()
    moved[0, :, 0, 0, 0] = 0.5  # the flipped token's codes differ, the others do not
    assert check_outputs(["latent", "indices"], [codes, idx], [moved, flipped], tol, margin=margin)["ok"]
    moved[0, :, 0, 1, 1] = 0.5
    assert not check_outputs(["latent", "indices"], [codes, idx], [moved, flipped], tol, margin=margin)["ok"]


def test_shapes_and_state_dims() -> None:
    from vidtok_kit.export.deps import ExportError
    from vidtok_kit.export.shapes import parse_range, parse_shapes
    from vidtok_kit.export.streamgraphs import eval_dim

    p = parse_shapes("1x64x64,17x128x128,33x256x256", batch=(1, 2, 4))
    assert p.point("opt").describe() == "2x17x128x128"
    assert parse_shapes("17x64x96").frames == (17, 17, 17)
    assert parse_range("4", what="--batch") == (4, 4, 4)
    with pytest.raises(ExportError):
        parse_range("a,b,c", what="--batch")
    sizes = {"batch": 2, "latent_height": 4, "latent_width": 6, "height": 32}
    assert eval_dim("batch*latent_height*latent_width*4", sizes) == 192
    assert eval_dim("height/8", sizes) == 4
    assert eval_dim(64, sizes) == 64
    with pytest.raises(ExportError, match="not an integer"):
        eval_dim("height/3", sizes)
