"""TensorRT engines built from the exported ONNX files, and a runner for them.

Engines are built with the ``tensorrt`` Python API: one optimisation profile per graph from the
min / opt / max input shapes of the export, fp16 / bf16 builder flags for ``--precision``, a
workspace limit and a timing cache (reused across graphs and runs). The regularizer's layers
(quantization, KL head) are pinned to fp32, as PyTorch runs them outside autocast, so reduced
precision never moves a rounding decision by itself. Each engine then runs the same parity check
as ONNX Runtime, at the tolerance of its precision.

``import tensorrt`` happens inside functions only; buffers are PyTorch CUDA tensors, so no pycuda.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidtok_kit.export.deps import ExportError, require_tensorrt
from vidtok_kit.export.parity import Tolerance, check_outputs, raise_on_failure, rounding_margin
from vidtok_kit.export.shapes import POINTS

__all__ = ["TrtRunner", "build_and_check", "build_engine"]

#: ONNX node-name prefix of the layers kept in fp32 under --precision fp16/bf16
FP32_SCOPES = ("/regularizer/",)


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.WARNING)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: dict[str, dict[str, list[int]]],
    *,
    precision: str = "fp32",
    workspace_gb: float = 4.0,
    timing_cache: Path | None = None,
) -> dict[str, Any]:
    """Parse ``onnx_path``, build a serialized engine with one profile, write it to ``engine_path``.

    :param profile: input name -> {"min": shape, "opt": shape, "max": shape}.
    :return: manifest fields of the engine.
    """
    trt = require_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path.name}: {errors}".splitlines()[0])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision != "fp32":
        flag = {"fp16": "FP16", "bf16": "BF16"}[precision]
        if not hasattr(trt.BuilderFlag, flag):
            raise ExportError(f"this TensorRT ({trt.__version__}) has no {flag} builder flag")
        config.set_flag(getattr(trt.BuilderFlag, flag))
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name.startswith(FP32_SCOPES) and all(
                layer.get_output(j).dtype in (trt.float32, trt.float16, trt.bfloat16) for j in range(layer.num_outputs)
            ):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    opt_profile = builder.create_optimization_profile()
    for name, shapes in profile.items():
        opt_profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path.name} (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    import torch

    return {
        "file": engine_path.name,
        "precision": precision,
        "tensorrt": trt.__version__,
        "device": torch.cuda.get_device_name(),
        "workspace_bytes": int(workspace_gb * (1 << 30)),
    }


class TrtRunner:
    """Runs one engine on PyTorch CUDA tensors: ``runner.run({name: tensor}) -> {name: tensor}``."""

    def __init__(self, engine_path: Path) -> None:
        import torch

        trt = require_tensorrt()
        self._trt, self._torch = trt, torch
        runtime = trt.Runtime(_logger(trt))
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ExportError(f"{engine_path}: TensorRT could not load this engine (built by another TensorRT or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def _torch_dtype(self, name: str) -> Any:
        trt, torch = self._trt, self._torch
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16,
                 trt.int32: torch.int32, trt.int64: torch.int64, trt.bool: torch.bool, trt.uint8: torch.uint8}
        return table[self.engine.get_tensor_dtype(name)]

    def run(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Named inputs (any device/dtype; converted) -> named CUDA outputs."""
        torch = self._torch
        keep = []
        for name in self.inputs:
            t = feed[name].to(device="cuda", dtype=self._torch_dtype(name)).contiguous()
            keep.append(t)
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ExportError(f"input {name!r} of shape {tuple(t.shape)} is outside the engine's profile")
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self._torch_dtype(name), device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outs[name] = out
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ExportError("TensorRT execution failed")
        stream.synchronize()
        return outs


def build_and_check(
    graphs: Sequence[Any],
    entries: dict[str, Any],
    directory: Path,
    *,
    precision: str,
    workspace_gb: float,
    timing_cache: Path | None,
    inputs_at: Callable[..., tuple[Any, ...]],
    graph_point: Callable[..., Any],
    reference: Callable[..., list[Any]],
    profile_points: dict[str, Any],
    seed: int,
    tolerance: Tolerance,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Build an engine per graph and check it against PyTorch; records go into ``entries``."""
    cache = timing_cache or directory / "timing.cache"
    engines: dict[str, Any] = {}
    for graph in graphs:
        entry = entries[graph.name]
        profile = {spec["name"]: {p: spec[p] for p in POINTS} for spec in entry["inputs"]}
        engine_path = directory / f"{graph.name}.{precision}.engine"
        log(f"[{graph.name}] building TensorRT engine ({precision})")
        engines[graph.name] = build_engine(directory / entry["file"], engine_path, profile, precision=precision,
                                           workspace_gb=workspace_gb, timing_cache=cache)
        runner = TrtRunner(engine_path)
        reports: dict[str, Any] = {}
        seen: dict[Any, str] = {}
        for i, which in enumerate(POINTS):
            point = graph_point(graph, profile_points[which], which)
            if point in seen:
                reports[which] = reports[seen[point]]
                continue
            seen[point] = which
            inputs = inputs_at(graph, point, seed + 1 + i)
            refs = [r.numpy() for r in reference(graph, inputs)]
            got = runner.run(dict(zip((s.name for s in graph.inputs), inputs)))
            outs = [got[s.name].cpu().numpy() for s in graph.outputs]
            report = check_outputs([s.name for s in graph.outputs], refs, outs, tolerance,
                                   margin=rounding_margin(graph, inputs))
            raise_on_failure(graph.name, f"TensorRT ({precision})", which, report)
            reports[which] = report
        entry["parity"]["tensorrt"] = reports
        log(f"[{graph.name}] TensorRT parity ok")
    for eng in engines.values():
        eng["timing_cache"] = str(cache) if timing_cache is not None else cache.name
    return engines
