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
                threads: int | None = None) -> GraphRunner:
    """The runner of ``graph`` in an export directory for ``backend`` (``onnx`` or ``tensorrt``)."""
    if graph not in manifest["graphs"]:
        raise ExportError(f"{directory}: the export has no {graph!r} graph (graphs: {', '.join(manifest['graphs'])})")
    if backend == "onnx":
        dtypes = {spec["name"]: spec["dtype"] for spec in manifest["graphs"][graph]["inputs"]}
        return OrtRunner(directory / manifest["graphs"][graph]["file"], device=device, threads=threads, dtypes=dtypes)
    if backend == "tensorrt":
        engines = manifest.get("engines") or {}
        if graph not in engines:
            raise MissingDependencyError(
                f"{directory}: no TensorRT engine for graph {graph!r}; export with --trt on a machine with TensorRT and a GPU"
            )
        from vidtok_kit.export.tensorrt import TrtRunner

        return TrtRunner(directory / engines[graph]["file"])
    raise ExportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
