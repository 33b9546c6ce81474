"""CLI commands of the export subsystem, added through the same hook a third-party plugin uses."""

from __future__ import annotations

__all__: list[str] = []
