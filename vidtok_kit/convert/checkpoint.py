"""Reading and writing tokenizer checkpoints: ours (safetensors + recipe) and the original VidTok ones.

Ours: ``NAME.safetensors`` whose metadata holds the resolved recipe, plus ``NAME.json`` beside it
(recipe and provenance, readable without safetensors). Original: Lightning ``.ckpt`` / ``.pt``
(read with ``torch.load(weights_only=True)``, never unpickling code) or ``.safetensors`` in the
original key layout; training-only keys (``loss.*``, ``model_ema.*``) are dropped, the rest is
renamed through :mod:`vidtok_kit.convert.keymaps` and loaded strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidtok_kit.convert.keymaps import is_ignored, looks_original, original_keys
from vidtok_kit.errors import CheckpointError

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.recipe import Recipe

__all__ = [
    "FORMAT",
    "file_sha256",
    "load_state_dict_file",
    "load_tokenizer",
    "load_weights",
    "read_checkpoint_recipe",
    "save_tokenizer",
]

FORMAT = "vidtok-kit"
_SHOW = 6  # keys listed in an error before "... and N more"


def file_sha256(path: str | Path, *, length: int = 16) -> str:
    """Short content hash, recorded in token files and export manifests."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: no half-written file ever has the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tokenizer(model: VideoTokenizer, recipe: Recipe, path: str | Path, *, extra: dict[str, str] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar, each atomically."""
    from vidtok_kit import __version__
    from vidtok_kit.recipe import dump_recipe

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    recipe_toml = dump_recipe(recipe)
    meta = {"format": FORMAT, "version": __version__, "recipe": recipe_toml, **(extra or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    sidecar = {"format": FORMAT, "version": __version__, "weights": path.name, "recipe": recipe_toml, **(extra or {})}
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n"))
    return path


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def read_checkpoint_recipe(path: str | Path) -> str | None:
    """The recipe TOML stored in one of our checkpoints, or None for a foreign one."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        meta = _safetensors_metadata(path)
    except (SafetensorError, OSError, ValueError):
        return None
    return meta.get("recipe") if meta.get("format") == FORMAT else None


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file, with Lightning's ``state_dict`` wrapper removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused by torch.load(weights_only=True), it pickles more than tensors ({first}); "
            "re-save its state_dict with torch.save or as safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or a Lightning checkpoint holding one)")
    return obj


def _listing(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOW]
    more = f" ... and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return ", ".join(shown) + more


def load_weights(model: VideoTokenizer, state: dict[str, Tensor], *, source: str = "<state dict>") -> str:
    """Load ``state`` (ours or the original layout) into ``model`` strictly; returns the layout name."""
    ours = model.state_dict()
    state = {k: v for k, v in state.items() if not is_ignored(k)}
    if looks_original(state):
        layout = "original VidTok"
        mapping = original_keys(ours, causal=model.config.causal)
        renamed = {mapping[k]: v for k, v in state.items() if k in mapping}
        unexpected = {k for k in state if k not in mapping}
        missing = {orig for orig, k in mapping.items() if orig not in state}
    else:
        layout = "vidtok-kit"
        renamed = dict(state)
        unexpected = set(state) - set(ours)
        missing = set(ours) - set(state)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {_listing(unexpected)}")
        raise CheckpointError(f"{source}: does not fit this model ({layout} layout): " + "; ".join(parts))
    wrong = {k: (tuple(v.shape), tuple(ours[k].shape)) for k, v in renamed.items() if v.shape != ours[k].shape}
    if wrong:
        shown = ", ".join(f"{k} {a} vs model {b}" for k, (a, b) in list(wrong.items())[:_SHOW])
        raise CheckpointError(f"{source}: {len(wrong)} tensors have the wrong shape for this recipe: {shown}")
    model.load_state_dict(renamed, strict=True)
    return layout


def load_tokenizer(recipe: Any, *, checkpoint: Any = None, device: Any = "cpu") -> VideoTokenizer:
    """Recipe (path/object, or None when the checkpoint is ours) + optional checkpoint -> eval-mode model."""
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.recipe import load_recipe, recipe_from_dict

    registry = default_registry()
    if recipe is None:
        stored = read_checkpoint_recipe(checkpoint) if checkpoint is not None else None
        if stored is None:
            raise CheckpointError(f"{checkpoint}: no recipe given and the checkpoint does not carry one (pass --recipe)")
        recipe = recipe_from_dict(tomllib.loads(stored), registry=registry, source=f"{checkpoint} (stored recipe)")
    recipe = load_recipe(recipe, registry=registry)
    model = build_model(recipe.model, registry=registry)
    if checkpoint is not None:
        load_weights(model, load_state_dict_file(checkpoint), source=str(checkpoint))
    return model.to(device).eval()
