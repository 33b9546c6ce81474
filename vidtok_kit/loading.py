"""``vidtok_kit.load``: one way from whatever a user has to a ready tokenizer.

A user may hold a recipe (a path or a shipped name, plus a checkpoint), one of our checkpoints
(a ``.safetensors`` file or its ``.json`` sidecar), a training run or step directory, a
``save_pretrained`` directory, an original VidTok checkpoint, an export directory, or a
:class:`~vidtok_kit.model.autoencoder.VideoTokenizer` they built. :func:`load` takes any of them
and returns an :class:`~vidtok_kit.tokenizer.InferenceTokenizer` whose ``encode`` / ``decode``
take the fast path: the exact fast arithmetic, channels-last, inference mode, and
``torch.compile`` of the step shapes that come back (``compile="auto"``).

:func:`load_model` is the part that builds the PyTorch model (reference arithmetic, as training
and parity tests want it); :func:`load` prepares it for inference.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vidtok_kit.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.recipe import Recipe
    from vidtok_kit.registry import ComponentRegistry
    from vidtok_kit.tokenizer import InferenceTokenizer

__all__ = ["BACKENDS", "PRECISIONS", "RANDOM_INIT_SEED", "load", "load_model", "parse_device", "parse_dtype"]

#: network precisions by their CLI names
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: what runs the network: the PyTorch model, or an export directory's graphs
BACKENDS = ("torch", "onnx", "tensorrt")
#: seed of a model built without a checkpoint, so that decoding its tokens rebuilds the same weights
RANDOM_INIT_SEED = 0
#: suffixes that make a ``source`` a checkpoint rather than a recipe
_CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".ckpt", ".pt", ".pth")


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``torch.bfloat16``, ``"bf16"``, ``"bfloat16"``, ... -> a floating dtype (None stays None)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {**PRECISIONS, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise InputError(f"precision {dtype!r} is not one of {', '.join(PRECISIONS)}")
    return names[dtype]


def _precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"`` / ``"fp16"`` / ``"bf16"`` for a parsed dtype (None: fp32), else the dtype's name."""
    if dtype is None:
        return "fp32"
    return {v: k for k, v in PRECISIONS.items()}.get(dtype, str(dtype).removeprefix("torch."))


def parse_device(device: torch.device | str | None, *, check_available: bool = True) -> torch.device:
    """A usable torch device, or one line saying why not (checked before any work starts).

    :param check_available: also require torch to reach it (not for ONNX Runtime's CUDA provider,
        which needs no CUDA build of torch).
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device or "cpu")
        except (RuntimeError, TypeError, ValueError):
            raise InputError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if not check_available:
        pass
    elif dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA devices")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} requested but MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps", "xpu", "meta"):
        raise InputError(f"device {device!r} is not supported (cpu, cuda, cuda:1, mps)")
    return dev


def _is_export_dir(source: Any) -> bool:
    return isinstance(source, (str, Path)) and Path(source).is_dir() and (Path(source) / "manifest.json").is_file()


def _is_checkpoint(source: Any) -> bool:
    if not isinstance(source, (str, Path)):
        return False
    path = Path(source)
    return path.is_dir() or (path.is_file() and path.suffix in _CHECKPOINT_SUFFIXES)


def load_model(
    recipe: Any = None,
    checkpoint: str | Path | None = None,
    *,
    ema: bool = False,
    overrides: Iterable[str] = (),
    registry: ComponentRegistry | None = None,
) -> tuple[VideoTokenizer, Recipe, dict[str, Any]]:
    """The PyTorch model (eval mode, CPU, reference arithmetic), its recipe, and its provenance.

    The recipe comes from ``recipe`` (a :class:`Recipe`, a path or a shipped name) or, when None,
    from the checkpoint (ours carry theirs). Without a checkpoint the weights are random, drawn
    with :data:`RANDOM_INIT_SEED` so that separate encode and decode runs build the same model.
    """
    from vidtok_kit import __version__
    from vidtok_kit.convert.checkpoint import (
        file_sha256,
        load_state_dict_file,
        load_weights,
        read_checkpoint_recipe,
        resolve_checkpoint,
    )
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.recipe import apply_overrides, dump_recipe, load_recipe, recipe_from_dict

    if registry is None:
        from vidtok_kit.pluginmanager import default_registry

        registry = default_registry()
    weights = resolve_checkpoint(checkpoint, ema=ema).resolve() if checkpoint is not None else None
    if recipe is not None:
        r = load_recipe(recipe, overrides=overrides, registry=registry)
    elif weights is not None:
        stored = read_checkpoint_recipe(weights)
        if stored is None:
            raise CheckpointError(f"{weights}: carries no recipe (an original VidTok checkpoint): pass its recipe too")
        data = apply_overrides(tomllib.loads(stored), overrides)
        r = recipe_from_dict(data, registry=registry, source=f"{weights} (stored recipe)", overrides=overrides)
    else:
        raise InputError("nothing to load: give a recipe, a checkpoint or both")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = build_model(r.model, registry=registry)
    if weights is not None:
        load_weights(model, load_state_dict_file(weights), source=str(weights))
    provenance = {
        "recipe": dump_recipe(r),
        "checkpoint": str(weights) if weights is not None else "",
        "checkpoint_sha256": file_sha256(weights) if weights is not None else "",
        "random_init_seed": None if weights is not None else RANDOM_INIT_SEED,
        "vidtok_kit_version": __version__,
    }
    return model.eval(), r, provenance


def load(
    source: Any = None,
    checkpoint: str | Path | None = None,
    *,
    device: torch.device | str | None = "cpu",
    dtype: torch.dtype | str | None = None,
    backend: str | None = None,
    compile: str | None = None,
    arithmetic: str = "fast",
    ema: bool = False,
    overrides: Iterable[str] = (),
    registry: ComponentRegistry | None = None,
    threads: int | None = None,
) -> InferenceTokenizer:
    """A ready tokenizer from a recipe (+ checkpoint), a checkpoint, a run / step / pretrained /
    export directory, or a model.

    :param source: a recipe (path, shipped name or :class:`Recipe`), a checkpoint file or
        directory, an export directory, or a :class:`VideoTokenizer` (used in place: its modules
        are switched to ``arithmetic``); None when ``checkpoint`` carries its recipe.
    :param checkpoint: weights for a recipe ``source`` (any form :func:`resolve_checkpoint` takes).
    :param device: where the network runs (``cpu``, ``cuda``, ``cuda:1``).
    :param dtype: network precision (``torch.bfloat16`` or ``"bf16"``); quantizers stay fp32.
    :param backend: ``"torch"`` (default), or ``"onnx"`` / ``"tensorrt"`` for an export directory.
    :param compile: ``"auto"`` (compile step shapes that come back), ``"on"``, ``"off"``; None:
        :envvar:`VIDTOK_KIT_COMPILE`, else ``"auto"``.
    :param arithmetic: ``"fast"`` (exact shortcuts, default) or ``"reference"`` (the original's).
    :param ema: a training checkpoint's EMA weights instead of its model weights.
    :param threads: ONNX Runtime intra-op threads (export directories).
    """
    from vidtok_kit.stream.torch_backend import TorchBackend
    from vidtok_kit.tokenizer import InferenceTokenizer

    if isinstance(source, InferenceTokenizer):
        return source
    if backend not in (None, *BACKENDS):
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    net_dtype = parse_dtype(dtype)
    if _is_export_dir(source) or (backend in ("onnx", "tensorrt") and isinstance(source, (str, Path))):
        from vidtok_kit.runtime import ExportedBackend

        dev = parse_device(device, check_available=False)
        exported = ExportedBackend(source, backend=backend if backend not in (None, "torch") else "onnx",
                                   device="cuda" if dev.type == "cuda" else "cpu", threads=threads,
                                   precision=_precision_name(net_dtype))
        return InferenceTokenizer(exported, provenance=_export_provenance(exported))
    dev = parse_device(device)
    if backend in ("onnx", "tensorrt"):
        raise InputError(f"backend {backend!r} runs an export directory (from `vidtok-kit export`), got {source!r}")
    if isinstance(source, nn.Module):
        model, recipe, provenance = source, None, {}
    else:
        if checkpoint is None and _is_checkpoint(source):
            source, checkpoint = None, source
        model, recipe, provenance = load_model(source, checkpoint, ema=ema, overrides=overrides, registry=registry)
    model = model.to(dev)  # type: ignore[assignment]
    if dev.type == "cpu":
        from vidtok_kit.heap import keep_freed_memory

        keep_freed_memory()  # activations reuse freed memory instead of faulting in new pages
    from vidtok_kit.cli_options import default_compile_mode

    mode = compile or default_compile_mode()
    torch_backend = TorchBackend(model, dtype=net_dtype, compile=mode, arithmetic=arithmetic)  # type: ignore[arg-type]
    return InferenceTokenizer(torch_backend, recipe=recipe, provenance=provenance)


def _export_provenance(exported: Any) -> dict[str, Any]:
    """What a token file records about an export: the recipe and checkpoint it was made from."""
    from vidtok_kit import __version__

    ckpt = exported.manifest.get("checkpoint") or {}
    return {
        "recipe": exported.manifest["recipe"]["toml"],
        "checkpoint": ckpt.get("path", ""),
        "checkpoint_sha256": ckpt.get("sha256", ""),
        "random_init_seed": None,
        "vidtok_kit_version": __version__,
    }
