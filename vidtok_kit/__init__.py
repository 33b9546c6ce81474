"""vidtok-kit: build, train, evaluate and deploy VidTok-family video tokenizers.

Heavy modules (torch models, recipes) are imported lazily so ``vidtok-kit --help`` stays fast and
plugins can ``from vidtok_kit import hookimpl`` without import cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.3.0"

hookimpl = pluggy.HookimplMarker("vidtok_kit")

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer
    from vidtok_kit.recipe import Recipe
    from vidtok_kit.tokenizer import InferenceTokenizer

__all__ = ["__version__", "build_model", "from_pretrained", "hookimpl", "load", "load_recipe", "save_pretrained"]


def load_recipe(path: Any, *, overrides: Any = (), registry: Any = None) -> Recipe:
    """Read a recipe TOML file (with ``extends`` and ``--set``-style overrides) into a :class:`Recipe`."""
    from vidtok_kit.recipe import load_recipe as _load_recipe

    return _load_recipe(path, overrides=overrides, registry=registry)


def build_model(recipe: Any, *, registry: Any = None, device: Any = None) -> VideoTokenizer:
    """Build a randomly initialised tokenizer from a recipe (object or path)."""
    from vidtok_kit.model.autoencoder import build_model as _build_model

    return _build_model(recipe, registry=registry, device=device)


def load(source: Any = None, checkpoint: Any = None, **options: Any) -> InferenceTokenizer:
    """A ready tokenizer (fast inference path) from a recipe (+ checkpoint), a checkpoint, a training
    run / step / ``save_pretrained`` / export directory, or a model; see :func:`vidtok_kit.loading.load`
    for ``device=``, ``dtype=``, ``backend=``, ``compile=``, ``ema=``."""
    from vidtok_kit.loading import load as _load

    return _load(source, checkpoint, **options)


def from_pretrained(name_or_dir: Any, *, revision: Any = None, device: Any = "cpu", dtype: Any = None, **load_kwargs: Any) -> Any:
    """A released VidTok model by name (fetched from the Hub ``microsoft/VidTok`` through
    ``huggingface_hub``), a :func:`save_pretrained` folder, or a Hub repository it was pushed to."""
    from vidtok_kit.pretrained import from_pretrained as _from_pretrained

    return _from_pretrained(name_or_dir, revision=revision, device=device, dtype=dtype, **load_kwargs)


def save_pretrained(tokenizer: Any, directory: Any, *, recipe: Any = None) -> Any:
    """Write ``directory/model.safetensors`` + ``model.json`` (weights and recipe) for :func:`from_pretrained`."""
    from vidtok_kit.pretrained import save_pretrained as _save_pretrained

    return _save_pretrained(tokenizer, directory, recipe=recipe)
