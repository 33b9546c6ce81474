"""Run what ``vidtok-kit export`` produced: the tokenizer API on ONNX Runtime or TensorRT.

``load(DIR)`` returns an :class:`ExportedTokenizer` with the same ``encode`` / ``decode`` /
``decode_indices`` as the PyTorch :class:`~vidtok_kit.model.autoencoder.VideoTokenizer` (encode
returns a :class:`~vidtok_kit.interfaces.RegOut` with ``.latent`` and ``.indices``), plus
``encode_stream`` / ``decode_stream`` that push a causal model's videos of any length through the
exported step graphs in bounded memory, with the frame bookkeeping of
:mod:`vidtok_kit.stream.engine` (front padding, tail padding, v1.1's first and final steps).

Results come back on the device of the input tensor, in the dtypes PyTorch would use (float32
latents and frames, indices in the model's index dtype). The ranges an export was checked at are
in its manifest; ONNX Runtime also runs other valid sizes, a TensorRT engine only its profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.interfaces import RegOut
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.stream.engine import EncodedChunk

__all__ = ["ExportedStreamingDecoder", "ExportedStreamingEncoder", "ExportedTokenizer", "load"]

V11_MIN_FIRST_LATENTS = 3  # mirrors vidtok_kit.stream.steps (kept here so the runtime needs no model code)


def load(directory: str | Path, *, backend: str = "onnx", device: str | None = None, threads: int | None = None) -> ExportedTokenizer:
    """Open an export directory.

    :param backend: ``"onnx"`` (ONNX Runtime) or ``"tensorrt"`` (engines built with ``--trt``).
    :param device: ONNX Runtime provider, ``"cpu"`` (default) or ``"cuda"``; TensorRT always runs on the GPU.
    :param threads: ONNX Runtime intra-op threads (default: its own choice).
    """
    return ExportedTokenizer(directory, backend=backend, device=device or "cpu", threads=threads)


class ExportedTokenizer:
    """The tokenizer API backed by exported graphs (see :func:`load`)."""

    def __init__(self, directory: str | Path, *, backend: str = "onnx", device: str = "cpu", threads: int | None = None) -> None:
        from vidtok_kit.export.backends import BACKENDS
        from vidtok_kit.export.deps import ExportError
        from vidtok_kit.export.manifest import read_manifest

        if backend not in BACKENDS:
            raise ExportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.backend, self.device, self.threads = backend, device, threads
        if backend == "tensorrt" and not self.manifest.get("engines"):
            from vidtok_kit.export.deps import MissingDependencyError

            raise MissingDependencyError(f"{self.directory}: the export has no TensorRT engines (export with --trt)")
        m = self.manifest["model"]
        self.mode = TimeMode(m["mode"])
        self.temporal_factor: int = m["temporal_factor"]
        self.spatial_factor: int = m["spatial_factor"]
        self.discrete: bool = m["discrete"]
        self.in_channels: int = m["in_channels"]
        self.z_channels: int = m["z_channels"]
        self.codebook_size: int | None = m["codebook_size"]
        self.index_dtype = getattr(torch, m["index_dtype"]) if m["index_dtype"] else None
        self.stream_chunk: int | None = self.manifest["export"].get("stream_chunk")
        self._runners: dict[str, Any] = {}

    @property
    def regularizer(self) -> Any:
        """The regularizer facts callers read from ``model.regularizer``: ``codebook_size``, ``index_dtype``."""
        from types import SimpleNamespace

        return SimpleNamespace(codebook_size=self.codebook_size, index_dtype=self.index_dtype, discrete=self.discrete)

    def provenance(self) -> dict[str, Any]:
        """What a token file records about the model, as ``vidtok_kit.tokenize.pipeline.load_model`` gives it."""
        from vidtok_kit import __version__

        ckpt = self.manifest.get("checkpoint") or {}
        return {
            "recipe": self.manifest["recipe"]["toml"],
            "checkpoint": ckpt.get("path", ""),
            "checkpoint_sha256": ckpt.get("sha256", ""),
            "random_init_seed": None,
            "vidtok_kit_version": __version__,
            "export": str(self.directory),
        }

    def __repr__(self) -> str:
        return f"ExportedTokenizer({str(self.directory)!r}, backend={self.backend!r}, mode={self.mode.value!r})"

    # -- graphs ---------------------------------------------------------------------------------

    def run(self, graph: str, *inputs: Tensor) -> list[Tensor]:
        """Run one exported graph on positional inputs; outputs in the manifest's order."""
        from vidtok_kit.export.backends import open_runner

        if graph not in self._runners:
            self._runners[graph] = open_runner(self.directory, self.manifest, graph, backend=self.backend,
                                               device=self.device, threads=self.threads)
        spec = self.manifest["graphs"][graph]
        if len(inputs) != len(spec["inputs"]):
            raise InputError(f"graph {graph!r} takes {len(spec['inputs'])} inputs, got {len(inputs)}")
        got = self._runners[graph].run({s["name"]: t for s, t in zip(spec["inputs"], inputs)})
        return [got[s["name"]] for s in spec["outputs"]]

    # -- frame rules (same as VideoTokenizer) ---------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        return frame_rules.latent_frames(frames, tdf=self.temporal_factor, mode=self.mode)

    def output_frames(self, latent_frames: int) -> int:
        return frame_rules.output_frames(latent_frames, tdf=self.temporal_factor, mode=self.mode)

    def check_video(self, x: Tensor) -> None:
        """One-line :class:`InputError` for a video the model cannot take (the PyTorch rules)."""
        if not isinstance(x, Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"expected a video tensor of shape (B, {self.in_channels}, T, H, W), got {shape}")
        if x.shape[1] != self.in_channels:
            raise InputError(f"expected {self.in_channels} channels in dim 1 of (B, C, T, H, W), got {x.shape[1]}")
        sf = self.spatial_factor
        if x.shape[3] % sf or x.shape[4] % sf or x.shape[3] == 0 or x.shape[4] == 0:
            raise InputError(f"height and width must be positive multiples of {sf} (the spatial factor), got {x.shape[3]}x{x.shape[4]}")
        if not frame_rules.valid_frames(x.shape[2], tdf=self.temporal_factor, mode=self.mode):
            rule = frame_rules.allowed_frames(tdf=self.temporal_factor, mode=self.mode)
            raise InputError(f"this {self.mode.value} model takes {rule}, got {x.shape[2]}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point video in [-1, 1], got dtype {x.dtype}")

    # -- whole clips ----------------------------------------------------------------------------

    def encode(self, x: Tensor) -> RegOut:
        """(B, C, T, H, W) in [-1, 1] -> RegOut with ``.latent`` (B, z, T', H', W') and ``.indices``."""
        self.check_video(x)
        outs = self.run("encode", x)
        latent = outs[0].to(device=x.device, dtype=torch.float32)
        indices = outs[1].to(device=x.device, dtype=self.index_dtype) if self.discrete else None
        return RegOut(latent=latent, loss=latent.new_zeros(()), indices=indices, logs={})

    def decode(self, latent: Tensor, *, num_frames: int | None = None) -> Tensor:
        """(B, z, T', H', W') -> video; T = ``output_frames(T')`` unless ``num_frames`` (last frames kept)."""
        if not isinstance(latent, Tensor) or latent.ndim != 5 or latent.shape[1] != self.z_channels:
            shape = tuple(latent.shape) if isinstance(latent, Tensor) else type(latent).__name__
            raise InputError(f"expected a latent of shape (B, {self.z_channels}, T', H', W'), got {shape}")
        return self._crop(self.run("decode", latent)[0], latent.shape[2], num_frames).to(latent.device)

    def decode_indices(self, indices: Tensor, *, num_frames: int | None = None) -> Tensor:
        """Integer tokens (B, T', H', W') of a discrete model -> video."""
        if not self.discrete:
            raise InputError("this model is continuous: decode latents instead")
        if not isinstance(indices, Tensor) or indices.ndim != 4 or indices.is_floating_point():
            shape = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
            raise InputError(f"expected integer indices of shape (B, T', H', W'), got {shape}")
        return self._crop(self.run("decode_indices", indices)[0], indices.shape[1], num_frames).to(indices.device)

    def _crop(self, full: Tensor, latents: int, num_frames: int | None) -> Tensor:
        keep = frame_rules.frames_to_keep(full.shape[2], latents, num_frames, default=self.output_frames(latents))
        return full[:, :, full.shape[2] - keep :].to(torch.float32)

    # -- streaming (causal models) --------------------------------------------------------------

    def encode_stream(self, chunks: Iterable[Tensor], *, num_frames: int | None = None,
                      chunk_frames: int | None = None) -> Iterator[EncodedChunk]:
        """Frame chunks (B, C, t, H, W) of one video, any sizes -> latent chunks (``.latent``, ``.indices``).

        :param num_frames: total frames, needed by a v1.1 model whose clip is not ``1 + k * tdf`` long.
        :param chunk_frames: frames per step (a multiple of the temporal factor); default: the export's.
        """
        return self.streaming_encoder(num_frames=num_frames, chunk_frames=chunk_frames)(chunks)

    def decode_stream(self, latents: Iterable[Tensor], *, front_pad: int | None = None, num_frames: int | None = None,
                      chunk_latents: int | None = None) -> Iterator[Tensor]:
        """Latent chunks (B, z, n, h, w) or token chunks (B, n, h, w) -> float32 frame chunks.

        :param front_pad: leading decoded frames to drop (default ``tdf - 1``, as :meth:`decode`).
        :param num_frames: frames to keep after ``front_pad``; None keeps all.
        :param chunk_latents: latents per step; default: the export's.
        """
        return self.streaming_decoder(front_pad=front_pad, num_frames=num_frames, chunk_latents=chunk_latents)(latents)

    def streaming_encoder(self, *, num_frames: int | None = None, chunk_frames: int | None = None) -> ExportedStreamingEncoder:
        """Like :class:`vidtok_kit.stream.StreamingEncoder`: call it on chunks; ``frames``/``front_pad``/``tail_pad`` after."""
        return ExportedStreamingEncoder(self, num_frames=num_frames, chunk_frames=chunk_frames)

    def streaming_decoder(self, *, front_pad: int | None = None, num_frames: int | None = None,
                          chunk_latents: int | None = None) -> ExportedStreamingDecoder:
        """Like :class:`vidtok_kit.stream.StreamingDecoder`: call it on latent or token chunks; ``frames`` after."""
        return ExportedStreamingDecoder(self, front_pad=front_pad, num_frames=num_frames, chunk_latents=chunk_latents)

    def zero_state(self, graph: str, sizes: dict[str, int], device: Any = "cpu") -> list[Tensor]:
        """v1.0's all-zero first-step state of a step graph, shaped by the manifest's state dim expressions.

        :param sizes: ``batch`` plus ``height``/``width`` (encoder) or ``latent_height``/``latent_width``.
        """
        from vidtok_kit.export.streamgraphs import eval_dim

        specs = [s for s in self.manifest["graphs"][graph]["inputs"] if s["name"].startswith("past_")]
        return [torch.zeros([eval_dim(d, sizes) for d in s["dims"]], dtype=torch.float32, device=device) for s in specs]

    def check_stream(self) -> None:
        if not self.mode.causal or self.stream_chunk is None:
            raise InputError("streaming through exported graphs needs a causal model exported with stream graphs")


class ExportedStreamingEncoder:
    """Streams one video through the encoder step graphs with the engine's frame bookkeeping.

    The first step is frame 0's group (``tdf - front_pad`` frames plus the front padding), then
    steps of ``chunk_frames``; a short last step is tail-padded with its last frame.
    """

    def __init__(self, tok: ExportedTokenizer, *, num_frames: int | None, chunk_frames: int | None) -> None:
        tok.check_stream()
        tdf = tok.temporal_factor
        self.tok, self.num_frames = tok, num_frames
        self.chunk = chunk_frames or tok.stream_chunk * tdf  # type: ignore[operator]
        if self.chunk % tdf:
            raise InputError(f"chunk_frames must be a multiple of the temporal factor {tdf}, got {self.chunk}")
        if tok.mode is TimeMode.CAUSAL_V1_1 and num_frames is not None:
            self.front_pad = frame_rules.front_padding(num_frames, tdf=tdf, mode=tok.mode)
        else:
            self.front_pad = tdf - 1
        self.tail_pad = 0
        self.frames = 0
        self.latent_frames = 0

    def __call__(self, chunks: Iterable[Tensor]) -> Iterator[EncodedChunk]:
        from vidtok_kit.stream.buffers import FrameQueue

        tok, tdf = self.tok, self.tok.temporal_factor
        queue = FrameQueue(chunks, what="frames")
        state: list[Tensor] | None = None
        want = tdf - self.front_pad
        while True:
            queue.fill(want)
            x = queue.take(want)
            if x is None:
                break
            if state is None:
                if self.front_pad:
                    x = torch.cat([x[:, :, :1].expand(-1, -1, self.front_pad, -1, -1), x], dim=2)
                tok.check_video(x[:, :, :1])
            if x.shape[2] % tdf:
                self.tail_pad = tdf - x.shape[2] % tdf
                x = torch.cat([x, x[:, :, -1:].expand(-1, -1, self.tail_pad, -1, -1)], dim=2)
            if state is None and tok.mode is TimeMode.CAUSAL_V1_1:
                outs = tok.run("encode_first", x)
            else:
                sizes = {"batch": x.shape[0], "height": x.shape[3], "width": x.shape[4]}
                outs = tok.run("encode_step", x, *(state if state is not None else tok.zero_state("encode_step", sizes)))
            n_out = 2 if tok.discrete else 1
            state = outs[n_out:]
            latent = outs[0].to(device=x.device, dtype=torch.float32)
            indices = outs[1].to(device=x.device, dtype=tok.index_dtype) if tok.discrete else None
            self.latent_frames += latent.shape[2]
            yield EncodedChunk(latent, indices)
            want = self.chunk
        self.frames = queue.pulled
        if self.num_frames is not None and self.frames != self.num_frames:
            raise InputError(f"the stream had {self.frames} frames but num_frames={self.num_frames} was given")


class ExportedStreamingDecoder:
    """Streams latents (or tokens) through the decoder step graphs; v1.1 uses its first and final graphs."""

    def __init__(self, tok: ExportedTokenizer, *, front_pad: int | None, num_frames: int | None,
                 chunk_latents: int | None) -> None:
        tok.check_stream()
        self.tok, self.num_frames = tok, num_frames
        self.chunk: int = chunk_latents or tok.stream_chunk  # type: ignore[assignment]
        self.front_pad = tok.temporal_factor - 1 if front_pad is None else front_pad
        self.frames = 0

    def _latents(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        tok = self.tok
        for z in chunks:
            if isinstance(z, Tensor) and z.ndim == 4 and not z.is_floating_point():
                if not tok.discrete:
                    raise InputError("integer tokens given to a continuous model: decode latents instead")
                z = tok.run("dequantize", z)[0].to(z.device)
            elif not isinstance(z, Tensor) or z.ndim != 5 or z.shape[1] != tok.z_channels:
                shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
                raise InputError(f"expected latents of shape (B, {tok.z_channels}, n, h, w), got {shape}")
            yield z

    def __call__(self, latents: Iterable[Tensor]) -> Iterator[Tensor]:
        from vidtok_kit.stream.buffers import FrameQueue

        tok = self.tok
        v11 = tok.mode is TimeMode.CAUSAL_V1_1
        queue = FrameQueue(self._latents(latents), what="latents")
        state: list[Tensor] | None = None
        position = 0
        want = max(self.chunk, V11_MIN_FIRST_LATENTS) if v11 else self.chunk
        while True:
            queue.fill(want + 1)
            z = queue.take(want)
            if z is None:
                return
            final = queue.count == 0
            if state is None and v11:
                outs = tok.run("decode" if final else "decode_first", z)  # one whole chunk = the whole clip
            elif state is None:
                sizes = {"batch": z.shape[0], "latent_height": z.shape[3], "latent_width": z.shape[4]}
                outs = tok.run("decode_step", z, *tok.zero_state("decode_step", sizes))
            else:
                outs = tok.run("decode_final" if v11 and final else "decode_step", z, *state)
            frames, state = outs[0], outs[1:]
            lo = max(0, self.front_pad - position)
            hi = frames.shape[2] if self.num_frames is None else min(frames.shape[2], self.front_pad + self.num_frames - position)
            position += frames.shape[2]
            if hi > lo:
                self.frames += hi - lo
                yield frames[:, :, lo:hi].to(device=z.device, dtype=torch.float32)
            if final:
                return
            want = self.chunk
