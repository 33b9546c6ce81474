"""ONNX lowering of one graph: export, clean-up, ``onnx.checker`` and ONNX Runtime sessions.

Two exporters: ``"torchscript"`` (``torch.onnx.export(dynamo=False)``, the default: it traces a
tiny VidTok graph in seconds where the dynamo exporter takes tens of seconds, and the parity check
at three sizes catches anything the trace baked in) and ``"dynamo"`` (``torch.export`` based,
needs ``onnxscript``). Both need opset >= 18.

Every file is checked with ``onnx.checker.check_model(full_check=True)`` (which also runs strict
shape inference) and against TensorRT's operator set (:mod:`vidtok_kit.export.trt_ops`).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidtok_kit.export.deps import ExportError, require_onnx, require_onnxruntime
from vidtok_kit.export.trt_ops import check_tensorrt_compatible

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor
    from vidtok_kit.export.graphs import Graph

__all__ = [
    "EXPORTERS",
    "MIN_OPSET",
    "check_onnx",
    "check_options",
    "export_onnx",
    "fold_narrow_casts",
    "ort_session",
    "physical_cores",
    "run_session",
    "session_options",
]

MIN_OPSET = 18
#: exporter -> newest opset it writes (torch.onnx._constants)
EXPORTERS = {"torchscript": 20, "dynamo": 23}
_NARROW_INTS = {"INT8", "UINT8", "INT16", "UINT16"}
_WIDE_INTS = {"INT32", "INT64"}


def check_options(*, opset: int, exporter: str) -> None:
    """One-line :class:`ExportError` for an exporter / opset pair that cannot work (checked before any work)."""
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if not MIN_OPSET <= opset <= EXPORTERS[exporter]:
        raise ExportError(f"--opset {opset}: the {exporter} exporter writes opsets {MIN_OPSET}..{EXPORTERS[exporter]}")


def export_onnx(graph: Graph, path: Path, example: tuple[Tensor, ...], *, opset: int, exporter: str = "torchscript") -> None:
    """Write ``graph`` to ``path`` with its named, dynamic inputs and outputs."""
    import torch

    check_options(opset=opset, exporter=exporter)
    names_in = [s.name for s in graph.inputs]
    names_out = [s.name for s in graph.outputs]
    module = graph.module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints are what parity checks for
        try:
            if exporter == "torchscript":
                axes = {s.name: s.dynamic_axes() for s in (*graph.inputs, *graph.outputs) if s.dynamic_axes()}
                torch.onnx.export(
                    module, example, str(path), dynamo=False, opset_version=opset,
                    input_names=names_in, output_names=names_out, dynamic_axes=axes, do_constant_folding=True,
                )
            else:
                _export_dynamo(graph, module, path, example, opset)
        except ExportError:
            raise
        except Exception as exc:  # an exporter's multi-page report becomes one line; the cause stays chained
            root = exc
            while root.__cause__ is not None:  # torch.onnx wraps the torch.export error that says what is wrong
                root = root.__cause__
            first = next((line for line in str(root).splitlines() if line.strip()), "")
            raise ExportError(f"the {exporter} exporter failed on graph {graph.name!r}: {type(root).__name__}: {first}") from exc
    _name_dims(path, graph)


def _export_dynamo(graph: Graph, module: Any, path: Path, example: tuple[Any, ...], opset: int) -> None:
    import torch
    from torch.export import Dim

    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("--exporter dynamo needs onnxscript: pip install 'vidtok-kit[onnx]'") from None
    specs = [{axis: Dim.AUTO for axis in spec.dynamic_axes()} for spec in graph.inputs]
    params = list(inspect.signature(module.forward).parameters.values())
    fixed = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if len(specs) > fixed and any(p.kind == p.VAR_POSITIONAL for p in params):  # forward(chunk, *past): nested
        shapes: tuple[Any, ...] = (*specs[:fixed], tuple(specs[fixed:]))
    else:
        shapes = tuple(specs)
    program = torch.onnx.export(
        module, example, dynamo=True, opset_version=opset, input_names=[s.name for s in graph.inputs],
        output_names=[s.name for s in graph.outputs], dynamic_shapes=shapes, verbose=False,
    )
    if program is None:
        raise ExportError(f"the dynamo exporter returned no program for graph {graph.name!r}")
    program.save(str(path), external_data=False)
    onnx = require_onnx()
    model = onnx.load(str(path))
    # Its recorded intermediate shapes name symbolic sizes that ONNX Runtime's buffer planner takes as
    # equal; at T = 1 a causal branch is empty and the plan fails. Shapes are re-inferred without them.
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def _name_dims(path: Path, graph: Graph) -> None:
    """Give every dynamic input/output dim our name (the dynamo exporter invents its own)."""
    onnx = require_onnx()
    model = onnx.load(str(path))
    specs = {s.name: s for s in (*graph.inputs, *graph.outputs)}
    for value in (*model.graph.input, *model.graph.output):
        spec = specs.get(value.name)
        if spec is None:
            continue
        for dim, want in zip(value.type.tensor_type.shape.dim, spec.dims):
            if isinstance(want, str):
                dim.dim_param = want
    fold_narrow_casts(model)
    onnx.save(model, str(path))


def fold_narrow_casts(model: Any) -> int:
    """Replace ``Cast(int64 -> int16/uint8) -> Cast(-> int32)`` chains by one cast to int32.

    Quantizers return indices in the smallest dtype that holds the codebook, and the graph
    wrappers widen them to int32; the narrow step in between is exact (the values fit by
    construction) but TensorRT has no int16 tensors. Returns the number of casts removed.
    """
    onnx = require_onnx()
    nodes = model.graph.node
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    removed = []
    for node in nodes:
        if node.op_type != "Cast":
            continue
        to = onnx.TensorProto.DataType.Name(next(a.i for a in node.attribute if a.name == "to"))
        users = consumers.get(node.output[0], [])
        if to not in _NARROW_INTS or node.output[0] in outputs or not users:
            continue
        if not all(
            u.op_type == "Cast" and onnx.TensorProto.DataType.Name(next(a.i for a in u.attribute if a.name == "to")) in _WIDE_INTS
            for u in users
        ):
            continue
        for user in users:
            user.input[0] = node.input[0]
        removed.append(node)
    gone = {node.output[0] for node in removed}
    for node in removed:
        nodes.remove(node)
    stale = [v for v in model.graph.value_info if v.name in gone]  # the dynamo exporter records their types
    for value in stale:
        model.graph.value_info.remove(value)
    return len(removed)


def check_onnx(path: Path, *, graph_name: str) -> list[str]:
    """``onnx.checker`` with full_check, then the TensorRT allow-list; returns the op types used."""
    onnx = require_onnx()
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"graph {graph_name!r} failed onnx.checker: {first}") from None
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    return check_tensorrt_compatible(inferred, graph_name=graph_name)


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once; Linux sysfs, else the CPU count)."""
    import os

    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def session_options(ort: Any, *, device: str = "cpu", threads: int | None = None) -> Any:
    """ONNX Runtime session options chosen for speed on these graphs (measured, see export/README.md).

    All graph optimisations (on the CPU that includes the NCHWc layout for 2-D convolutions and
    conv + activation fusion), one intra-op thread per physical core (hyper-threads slow the
    convolutions down), sequential execution (the graphs are chains: parallel execution only adds
    scheduling), memory pattern planning and the CPU arena on (the default, kept explicit).
    Warnings are not logged: ORT's are about its own optimiser (an fp16 graph on the CPU: "could
    not find a CPU kernel and hence can't constant fold Tile node"), printed in colour amid the
    export's progress lines, and nothing a user can act on; errors still raise.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors and fatal only
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = True
    options.enable_cpu_mem_arena = True
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    return options


def ort_session(path: Path, *, device: str = "cpu", threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU or CUDA provider (CUDA only if the install offers it)."""
    ort = require_onnxruntime()
    options = session_options(ort, device=device, threads=threads)
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ExportError(
                "the CUDA provider of ONNX Runtime is not available (install onnxruntime-gpu instead of onnxruntime, "
                f"and a CUDA runtime); available: {', '.join(ort.get_available_providers())}"
            )
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ExportError(f"unknown ONNX Runtime device {device!r}; choose cpu or cuda")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own classes (InvalidProtobuf, NoSuchFile, Fail): the one boundary
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{path}: not a loadable ONNX graph, damaged or truncated? ({type(exc).__name__}: {first})") from None


def run_session(session: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run an ORT session on named numpy inputs; outputs in the graph's order."""
    return list(session.run(None, inputs))
