"""Exported graphs carry the fast arithmetic, and the parity plan checks what it claims.

* the AlphaBlender upsampler's whole-tensor low-rate form equals the reference for every mode,
  lead-frame count and frame count, and exports with a dynamic frame count;
* the sub-pixel spatial upsampler exports (functional interleave) with dynamic batch, frames and
  size, inside TensorRT's operator set;
* exports record which modules ran fast, and each parity report the size it ran at;
* the check plan: min and opt in full, max (and the step graphs' opt) at a reduced size, every
  size with ``full=True``; the trace size is none of the checked ones.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from vidtok_kit.model.layers import TimeMode

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _blender(mode: TimeMode, lead: int, channels: int = 4) -> Any:
    from vidtok_kit.plugins.temporal.alphablender import AlphaBlenderConfig, AlphaBlenderUp

    torch.manual_seed(0)
    up = AlphaBlenderUp(AlphaBlenderConfig(), channels=channels, mode=mode, lead_frames=lead).eval()
    with torch.no_grad():
        up.conv.conv.weight.normal_()
        up.conv.conv.bias.normal_()
        up.mix_factor.fill_(0.3)
    return up


@pytest.mark.parametrize("mode", list(TimeMode))
@pytest.mark.parametrize("lead", [1, 2])
def test_tap_image_form_equals_the_reference(mode: TimeMode, lead: int) -> None:
    from vidtok_kit.plugins.temporal.alphablender import blend_up_from_tap_images

    up = _blender(mode, lead)
    conv = up.conv.conv
    for frames in (1, 2, 3, 6):
        x = torch.randn(2, 4, frames, 5, 6)
        with torch.no_grad():
            ref = up(x)
            got = blend_up_from_tap_images(x, conv.weight, conv.bias, torch.sigmoid(up.mix_factor), mode, lead)
        assert got.shape == ref.shape
        assert (got - ref).abs().max() <= 1e-5 * float(ref.abs().max()), (mode, lead, frames)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, axes: dict[int, str]) -> Any:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints (pytest makes them errors)
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=18, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": axes, "y": axes})
    from vidtok_kit.export.onnx import ort_session
    from vidtok_kit.export.trt_ops import tensorrt_problems

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    assert tensorrt_problems(model) == []
    return ort_session(path), model


def _assert_runs_like(session: Any, reference: torch.nn.Module, shapes: tuple[tuple[int, ...], ...]) -> None:
    """The exported graph's output equals ``reference``'s at sizes (and frame counts) other than the traced one."""
    for shape in shapes:
        x = torch.randn(shape)
        with torch.no_grad():
            want = reference(x)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        assert got.shape == want.shape
        assert (got - want).abs().max() <= 1e-5 * float(want.abs().max()), shape


@pytest.mark.parametrize("mode", [TimeMode.CAUSAL_V1_0, TimeMode.CAUSAL_V1_1, TimeMode.NONCAUSAL])
def test_alphablender_fast_form_exports_with_dynamic_frames(mode: TimeMode, tmp_path: Path) -> None:
    fast, ref = _blender(mode, 1), _blender(mode, 1)
    fast.fast_arithmetic = True
    session, model = _export(fast, torch.randn(2, 4, 3, 5, 6), tmp_path / "up.onnx", {0: "b", 2: "t", 3: "h", 4: "w"})
    assert "vidtok_kit" not in {n.domain for n in model.graph.node}  # no custom operator in the graph
    _assert_runs_like(session, ref, ((1, 4, 1, 4, 4), (2, 4, 2, 5, 6), (1, 4, 7, 3, 8)))


def test_subpixel_upsampler_exports_with_dynamic_shapes(tmp_path: Path) -> None:
    from vidtok_kit.plugins.spatial.conv2d import Conv2dSamplerConfig, Conv2dSpatialUp

    torch.manual_seed(1)
    fast = Conv2dSpatialUp(Conv2dSamplerConfig(), channels=3, mode=TimeMode.CAUSAL_V1_0).eval()
    ref = Conv2dSpatialUp(Conv2dSamplerConfig(), channels=3, mode=TimeMode.CAUSAL_V1_0).eval()
    ref.load_state_dict(fast.state_dict())
    fast.fast_arithmetic = True
    session, model = _export(fast, torch.randn(2, 3, 3, 4, 6), tmp_path / "sub.onnx", {0: "b", 2: "t", 3: "h", 4: "w"})
    ops = {n.op_type for n in model.graph.node}
    assert "Resize" not in ops  # the nearest-x2 copy is gone: four 2x2 phase convs on the small image
    assert any(n.op_type == "Conv" and list(n.attribute[0].ints if n.attribute[0].name == "kernel_shape" else []) in ([], [2, 2])
               for n in model.graph.node)
    _assert_runs_like(session, ref, ((1, 3, 1, 2, 2), (3, 3, 5, 7, 5)))


def test_session_options_are_the_fast_ones() -> None:
    from vidtok_kit.export.onnx import physical_cores, session_options

    options = session_options(ort)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.intra_op_num_threads == physical_cores() >= 1
    assert session_options(ort, threads=3).intra_op_num_threads == 3


def test_exports_carry_fast_arithmetic_and_say_where_parity_ran(exported: Any) -> None:
    ex = exported("v1.0-kl")
    arithmetic = ex.manifest["export"]["arithmetic"]
    assert {"AlphaBlenderUp", "Conv2dSpatialUp"} <= set(arithmetic["fast"])
    assert "TimeConv" in arithmetic["reference"]  # a channels-last layout trick: nothing to export
    assert ex.manifest["export"]["full_parity"] is False
    for name, graph in ex.manifest["graphs"].items():
        reports = graph["parity"]["onnxruntime"]
        assert reports["min"]["reduced"] is False
        assert reports["opt"]["reduced"] is (graph.get("notes", {}).get("stream_chunk_latents") is not None), name
        assert reports["max"]["reduced"] is True, name
        assert reports["max"]["checked_at"] != "x".join(map(str, graph["inputs"][0]["max"][:1] + graph["inputs"][0]["max"][2:]))
    # the recorded ranges are the profile's, not the reduced run's
    assert ex.manifest["graphs"]["encode"]["inputs"][0]["max"] == [2, 3, 9, 16, 24]
    assert ex.manifest["graphs"]["decode"]["outputs"][0]["max"][3:] == [16, 24]


def test_check_plan() -> None:
    from vidtok_kit.export.checkplan import check_plan, trace_point
    from vidtok_kit.export.graphs import Graph
    from vidtok_kit.export.shapes import ShapeProfile

    profile = ShapeProfile(batch=(1, 1, 2), frames=(1, 17, 37), height=(8, 128, 128), width=(8, 128, 128))
    clip = Graph("encode", torch.nn.Identity(), [], [], lambda p, g: (), "")
    step = Graph("encode_step", torch.nn.Identity(), [], [], lambda p, g: (), "",
                 chunk_latents={"min": 1, "opt": 4, "max": 4})
    plan = {c.which: c for c in check_plan(clip, profile, 8)}
    assert plan["min"].point == (1, 1, 8, 8) and not plan["min"].reduced
    assert plan["opt"].point == (1, 17, 128, 128) and not plan["opt"].reduced
    assert plan["max"].point == (2, 37, 24, 16) and plan["max"].reduced
    steps = {c.which: c for c in check_plan(step, profile, 8)}
    assert steps["opt"].point == (1, 4, 24, 16) and steps["opt"].reduced
    assert all(not c.reduced for c in check_plan(clip, profile, 8, full=True))
    assert check_plan(clip, profile, 8, full=True)[-1].point == (2, 37, 128, 128)
    traced = trace_point(clip, profile, 8)
    assert traced.batch == 2 and (traced.height, traced.width) == (16, 24)
    assert all((c.point.height, c.point.width) != (16, 24) for g in (clip, step) for c in check_plan(g, profile, 8))
    fixed = ShapeProfile(batch=(1, 1, 1), frames=(9, 9, 9), height=(64, 64, 64), width=(64, 64, 64))
    assert [c.which for c in check_plan(clip, fixed, 8)] == ["min"]  # one size: checked once, in full


def _res2plus1d(mode: TimeMode, c_in: int, c_out: int) -> Any:
    from vidtok_kit.plugins.fusion.res2plus1d import Res2Plus1dBlock, Res2Plus1dConfig

    torch.manual_seed(2)
    block = Res2Plus1dBlock(Res2Plus1dConfig(), in_channels=c_in, out_channels=c_out, mode=mode).eval()
    with torch.no_grad():
        for p in block.parameters():  # the temporal conv2 starts at zero: an identity would hide its form
            p.normal_(0, 0.3)
    return block


@pytest.mark.parametrize("mode", list(TimeMode))
def test_channels_last_block_form_equals_the_block(mode: TimeMode) -> None:
    from vidtok_kit.model.layers import from_channels_last, to_channels_last

    for c_in, c_out in ((4, 4), (4, 8)):  # with and without the 1x1 skip conv
        block = _res2plus1d(mode, c_in, c_out)
        for frames in (1, 3, 6):
            x = torch.randn(2, c_in, frames, 5, 6)
            with torch.no_grad():
                want = block(x)
                got = from_channels_last(block.temporal.forward_channels_last(block.spatial.forward_channels_last(to_channels_last(x))))
            assert got.shape == want.shape
            assert (got - want).abs().max() <= 1e-5 * float(want.abs().max()), (mode, c_in, c_out, frames)


@pytest.mark.parametrize("mode", [TimeMode.CAUSAL_V1_1, TimeMode.NONCAUSAL])
def test_exported_block_runs_channels_last_without_transposes(mode: TimeMode, tmp_path: Path) -> None:
    """A whole-clip export of a resolution-level block runs channels last: after ONNX Runtime's
    optimisation only the two transposes at the block's ends are left (the norms need none, the
    ones next to convs are folded into their reorders, the pair between the halves cancels); and
    ONNX Runtime matches the module at other sizes and frame counts."""
    from vidtok_kit.export.onnx import session_options

    block = _res2plus1d(mode, 16, 32)
    session, model = _export(block, torch.randn(2, 16, 3, 5, 6), tmp_path / "block.onnx", {0: "b", 2: "t", 3: "h", 4: "w"})
    assert sum(n.op_type == "LayerNormalization" for n in model.graph.node) == 4
    options = session_options(ort, threads=1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ort.InferenceSession(str(tmp_path / "block.onnx"), sess_options=options, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    if "ReorderInput" not in optimized:
        pytest.skip("this CPU gets no NCHWc convolutions from ONNX Runtime (nothing to fold transposes into)")
    assert optimized.count("Transpose") == 2, optimized
    _assert_runs_like(session, block, ((1, 16, 1, 4, 4), (2, 16, 7, 3, 8)))
