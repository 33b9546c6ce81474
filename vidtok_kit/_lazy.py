"""Package exports imported on first use, so ``vidtok-kit --help`` never pays for torch.

A subsystem package (``vidtok_kit.tokenize``, ``.evaluation``, ...) re-exports names from its
heavy modules; its ``commands`` module must stay importable without them (the CLI imports every
command module at start-up).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``names`` (export -> submodule of ``package``) on first access."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__
