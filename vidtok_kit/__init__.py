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

__all__ = ["__version__", "build_model", "hookimpl", "load", "load_recipe"]


def load_recipe(path: Any, *, overrides: Any = (), registry: Any = None) -> Recipe:
    """Read a recipe TOML file (with ``extends`` and ``--set``-style overrides) into a :class:`Recipe`."""
    from vidtok_kit.recipe import load_recipe as _load_recipe

    return _load_recipe(path, overrides=overrides, registry=registry)


def build_model(recipe: Any, *, registry: Any = None, device: Any = None) -> VideoTokenizer:
    """Build a randomly initialised tokenizer from a recipe (object or path)."""
    from vidtok_kit.model.autoencoder import build_model as _build_model

    return _build_model(recipe, registry=registry, device=device)


def load(recipe: Any, checkpoint: Any = None, device: Any = "cpu") -> VideoTokenizer:
    """A ready-to-use tokenizer in eval mode: recipe (path or object) plus optional checkpoint.

    :param checkpoint: ours (safetensors + recipe) or an original VidTok ``.ckpt``/``.pt``/``.safetensors``.
    """
    from vidtok_kit.convert.checkpoint import load_tokenizer

    return load_tokenizer(recipe, checkpoint=checkpoint, device=device)
