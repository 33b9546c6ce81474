"""ComponentRegistry: kind -> {name -> class}, with origins, validation and broken-plugin records.

The registry, not hook order, decides what a recipe ``kind`` means: a name registered twice is an
error naming both plugins (replace a built-in deliberately by blocking it), and a component asked
for that a broken plugin might have provided reports that plugin's import error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs

from vidtok_kit.errors import ComponentError, PluginError

__all__ = ["KINDS", "BrokenPlugin", "ComponentRegistry", "Origin"]

#: component kind -> (base class in :mod:`vidtok_kit.interfaces`, hook name, human label); the
#: base is named, not imported, so the CLI can list plugin commands without importing torch
KINDS: dict[str, tuple[str, str, str]] = {
    "spatial_sampler": ("SpatialSamplerPair", "vidtok_kit_register_spatial_samplers", "spatial sampler"),
    "temporal_sampler": ("TemporalSamplerPair", "vidtok_kit_register_temporal_samplers", "temporal sampler"),
    "fusion": ("FusionBlock", "vidtok_kit_register_fusion_blocks", "fusion block"),
    "regularizer": ("Regularizer", "vidtok_kit_register_regularizers", "regularizer"),
}


def base_class(kind: str) -> type:
    """The ABC every component of ``kind`` subclasses."""
    from vidtok_kit import interfaces

    return getattr(interfaces, KINDS[kind][0])

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@attrs.frozen
class Origin:
    """Where a component came from: plugin name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution} {self.version})"


@attrs.frozen
class BrokenPlugin:
    """A plugin that failed to import or register; reported only when something needs it."""

    origin: Origin
    error: str  # one line
    traceback: str


class ComponentRegistry:
    """Components by kind and name, each with the plugin that registered it."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, tuple[type, Origin]]] = {kind: {} for kind in KINDS}
        self.broken: list[BrokenPlugin] = []

    def add(self, kind: str, cls: Any, origin: Origin) -> None:
        """Validate and register ``cls`` under ``kind``; a duplicate name names both origins."""
        if kind not in KINDS:
            raise PluginError(f"{origin}: unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        base, label = base_class(kind), KINDS[kind][2]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{origin}: registered {cls!r} as a {label}, but it is not a subclass of {base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"{origin}: {cls.__name__}.name must match {_NAME.pattern}, got {name!r}")
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and attrs.has(config)):
            raise PluginError(f"{origin}: {cls.__name__} must define a nested attrs class 'Config'")
        existing = self._components[kind].get(name)
        if existing is not None and existing[0] is not cls:
            raise PluginError(
                f"two {label}s are named {name!r}: {existing[0].__qualname__} from {existing[1]} "
                f"and {cls.__qualname__} from {origin}; block one of them (--disable-plugin)"
            )
        self._components[kind][name] = (cls, origin)

    def get(self, kind: str, name: str) -> Any:
        """The class registered as ``name``; unknown names list what is available and what broke."""
        self._check_kind(kind)
        try:
            return self._components[kind][name][0]
        except KeyError:
            raise ComponentError(self.unknown_message(kind, name)) from None

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ComponentError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")

    def unknown_message(self, kind: str, name: str) -> str:
        label = KINDS[kind][2]
        msg = f"unknown {label} {name!r}; available: {', '.join(self.names(kind)) or '(none)'}"
        for broken in self.broken:
            msg += f"; {broken.origin} failed to load and may provide it: {broken.error}"
        return msg

    def origin(self, kind: str, name: str) -> Origin:
        return self._components[kind][name][1]

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self._components[kind])

    def items(self, kind: str) -> Iterator[tuple[str, type, Origin]]:
        for name in self.names(kind):
            cls, origin = self._components[kind][name]
            yield name, cls, origin

    def by_plugin(self) -> dict[str, dict[str, list[str]]]:
        """plugin name -> kind -> component names, for listings."""
        out: dict[str, dict[str, list[str]]] = {}
        for kind in KINDS:
            for name, _, origin in self.items(kind):
                out.setdefault(origin.plugin, {}).setdefault(kind, []).append(name)
        return out
