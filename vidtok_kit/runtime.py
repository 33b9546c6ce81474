"""The exported-graph step backend: what ``vidtok-kit export`` wrote, on ONNX Runtime or TensorRT.

``vidtok_kit.load(EXPORT_DIR, backend="onnx" | "tensorrt")`` gives the same tokenizer API as a
PyTorch model (:class:`~vidtok_kit.tokenizer.InferenceTokenizer`): the streaming driver runs the
frame rules and this backend only maps each step onto a graph of the export, keeping just the
manifest and one runner per graph. Whole clips run the ``encode`` / ``decode`` graphs; streams run
the step graphs (v1.0: ``encode_step`` / ``decode_step`` with an all-zero first state; v1.1: also
``encode_first`` / ``decode_first`` / ``decode_final``).

Results come back as CPU tensors (the driver moves them to the input's device), in the dtypes
PyTorch would use. The ranges an export was checked at are in its manifest; ONNX Runtime also runs
other valid sizes, a TensorRT engine only its profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.stream.backend import EncodedChunk, TokenizerFacts, Which
from vidtok_kit.stream.budget import StreamPlan

__all__ = ["ExportedBackend"]


class ExportedBackend:
    """Steps of an export directory's graphs (see the module docstring).

    :param backend: ``"onnx"`` (ONNX Runtime) or ``"tensorrt"`` (engines built with ``--trt``).
    :param device: ONNX Runtime provider, ``"cpu"`` (default) or ``"cuda"``; TensorRT always runs on the GPU.
    :param threads: ONNX Runtime intra-op threads (default: its own choice).
    """

    #: the graphs encode a whole window with the regularizer inside: no cross-fading of encoder outputs
    windows = False
    tiles = False

    def __init__(self, directory: str | Path, *, backend: str = "onnx", device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32") -> None:
        from vidtok_kit.export.backends import BACKENDS
        from vidtok_kit.export.deps import ExportError, MissingDependencyError
        from vidtok_kit.export.manifest import read_manifest

        if backend not in BACKENDS:
            raise ExportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.backend, self.device, self.threads = backend, device, threads
        if backend == "tensorrt" and not self.manifest.get("engines"):
            raise MissingDependencyError(f"{self.directory}: the export has no TensorRT engines (export with --trt)")
        if precision != "fp32" and (backend != "onnx" or precision != "fp16"):
            raise ExportError(f"{self.directory}: precision {precision} is not available for {backend} "
                              "(ONNX graphs: fp32, or fp16 copies; a TensorRT engine has the precision it was built with)")
        if precision == "fp16" and not any("fp16" in g for g in self.manifest["graphs"].values()):
            raise ExportError(f"{self.directory}: the export has no fp16 graphs (export with --onnx --precision fp16)")
        self.precision = precision
        m = self.manifest["model"]
        self.facts = TokenizerFacts(
            mode=TimeMode(m["mode"]),
            temporal_factor=m["temporal_factor"],
            spatial_factor=m["spatial_factor"],
            in_channels=m["in_channels"],
            out_channels=m.get("out_channels", m["in_channels"]),
            z_channels=m["z_channels"],
            discrete=m["discrete"],
            codebook_size=m["codebook_size"],
            index_dtype=getattr(torch, m["index_dtype"]) if m["index_dtype"] else None,
        )
        #: latents per streaming step, or None when the export has no step graphs
        self.stream_chunk: int | None = self.manifest["export"].get("stream_chunk") if self.facts.mode.causal else None
        self._runners: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ExportedBackend({str(self.directory)!r}, backend={self.backend!r}, device={self.device!r}, precision={self.precision!r})"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "device": self.device, "precision": self.precision, "export": str(self.directory.resolve())}

    # -- graphs ---------------------------------------------------------------------------------

    def run(self, graph: str, *inputs: Tensor) -> list[Tensor]:
        """Run one exported graph on positional inputs; outputs in the manifest's order."""
        from vidtok_kit.export.backends import open_runner

        if graph not in self._runners:
            self._runners[graph] = open_runner(self.directory, self.manifest, graph, backend=self.backend,
                                               device=self.device, threads=self.threads, precision=self.precision)
        spec = self.manifest["graphs"][graph]
        if len(inputs) != len(spec["inputs"]):
            raise InputError(f"graph {graph!r} takes {len(spec['inputs'])} inputs, got {len(inputs)}")
        got = self._runners[graph].run({s["name"]: t for s, t in zip(spec["inputs"], inputs)})
        return [got[s["name"]] for s in spec["outputs"]]

    def _zero_state(self, graph: str, sizes: dict[str, int]) -> list[Tensor]:
        """v1.0's all-zero first-step state, shaped by the manifest's state dim expressions."""
        from vidtok_kit.export.streamgraphs import eval_dim

        specs = [s for s in self.manifest["graphs"][graph]["inputs"] if s["name"].startswith("past_")]
        return [torch.zeros([eval_dim(d, sizes) for d in s["dims"]], dtype=torch.float32) for s in specs]

    def _need_stream_graphs(self) -> None:
        if self.stream_chunk is None:
            raise InputError(f"{self.directory}: streaming needs a causal model exported with stream graphs; "
                             "encode whole clips, or export with a stream chunk")

    # -- StepBackend ---------------------------------------------------------------------------

    def prepare(self, x: Tensor) -> Tensor:
        return x

    def plan(self, height: int, width: int, which: Which, *, max_memory: int, total: int | None = None) -> StreamPlan:
        from vidtok_kit.stream.engine import WHOLE

        if self.stream_chunk is None:
            return StreamPlan(chunk=WHOLE)
        return StreamPlan(chunk=self.stream_chunk * (self.facts.temporal_factor if which == "encode" else 1))

    def temporal_radius(self, which: Which) -> int:
        raise InputError(f"{self.directory}: exported graphs run non-causal clips only whole")

    def encode_step(
        self, chunk: Tensor, past: Sequence[Tensor] | None, *, final: bool, front_pad: int = 0
    ) -> tuple[EncodedChunk, list[Tensor]]:
        facts = self.facts
        if past is None and final:  # a whole clip: the encode graph pads it in front itself
            outs, state = self.run("encode", chunk[:, :, front_pad:]), []
        else:
            self._need_stream_graphs()
            if past is None and facts.mode is TimeMode.CAUSAL_V1_1:
                outs = self.run("encode_first", chunk)
            else:
                sizes = {"batch": chunk.shape[0], "height": chunk.shape[3], "width": chunk.shape[4]}
                outs = self.run("encode_step", chunk, *(past if past is not None else self._zero_state("encode_step", sizes)))
            state = outs[2 if facts.discrete else 1 :]
        latent = outs[0].to(torch.float32)
        indices = outs[1].to(facts.index_dtype) if facts.discrete else None
        return EncodedChunk(latent, indices), state

    def regularize(self, h: EncodedChunk, *, sample: bool = False) -> EncodedChunk:
        if sample:
            raise InputError(f"{self.directory}: exported graphs encode the deterministic latent; sampling needs the PyTorch model")
        return h

    def decode_step(self, latent: Tensor, past: Sequence[Tensor] | None, *, final: bool) -> tuple[Tensor, list[Tensor]]:
        v11 = self.facts.mode is TimeMode.CAUSAL_V1_1
        if past is None and final:  # a whole clip
            return self.run("decode", latent)[0], []
        self._need_stream_graphs()
        if past is None and v11:
            outs = self.run("decode_first", latent)
        elif past is None:
            sizes = {"batch": latent.shape[0], "latent_height": latent.shape[3], "latent_width": latent.shape[4]}
            outs = self.run("decode_step", latent, *self._zero_state("decode_step", sizes))
        else:
            outs = self.run("decode_final" if v11 and final else "decode_step", latent, *past)
        return outs[0], outs[1:]

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        return self.run("dequantize", indices)[0].to(torch.float32)
