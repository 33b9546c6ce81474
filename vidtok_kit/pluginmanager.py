"""Builds the pluggy manager: built-ins from an explicit tuple, third parties from entry points.

Built-ins and third-party plugins go through the same ``register()``, the same registry, the same
validation, blocking and listing; only discovery differs. Entry points are loaded one by one so a
plugin that fails to import is recorded (and reported when needed) instead of killing the CLI.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import traceback
from collections.abc import Iterable

import pluggy

from vidtok_kit import hookspecs
from vidtok_kit.errors import PluginError
from vidtok_kit.registry import KINDS, BrokenPlugin, ComponentRegistry, Origin

__all__ = [
    "BUILTIN_PLUGINS",
    "COMMAND_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginSet",
    "build_registry",
    "check_plugin_names",
    "default_registry",
    "get_plugin_manager",
    "known_plugin_names",
    "load_plugins",
]

ENTRY_POINT_GROUP = "vidtok_kit"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "vidtok_kit.plugins.spatial.conv2d",
    "vidtok_kit.plugins.spatial.conv3d",
    "vidtok_kit.plugins.temporal.alphablender",
    "vidtok_kit.plugins.temporal.conv1d",
    "vidtok_kit.plugins.temporal.conv3d",
    "vidtok_kit.plugins.temporal.joint3d",
    "vidtok_kit.plugins.fusion.res2plus1d",
    "vidtok_kit.plugins.fusion.res3d",
    "vidtok_kit.plugins.fusion.res2d",
    "vidtok_kit.plugins.regularizers.kl",
    "vidtok_kit.plugins.regularizers.fsq",
    "vidtok_kit.plugins.regularizers.vq",
    "vidtok_kit.plugins.regularizers.lfq",
    "vidtok_kit.export.commands",
)
#: the built-ins that add commands (``vidtok_kit_add_commands``): the CLI registers only these
#: (and the entry-point plugins) to build its command list, so ``vidtok-kit --help`` starts without
#: importing torch through the component plugins; a test keeps this list complete
COMMAND_PLUGINS: tuple[str, ...] = ("vidtok_kit.export.commands",)


def _own_origin(name: str) -> Origin:
    try:
        version = md.version("vidtok-kit")
    except md.PackageNotFoundError:  # running from a checkout without metadata
        from vidtok_kit import __version__ as version
    return Origin(plugin=name, distribution="vidtok-kit", version=version)


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("VIDTOK_KIT_DISABLED_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginSet:
    """A plugin manager plus what is known about each plugin (origin, broken ones)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.origins: dict[str, Origin] = {}
        self.broken: list[BrokenPlugin] = []

    def register(self, module: object, origin: Origin) -> None:
        self.pm.register(module, name=origin.plugin)
        self.origins[origin.plugin] = origin

    def record_broken(self, origin: Origin, exc: BaseException) -> None:
        line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.broken.append(BrokenPlugin(origin=origin, error=line, traceback=traceback.format_exc()))


def get_plugin_manager(
    *, autoload: bool = True, disabled: Iterable[str] = (), builtins: Iterable[str] = BUILTIN_PLUGINS
) -> PluginSet:
    """A fresh manager with the built-ins and (if ``autoload``) entry-point plugins registered.

    :param autoload: load third-party plugins from the ``vidtok_kit`` entry-point group
        (also off when ``VIDTOK_KIT_DISABLE_PLUGIN_AUTOLOAD`` is set).
    :param disabled: plugin names to block (built-ins by module name, others by entry-point
        name); ``VIDTOK_KIT_DISABLED_PLUGINS=a,b`` adds to it.
    :param builtins: which built-ins to register (all; the CLI's command list uses
        :data:`COMMAND_PLUGINS`).
    """
    pm = pluggy.PluginManager("vidtok_kit")
    pm.add_hookspecs(hookspecs)
    plugins = PluginSet(pm)
    for name in {*disabled, *_disabled_from_env()}:
        pm.set_blocked(name)
    for modname in builtins:
        if not pm.is_blocked(modname):
            plugins.register(importlib.import_module(modname), _own_origin(modname))
    if autoload and not os.environ.get("VIDTOK_KIT_DISABLE_PLUGIN_AUTOLOAD"):
        _load_entry_points(plugins)
    pm.check_pending()
    if os.environ.get("VIDTOK_KIT_TRACE_PLUGINS"):
        pm.trace.root.setwriter(print)
        pm.enable_tracing()
    return plugins


def known_plugin_names() -> list[str]:
    """Every name ``--disable-plugin`` accepts: the built-ins, then installed entry points."""
    return [*BUILTIN_PLUGINS, *sorted({ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)} - set(BUILTIN_PLUGINS))]


def check_plugin_names(names: Iterable[str], *, option: str = "--disable-plugin") -> None:
    """Refuse a plugin name nothing answers to: blocking a misspelt name silently blocks nothing.

    :raises PluginError: one line with the unknown name, the closest known one, and all known names.
    """
    known = known_plugin_names()
    for name in names:
        if name in known:
            continue
        close = [k for k in known if k.rpartition(".")[2] == name] or difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PluginError(f"{option} {name}: no such plugin{hint}; known plugins: {', '.join(known)}")


def _load_entry_points(plugins: PluginSet) -> None:
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if plugins.pm.is_blocked(ep.name) or plugins.pm.has_plugin(ep.name):
            continue
        dist = ep.dist
        origin = Origin(
            plugin=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
        )
        try:
            plugins.register(ep.load(), origin)
        except Exception as exc:  # a broken plugin must not take the CLI down
            plugins.record_broken(origin, exc)


def build_registry(plugins: PluginSet) -> ComponentRegistry:
    """Call every registration hook, plugin by plugin, so each component keeps its origin."""
    registry = ComponentRegistry()
    registry.broken.extend(plugins.broken)
    for kind, (_, hook_name, _) in KINDS.items():
        caller = getattr(plugins.pm.hook, hook_name)
        # pluggy returns merged results without provenance; calling each hookimpl keeps it.
        for impl in reversed(caller.get_hookimpls()):
            origin = plugins.origins[impl.plugin_name]
            try:
                classes = list(impl.function() or ())
            except Exception as exc:
                plugins.record_broken(origin, exc)
                registry.broken.append(plugins.broken[-1])
                continue
            # hookimpls are called directly (to keep provenance), so pluggy's own hook tracing never
            # sees these calls: report them to the trace (a no-op unless VIDTOK_KIT_TRACE_PLUGINS)
            plugins.pm.trace.root.get("hook")(hook_name, impl.plugin_name, [getattr(c, "name", c) for c in classes])
            for cls in classes:
                registry.add(kind, cls, origin)
    return registry


def load_plugins(*, autoload: bool = True, disabled: Iterable[str] = ()) -> tuple[PluginSet, ComponentRegistry]:
    """Convenience: manager and registry in one call."""
    plugins = get_plugin_manager(autoload=autoload, disabled=disabled)
    return plugins, build_registry(plugins)


_DEFAULT: ComponentRegistry | None = None


def default_registry() -> ComponentRegistry:
    """The registry of all installed plugins, built on first use (never at import time)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_plugins()[1]
    return _DEFAULT
