"""Released and saved tokenizers by name: ``from_pretrained``, ``save_pretrained``, ``push_to_hub``.

The released VidTok weights live in the Hub repository ``microsoft/VidTok`` as original Lightning
checkpoints (``checkpoints/<name>.ckpt``; the v1.1 models under ``checkpoints/vidtok_v1_1/``).
Their architecture is not in those files, it is in our shipped recipe of the same name
(``recipes/vidtok/<name>.toml``), so :func:`from_pretrained` pairs the two: the file comes through
``huggingface_hub`` (its cache, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``,
revisions and resumable downloads, rather than an HTTP client of our own), and
:func:`vidtok_kit.load` loads it strictly and weights-only into the recipe's model.

A trained tokenizer round-trips as a folder: :func:`save_pretrained` writes ``model.safetensors``
(weights, recipe in its metadata) and ``model.json`` (the recipe again, readable without
safetensors); :func:`from_pretrained` on that folder, or on a Hub repository that
:func:`push_to_hub` published, loads it back. ``huggingface_hub`` is imported inside the
functions: the CLI imports this module at startup.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vidtok_kit.errors import CheckpointError

__all__ = [
    "RELEASED_REPO",
    "WEIGHTS_NAME",
    "download_released",
    "from_pretrained",
    "push_to_hub",
    "released_checkpoint",
    "released_models",
    "save_pretrained",
]

#: the Hub repository of the released VidTok checkpoints
RELEASED_REPO = "microsoft/VidTok"
#: what :func:`save_pretrained` writes (plus its ``.json`` sidecar, ``model.json``)
WEIGHTS_NAME = "model.safetensors"
#: the shipped recipes of the released models (``recipes/vidtok/<name>.toml``)
_RELEASED_FOLDER = "vidtok"


def released_models() -> list[str]:
    """Names of the released VidTok models: the shipped recipes in ``recipes/vidtok/``."""
    from vidtok_kit.recipes_index import list_recipes

    prefix = f"{_RELEASED_FOLDER}/"
    return [r.name.removeprefix(prefix) for r in list_recipes() if r.name.startswith(prefix)]


def released_checkpoint(name: str) -> str:
    """Path of a released model's checkpoint inside :data:`RELEASED_REPO`."""
    if name.endswith("_v1_1"):
        return f"checkpoints/vidtok_v1_1/{name}.ckpt"
    return f"checkpoints/{name}.ckpt"


def download_released(name: str, *, revision: str | None = None) -> Path:
    """The local path of a released model's original checkpoint, through the Hub cache.

    What a ``--pretrained NAME`` option resolves to: pair it with the shipped recipe ``name``
    (``vidtok_kit.load(name, checkpoint=download_released(name))``).

    :raises CheckpointError: one line for an unknown name, or a file the Hub client cannot provide.
    """
    from huggingface_hub import hf_hub_download

    if name not in released_models():
        raise CheckpointError(f"{name}: not a released VidTok model (released: {', '.join(released_models())})")
    filename = released_checkpoint(name)
    try:
        return Path(hf_hub_download(RELEASED_REPO, filename, revision=revision))
    except Exception as exc:  # the hub client's errors vary by version; each becomes one line
        hint = f"load a local copy with vidtok_kit.load({name!r}, checkpoint=FILE)"
        raise _hf_error(exc, RELEASED_REPO, filename, revision, hint) from exc


def _load(source: Any, checkpoint: Any, *, device: Any, dtype: Any, load_kwargs: dict[str, Any]) -> Any:
    """``vidtok_kit.load`` with keyword arguments (it takes recipes, checkpoints and folders alike)."""
    import vidtok_kit

    return vidtok_kit.load(source, checkpoint=checkpoint, device=device, dtype=dtype, **load_kwargs)


def _hf_error(exc: Exception, repo_id: str, filename: str, revision: str | None, local_hint: str) -> CheckpointError:
    """One line for a huggingface_hub failure (offline and not cached, unknown revision, ...)."""
    from huggingface_hub import constants

    what = f"{repo_id}/{filename}" + (f" at revision {revision}" if revision else "")
    fetch = f"`hf download {repo_id} {filename}`"
    if _hf_offline():
        return CheckpointError(
            f"{what}: not in the Hugging Face cache {constants.HF_HUB_CACHE} and HF_HUB_OFFLINE is set: "
            f"fetch it once online ({fetch}), or {local_hint}"
        )
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return CheckpointError(f"{what}: cannot get it from the Hugging Face Hub ({type(exc).__name__}: {first}); {local_hint}")


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def from_pretrained(
    name_or_dir: str | os.PathLike[str],
    *,
    revision: str | None = None,
    device: Any = "cpu",
    dtype: Any = None,
    recipe: Any = None,
    **load_kwargs: Any,
) -> Any:
    """A ready tokenizer from a released model name, a :func:`save_pretrained` folder or a Hub repo.

    :param name_or_dir: a released model (``vidtok_fsq_causal_488_262144``; see
        :func:`released_models`), a folder written by :func:`save_pretrained`, or a Hub
        repository id (``user/repo``) published by :func:`push_to_hub`.
    :param revision: Hub branch, tag or commit (default: ``main``).
    :param device: where the model goes.
    :param dtype: parameter dtype (default: as stored, float32).
    :param recipe: for a released model, the recipe to pair the checkpoint with (default: the
        shipped recipe of the same name).
    :param load_kwargs: passed on to :func:`vidtok_kit.load`.
    :raises CheckpointError: one line naming what was asked for and what went wrong.
    """
    text = os.fspath(name_or_dir)
    local = Path(text).expanduser()
    if local.is_dir():
        if not (local / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{local}: no {WEIGHTS_NAME} in this folder (expected a folder written by save_pretrained)")
        return _load(local, None, device=device, dtype=dtype, load_kwargs=load_kwargs)
    released = released_models()
    if text in released:
        path = download_released(text, revision=revision)
        return _load(recipe if recipe is not None else text, path, device=device, dtype=dtype, load_kwargs=load_kwargs)
    if "/" in text and not local.exists() and text.count("/") == 1:
        return _from_hub_repo(text, revision=revision, device=device, dtype=dtype, load_kwargs=load_kwargs)
    raise CheckpointError(
        f"{text}: not a save_pretrained folder, a Hub repository id or a released model "
        f"(released: {', '.join(released) or 'none shipped'})"
    )


def _from_hub_repo(repo_id: str, *, revision: str | None, device: Any, dtype: Any, load_kwargs: dict[str, Any]) -> Any:
    """A folder published by :func:`push_to_hub`, downloaded into the Hub cache, then loaded."""
    from huggingface_hub import hf_hub_download

    try:
        weights = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
        hf_hub_download(repo_id, "model.json", revision=revision)
    except Exception as exc:
        raise _hf_error(exc, repo_id, WEIGHTS_NAME, revision, "pass a local save_pretrained folder instead") from exc
    return _load(Path(weights).parent, None, device=device, dtype=dtype, load_kwargs=load_kwargs)


def _model_and_recipe(tokenizer: Any, recipe: Any) -> tuple[Any, Any]:
    """``(VideoTokenizer, Recipe)`` of a loaded tokenizer (``.model``/``.recipe``) or a bare model."""
    from vidtok_kit.recipe import load_recipe

    model = getattr(tokenizer, "model", None) if hasattr(tokenizer, "recipe") else tokenizer
    if recipe is None:
        recipe = getattr(tokenizer, "recipe", None)
    if model is None or recipe is None:
        raise CheckpointError(
            f"save_pretrained needs a tokenizer with .model and .recipe, or a model and recipe=, got {type(tokenizer).__name__}"
        )
    return model, load_recipe(recipe)


def save_pretrained(tokenizer: Any, directory: str | os.PathLike[str], *, recipe: Any = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/model.json`` (weights + recipe).

    :param tokenizer: what :func:`vidtok_kit.load` returned (``.model`` and ``.recipe``), or a
        bare ``VideoTokenizer`` together with ``recipe=``.
    :param recipe: the recipe (object, path or shipped name) when ``tokenizer`` carries none.
    :return: the folder.
    """
    from vidtok_kit.convert.checkpoint import save_tokenizer

    model, resolved = _model_and_recipe(tokenizer, recipe)
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(model, resolved, folder / WEIGHTS_NAME)
    return folder


def _model_card(recipe: Any) -> str:
    name = getattr(recipe, "name", "") or "vidtok-kit tokenizer"
    description = getattr(recipe, "description", "") or ""
    return (
        "---\nlibrary_name: vidtok-kit\ntags:\n- video-tokenizer\n- vidtok\n---\n\n"
        f"# {name}\n\n{description}\n\n"
        "```python\nimport vidtok_kit\n\ntok = vidtok_kit.from_pretrained(\"REPO_ID\")\n```\n"
    )


def push_to_hub(
    tokenizer: Any,
    repo_id: str,
    *,
    recipe: Any = None,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload vidtok-kit tokenizer",
) -> Any:
    """Publish a tokenizer to the Hub as a :func:`save_pretrained` folder plus a model card.

    :param repo_id: ``user/repo``; created (as a model repository) when it does not exist.
    :return: what ``HfApi.upload_folder`` returns (the commit info).
    """
    from huggingface_hub import HfApi

    model, resolved = _model_and_recipe(tokenizer, recipe)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="vidtok_kit_push_") as tmp:
        folder = save_pretrained(model, tmp, recipe=resolved)
        (folder / "README.md").write_text(_model_card(resolved).replace("REPO_ID", repo_id))
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=commit_message, repo_type="model"
        )
