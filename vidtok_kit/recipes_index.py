"""Shipped recipes, found by name: ``fsq_488``, ``tiny/demo``, ``vidtok_kl_causal_488_4chn``.

The ``recipes/`` folder of the repository ships inside the wheel as package data of
``vidtok_kit.recipes`` (``[tool.setuptools.package-dir]`` in pyproject.toml), so a
non-editable install, run outside any checkout, has every recipe the checkout has. A recipe
argument, and ``extends`` inside a recipe, may therefore be either a path (as before) or the
name of a shipped recipe: its path under ``recipes/`` without ``.toml``; a file may also be
named by its stem alone where no other shipped recipe has that stem (``vidtok/x.toml`` -> ``x``).

:func:`resolve_recipe` is the one place where a reference becomes a file; ``load_recipe`` and
``extends`` both go through it. This module imports nothing heavy (the CLI uses it at startup).
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from vidtok_kit.errors import RecipeError

__all__ = ["ShippedRecipe", "list_recipes", "recipes_root", "resolve_recipe", "shipped_recipe"]

#: how a user lists the names, quoted in every "unknown name" error
LIST_HINT = "list them with `vidtok-kit recipe list`"


class ShippedRecipe(NamedTuple):
    """One recipe of the package: its name (``tiny/demo``), file and one-line description."""

    name: str
    path: Path
    description: str


@lru_cache(maxsize=1)
def recipes_root() -> Path | None:
    """The folder holding the shipped recipes, or None where the package has none.

    An installed wheel has it as the package ``vidtok_kit.recipes``; an editable install maps
    that package onto the checkout's ``recipes/``; a bare checkout on ``sys.path`` (no install)
    falls back to ``recipes/`` beside the ``vidtok_kit`` folder when a ``pyproject.toml`` says it
    is the project's root.
    """
    try:
        spec = importlib.util.find_spec("vidtok_kit.recipes")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        if Path(location).is_dir():
            return Path(location).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "recipes").is_dir():
        return checkout / "recipes"
    return None


def _name_of(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


@lru_cache(maxsize=1)
def _shipped_files() -> tuple[tuple[str, Path], ...]:
    root = recipes_root()
    if root is None:
        return ()
    return tuple(sorted((_name_of(p, root), p) for p in root.rglob("*.toml")))


def _describe(path: Path) -> str:
    """The recipe's own ``description`` key, else the first line of its header comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    try:
        description = tomllib.loads(text).get("description")
    except tomllib.TOMLDecodeError:
        description = None
    if isinstance(description, str) and description.strip():
        return description.strip().splitlines()[0]
    for line in text.splitlines():
        if line.startswith("#") and line.lstrip("#").strip():
            return line.lstrip("#").strip()
        if line.strip() and not line.startswith("#"):
            break
    return ""


def list_recipes() -> list[ShippedRecipe]:
    """Every shipped recipe, sorted by name."""
    return [ShippedRecipe(name, path, _describe(path)) for name, path in _shipped_files()]


def shipped_recipe(name: str) -> Path | None:
    """The shipped file named ``name`` (``tiny/demo``, ``tiny/demo.toml`` or a unique stem)."""
    key = name.removesuffix(".toml").replace("\\", "/").strip("/")
    files = dict(_shipped_files())
    if key in files:
        return files[key]
    if "/" in key:
        return None
    matches = sorted(n for n in files if n.rpartition("/")[2] == key)
    if len(matches) > 1:
        raise RecipeError(f"recipe name {name!r} is ambiguous: {', '.join(matches)} (give the full name)")
    return files[matches[0]] if matches else None


def resolve_recipe(ref: str | os.PathLike[str], *, relative_to: Path | None = None) -> Path:
    """The recipe file that ``ref`` names: an existing path first, else a shipped recipe name.

    :param ref: a path (absolute, relative to the current folder, or for ``extends`` relative to
        the extending file's folder) or a shipped name such as ``fsq_488`` or ``tiny/demo``.
    :param relative_to: the folder relative paths are taken from (``extends``); default: the cwd.
    :return: an absolute path of an existing file.
    :raises RecipeError: one line naming ``ref`` when it is neither, and how to list the names.
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    candidate = path if path.is_absolute() or relative_to is None else relative_to / path
    if candidate.is_file():
        return candidate.resolve()
    if not path.is_absolute():
        shipped = shipped_recipe(text)
        if shipped is not None:
            return shipped
    if candidate.is_dir():
        raise RecipeError(f"{candidate}: is a folder, not a recipe file (a .toml file or a shipped name: {LIST_HINT})")
    if path.is_absolute():
        raise RecipeError(f"{path}: no such recipe file")
    where = f" at {candidate.resolve()}" if relative_to is not None else ""
    raise RecipeError(f"{text}: no such recipe file{where}, nor a shipped recipe name ({LIST_HINT})")
