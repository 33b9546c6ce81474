"""Runners for exported graphs: ONNX Runtime (CPU or CUDA provider) or a TensorRT engine.

Both take and return PyTorch tensors by name, so :mod:`vidtok_kit.runtime` stays backend-agnostic.
Sessions and engines are opened lazily, one per graph, on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from vidtok_kit.export.deps import ExportError, MissingDependencyError

__all__ = ["BACKENDS", "GraphRunner", "OrtRunner", "open_runner"]

BACKENDS = ("onnx", "tensorrt")

_NUMPY_DTYPES = {"float32": "float32", "int32": "int32"}


class GraphRunner(Protocol):
    """What the runtime needs from a backend."""

    def run(self, feed: dict[str, Any]) -> dict[str, Any]: ...


class OrtRunner:
    """One ONNX Runtime session; inputs are converted to the graph's dtypes, outputs come back as CPU tensors."""

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None, dtypes: dict[str, str]) -> None:
        from vidtok_kit.export.onnx import ort_session

        self.session = ort_session(path, device=device, threads=threads)
        self.dtypes = dtypes
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import torch

        arrays = {
            name: np.ascontiguousarray(t.detach().to("cpu").numpy().astype(_NUMPY_DTYPES[self.dtypes[name]], copy=False))
            for name, t in feed.items()
        }
        outs = self.session.run(None, arrays)
        return {name: torch.from_numpy(np.asarray(out)) for name, out in zip(self.outputs, outs)}


def open_runner(directory: Path, manifest: dict[str, Any], graph: str, *, backend: str, device: str,
                threads: int | None = None, precision: str = "fp32") -> GraphRunner:
    """The runner of ``graph`` in an export directory for ``backend`` (``onnx`` or ``tensorrt``).

    ``precision="fp16"`` (ONNX): the graph's fp16 copy where the export wrote one (the graphs that
    run the encoder or decoder); the others, fp32 by design (stream steps, ``dequantize``), as they are.
    """
    if graph not in manifest["graphs"]:
        raise ExportError(f"{directory}: the export has no {graph!r} graph (graphs: {', '.join(manifest['graphs'])})")
    if backend == "onnx":
        entry = manifest["graphs"][graph]
        dtypes = {spec["name"]: spec["dtype"] for spec in entry["inputs"]}
        file = entry["fp16"]["file"] if precision == "fp16" and "fp16" in entry else entry["file"]
        return OrtRunner(directory / file, device=device, threads=threads, dtypes=dtypes)
    if backend == "tensorrt":
        engines = manifest.get("engines") or {}
        if graph not in engines:
            raise MissingDependencyError(
                f"{directory}: no TensorRT engine for graph {graph!r}; export with --trt on a machine with TensorRT and a GPU"
            )
        from vidtok_kit.export.tensorrt import TrtRunner

        return TrtRunner(directory / engines[graph]["file"])
    raise ExportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
