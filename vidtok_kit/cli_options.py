"""Click options shared by several commands: ``--pretrained NAME`` beside ``--checkpoint``.

Every command that takes weights (``encode``, ``decode``, ``reconstruct``, ``eval``, ``export``)
takes a released model by name the same way, through :func:`pretrained_option` (the options) and
:func:`resolve_pretrained` (what they mean), so the rule lives once: ``--pretrained NAME`` is the
original checkpoint fetched by :func:`vidtok_kit.pretrained.download_released` (the Hugging Face
cache, ``HF_HOME``, ``HF_HUB_OFFLINE``) paired with the shipped recipe of the same name unless a
recipe is given; naming both ``--pretrained`` and ``--checkpoint`` is a one-line error. Nothing
heavy is imported here: the CLI imports this module at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from vidtok_kit.errors import InputError

__all__ = ["compile_option", "default_compile_mode", "pretrained_option", "resolve_pretrained"]

F = TypeVar("F", bound=Callable[..., Any])


def default_compile_mode() -> str:
    """``$VIDTOK_KIT_COMPILE`` (``auto`` / ``on`` / ``off``), else ``auto``: the one default for
    :func:`vidtok_kit.load` and every command's ``--compile``."""
    import os

    return os.environ.get("VIDTOK_KIT_COMPILE") or "auto"


def compile_option(help: str) -> Callable[[F], F]:
    """``--compile auto|on|off`` (passed as ``compile_``), defaulting to :func:`default_compile_mode`."""
    return click.option("--compile", "compile_", type=click.Choice(["auto", "on", "off"]), default=default_compile_mode,
                        show_default="auto, or $VIDTOK_KIT_COMPILE", help=help)


def pretrained_option(fn: F) -> F:
    """Add ``--pretrained NAME`` and ``--revision REV`` (passed as ``pretrained`` / ``revision``)."""
    fn = click.option(
        "--revision", default=None, metavar="REV",
        help="Hub branch, tag or commit of --pretrained [default: main].",
    )(fn)
    fn = click.option(
        "--pretrained", default=None, metavar="NAME",
        help="A released VidTok model (e.g. vidtok_fsq_causal_488_262144), fetched through the Hugging Face "
             "cache; its shipped recipe is used unless one is given. Not with --checkpoint.",
    )(fn)
    return fn


def resolve_pretrained(
    pretrained: str | None, checkpoint: Path | None, recipe: Any = None, *, revision: str | None = None
) -> tuple[Any, Path | None]:
    """``(recipe, checkpoint)`` a command loads: unchanged without ``--pretrained``; with it, the
    downloaded original checkpoint and ``recipe`` or else the released model's shipped recipe name.

    :raises InputError: ``--pretrained`` together with ``--checkpoint``, or ``--revision`` alone.
    :raises CheckpointError: an unknown name, or a file the Hub client cannot provide (one line).
    """
    if pretrained is None:
        if revision is not None:
            raise InputError("--revision applies to --pretrained NAME only")
        return recipe, checkpoint
    if checkpoint is not None:
        raise InputError(f"--pretrained {pretrained} and --checkpoint {checkpoint} both name the weights: give one of them")
    from vidtok_kit.pretrained import download_released

    return (recipe if recipe is not None else pretrained), download_released(pretrained, revision=revision)
