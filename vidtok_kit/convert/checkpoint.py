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
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidtok_kit.convert.keymaps import is_ignored, looks_original, original_keys
from vidtok_kit.errors import CheckpointError
from vidtok_kit.io.outputs import atomic_write  # the shared writer; still importable from here

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.recipe import Recipe

__all__ = [
    "FORMAT",
    "file_sha256",
    "load_state_dict_file",
    "load_torch_file",
    "load_weights",
    "read_checkpoint_recipe",
    "resolve_checkpoint",
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


#: how a file ``torch.save`` wrote begins: a zip archive (the format since PyTorch 1.6) or, in the
#: legacy format, a pickle of protocol 2 or higher (the PROTO opcode)
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain values only, never code.

    Every failure is one line naming the file. A file that is not a ``torch.save`` file at all
    (text, an image, an HTML error page saved as a download) is told apart by its first bytes
    before torch reads it: its unpickler, fed such bytes, raises whatever they lead it to
    (``KeyError``, ``IndexError``) or blames the weights-only rule. torch's warnings about the
    file's pickle protocol are silenced: they describe a file that is refused or trusted anyway.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_ZIP_MAGIC))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(f"{path}: the file is empty, not a PyTorch checkpoint")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO)):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (torch.save writes a zip archive or a pickle; this file starts {head!r})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        _, _, reason = str(exc).partition("WeightsUnpickler error:")
        reason = next((line.strip() for line in reason.splitlines() if line.strip()), "objects other than tensors")
        raise CheckpointError(
            f"{path}: refused by torch.load(weights_only=True), it pickles more than tensors ({reason}); "
            "re-save its state_dict with torch.save or as safetensors"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged archive or pickle raises whatever its bytes lead to
        detail = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise CheckpointError(f"{path}: a damaged PyTorch checkpoint ({type(exc).__name__}: {detail})") from None


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file (safetensors, or ``torch.save``'d: :func:`load_torch_file`), with
    Lightning's ``state_dict`` wrapper removed; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    obj = load_torch_file(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: holds {type(obj).__name__}, not a flat state dict of tensors (or a Lightning checkpoint holding one)"
        )
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


def resolve_checkpoint(path: str | Path, *, ema: bool = False) -> Path:
    """The weights file behind whatever a user points at as a checkpoint.

    Accepted: one of our ``.safetensors`` files or its ``.json`` sidecar; a training checkpoint
    step directory (``RUN/checkpoints/step_N``: its ``model.safetensors``, or ``ema.safetensors``
    with ``ema=True``); a training run directory (its newest complete step); a
    ``save_pretrained`` directory; an original VidTok ``.ckpt`` / ``.pt`` / ``.safetensors``.

    :raises CheckpointError: one line naming the path and what was expected there.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    if path.is_file():
        if ema:
            raise CheckpointError(f"{path}: --ema picks the EMA weights of a training checkpoint directory, not of a file")
        if path.suffix == ".json":
            return _sidecar_weights(path)
        return path
    runs = path / "checkpoints"
    if runs.is_dir() and not (path / "meta.json").is_file():  # a training run: its newest complete step
        steps = sorted(d for d in runs.glob("step_*") if d.is_dir() and (d / "meta.json").is_file())
        if not steps:
            raise CheckpointError(f"{path}: a training run directory without a finished checkpoint in {runs}")
        path = steps[-1]
    name = "ema.safetensors" if ema else "model.safetensors"
    weights = path / name
    if weights.is_file():
        return weights
    if ema and (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path}: no EMA weights were saved in this checkpoint (train with EMA, or drop --ema)")
    raise CheckpointError(
        f"{path}: expected a checkpoint directory holding {name} (a training run, a step directory or a "
        "save_pretrained directory), or a checkpoint file"
    )


def _sidecar_weights(path: Path) -> Path:
    """The weights file a ``.json`` sidecar names (written beside it by :func:`save_tokenizer`)."""
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint sidecar ({type(exc).__name__})") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT or not isinstance(sidecar.get("weights"), str):
        raise CheckpointError(f"{path}: a JSON file that is not a vidtok-kit checkpoint sidecar (pass the .safetensors file)")
    weights = path.parent / sidecar["weights"]
    if not weights.is_file():
        raise CheckpointError(f"{path}: names weights {sidecar['weights']}, which are not beside it")
    return weights
