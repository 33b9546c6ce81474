"""Static check that an ONNX graph uses only what TensorRT 10's ONNX parser accepts.

Run on every export, with or without TensorRT installed, so an export is never handed over that
TensorRT would reject for an unsupported operator or tensor type. The allow-list is the
"Supported ONNX Operators" matrix of onnx-tensorrt (``docs/operators.md``, TensorRT 10.x, opsets
9-20 for 10.0) restricted to operators present since TensorRT 10.0 (later additions such as
``Attention``, ``RMSNormalization``, ``RotaryEmbedding`` and ``TensorScatter`` are left out, so a
graph that passes also parses on 10.0). Restrictions the matrix states and that a static look can
decide are checked too; everything else is left to the parser at engine-build time.
"""

from __future__ import annotations

from typing import Any

from vidtok_kit.export.deps import ExportError

__all__ = ["TRT_MAX_OPSET", "TRT_ONNX_OPS", "TRT_TENSOR_TYPES", "tensorrt_problems", "check_tensorrt_compatible"]

#: the newest default-domain opset TensorRT 10.0 parses
TRT_MAX_OPSET = 20

TRT_ONNX_OPS: frozenset[str] = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose
    Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp
    Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
    GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
    HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
    InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
    Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min
    Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
    QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal
    ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
    ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh
    Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
    Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze STFT Sub Sum Tan Tanh
    ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """.split()
)

#: ONNX TensorProto data types TensorRT handles as ordinary tensors (UINT8 only at the boundary)
TRT_TENSOR_TYPES: frozenset[str] = frozenset({"FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "BOOL"})
_BOUNDARY_ONLY = frozenset({"UINT8"})

_REDUCE_WITH_AXES_INPUT = frozenset(op for op in TRT_ONNX_OPS if op.startswith("Reduce"))
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _type_name(elem_type: int) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(elem_type)


def tensorrt_problems(model: Any) -> list[str]:
    """Everything in ``model`` (an ``onnx.ModelProto``, shapes inferred) TensorRT 10 would reject."""
    graph = model.graph
    problems: list[str] = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > TRT_MAX_OPSET:
            problems.append(f"opset {imp.version} (TensorRT 10.0 parses up to opset {TRT_MAX_OPSET})")
        elif imp.domain not in ("", "ai.onnx"):
            problems.append(f"custom operator domain {imp.domain!r}")
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    unsupported: dict[str, list[str]] = {}
    for node in graph.node:
        where = node.name or node.op_type
        if node.domain not in ("", "ai.onnx") or node.op_type not in TRT_ONNX_OPS:
            unsupported.setdefault(node.op_type, []).append(where)
            continue
        if node.op_type in _REDUCE_WITH_AXES_INPUT and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            problems.append(f"{node.op_type} {where}: axes must be a constant")
        if node.op_type in ("AveragePool", "MaxPool", "LpPool"):
            kernel = _attr(node, "kernel_shape", [])
            dilations = _attr(node, "dilations", [])
            if len(kernel) not in (2, 3) and node.op_type != "LpPool":
                problems.append(f"{node.op_type} {where}: only 2-D or 3-D pooling, got a {len(kernel)}-D kernel")
            if dilations and any(d != 1 for d in dilations):
                problems.append(f"{node.op_type} {where}: dilations must be all ones")
        if node.op_type == "Resize":
            mode = _attr(node, "mode", b"nearest")
            transform = _attr(node, "coordinate_transformation_mode", b"half_pixel")
            mode, transform = (v.decode() if isinstance(v, bytes) else v for v in (mode, transform))
            if mode not in _RESIZE_MODES or transform not in _RESIZE_TRANSFORMS or _attr(node, "antialias", 0):
                problems.append(f"Resize {where}: mode {mode!r} / {transform!r} is not supported")
        if node.op_type == "Cast":
            to = _type_name(_attr(node, "to"))
            if to not in TRT_TENSOR_TYPES:
                problems.append(f"Cast {where}: to {to}")
    for op, nodes in sorted(unsupported.items()):
        shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        problems.append(f"operator {op} ({shown})")
    boundary = {v.name for v in (*graph.input, *graph.output)}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if not value.type.HasField("tensor_type"):
            continue
        name = _type_name(value.type.tensor_type.elem_type)
        if name in TRT_TENSOR_TYPES or (name in _BOUNDARY_ONLY and value.name in boundary):
            continue
        problems.append(f"tensor {value.name!r} of type {name}")
    for init in graph.initializer:
        name = _type_name(init.data_type)
        if name not in TRT_TENSOR_TYPES:
            problems.append(f"initializer {init.name!r} of type {name}")
    return problems


def check_tensorrt_compatible(model: Any, *, graph_name: str) -> list[str]:
    """Raise :class:`ExportError` (one line) if TensorRT 10 would reject ``model``; return the ops used."""
    problems = tensorrt_problems(model)
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise ExportError(
            f"graph {graph_name!r} would be rejected by TensorRT 10: " + "; ".join(problems[:4]) + more
        )
    return sorted({node.op_type for node in model.graph.node})
