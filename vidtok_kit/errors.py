"""Exceptions whose message is the one line a user sees.

Every error the CLI can report derives from :class:`VidtokError`, so ``cli.main`` can turn it into
one line on stderr and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ComponentError",
    "InputError",
    "PluginError",
    "RecipeError",
    "VidtokError",
]


class VidtokError(Exception):
    """Base class: ``str(err)`` is a complete, single-line explanation."""


class RecipeError(VidtokError, ValueError):
    """A recipe file is malformed: names the file, the TOML path and what is allowed."""


class ComponentError(VidtokError, LookupError):
    """A component kind/name is unknown or a plugin providing it failed to load."""


class PluginError(VidtokError):
    """A plugin is invalid (bad component class, duplicate name)."""


class InputError(VidtokError, ValueError):
    """A tensor or file given to the model cannot be processed as it is."""


class CheckpointError(VidtokError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""
