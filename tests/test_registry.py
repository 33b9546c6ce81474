"""ComponentRegistry: validation, duplicate names naming both origins, unknown names listing choices."""

from __future__ import annotations

import types

import attrs
import pytest
from torch import nn
from vidtok_kit.plugins.regularizers.kl import KLRegularizer
from vidtok_kit.plugins.spatial.conv2d import Conv2dSampler

from vidtok_kit import hookimpl
from vidtok_kit.errors import ComponentError, PluginError
from vidtok_kit.pluginmanager import build_registry, get_plugin_manager
from vidtok_kit.registry import KINDS, BrokenPlugin, ComponentRegistry, Origin

A = Origin(plugin="plugin_a", distribution="dist-a", version="1.0")
B = Origin(plugin="plugin_b", distribution="dist-b", version="2.0")


class OtherKL(KLRegularizer):
    """A second, different class claiming the name 'kl'."""


class BadName(KLRegularizer):
    name = "Bad-Name"


class NoAttrsConfig(KLRegularizer):
    name = "no_attrs_config"
    Config = dict  # type: ignore[assignment]


def test_register_and_get() -> None:
    registry = ComponentRegistry()
    registry.add("regularizer", KLRegularizer, A)
    assert registry.get("regularizer", "kl") is KLRegularizer
    assert registry.origin("regularizer", "kl") == A
    assert registry.names("regularizer") == ["kl"]
    assert registry.by_plugin() == {"plugin_a": {"regularizer": ["kl"]}}
    registry.add("regularizer", KLRegularizer, A)  # the same class again is harmless


def test_duplicate_name_is_an_error_naming_both_origins() -> None:
    registry = ComponentRegistry()
    registry.add("regularizer", KLRegularizer, A)
    with pytest.raises(PluginError) as info:
        registry.add("regularizer", OtherKL, B)
    message = str(info.value)
    assert message == (
        "two regularizers are named 'kl': KLRegularizer from plugin 'plugin_a' (dist-a 1.0) and "
        "OtherKL from plugin 'plugin_b' (dist-b 2.0); block one of them (--disable-plugin)"
    )
    assert registry.get("regularizer", "kl") is KLRegularizer  # the first one stays


def test_duplicate_through_the_plugin_manager_names_the_builtin() -> None:
    plugin = types.ModuleType("dup_plugin")
    plugin.vidtok_kit_register_regularizers = hookimpl(lambda: [OtherKL])
    plugins = get_plugin_manager(autoload=False)
    plugins.register(plugin, B)
    with pytest.raises(PluginError) as info:
        build_registry(plugins)
    message = str(info.value)
    assert message.startswith("two regularizers are named 'kl': ")
    assert "KLRegularizer from plugin 'vidtok_kit.plugins.regularizers.kl' (vidtok-kit " in message
    assert "OtherKL from plugin 'plugin_b' (dist-b 2.0)" in message
    # blocking the built-in is the way to replace it deliberately
    plugins = get_plugin_manager(autoload=False, disabled=["vidtok_kit.plugins.regularizers.kl"])
    plugins.register(plugin, B)
    assert build_registry(plugins).get("regularizer", "kl") is OtherKL


@pytest.mark.parametrize(
    ("kind", "cls", "needle"),
    [
        ("regularizer", nn.Conv2d, "registered <class 'torch.nn.modules.conv.Conv2d'> as a regularizer, but it is not a subclass of Regularizer"),
        ("regularizer", Conv2dSampler, "as a regularizer, but it is not a subclass of Regularizer"),
        ("spatial_sampler", KLRegularizer, "as a spatial sampler, but it is not a subclass of SpatialSamplerPair"),
        ("regularizer", "kl", "registered 'kl' as a regularizer"),
        ("regularizer", BadName, "BadName.name must match ^[a-z][a-z0-9_]*$, got 'Bad-Name'"),
        ("regularizer", NoAttrsConfig, "NoAttrsConfig must define a nested attrs class 'Config'"),
        ("vocoder", KLRegularizer, "unknown component kind 'vocoder'; kinds are spatial_sampler, temporal_sampler, fusion, regularizer"),
    ],
    ids=["not-a-component", "wrong-kind", "wrong-kind-2", "not-a-class", "bad-name", "no-config", "unknown-kind"],
)
def test_invalid_components_are_rejected_naming_the_plugin(kind: str, cls: object, needle: str) -> None:
    registry = ComponentRegistry()
    with pytest.raises(PluginError) as info:
        registry.add(kind, cls, A)
    assert str(info.value).startswith("plugin 'plugin_a' (dist-a 1.0): ")
    assert needle in str(info.value)
    assert all(registry.names(k) == [] for k in KINDS)


def test_unknown_name_lists_what_is_available() -> None:
    registry = ComponentRegistry()
    registry.add("regularizer", KLRegularizer, A)
    with pytest.raises(ComponentError, match=r"^unknown regularizer 'vq'; available: kl$"):
        registry.get("regularizer", "vq")
    with pytest.raises(ComponentError, match=r"^unknown fusion block 'res3d'; available: \(none\)$"):
        registry.get("fusion", "res3d")


def test_unknown_kind_lists_the_kinds() -> None:
    registry = ComponentRegistry()
    with pytest.raises(ComponentError, match="unknown component kind 'sampler'; kinds are spatial_sampler, temporal_sampler, fusion, regularizer"):
        registry.get("sampler", "conv2d")
    with pytest.raises(ComponentError, match="unknown component kind"):
        registry.names("sampler")


def test_unknown_name_mentions_broken_plugins() -> None:
    registry = ComponentRegistry()
    registry.broken.append(BrokenPlugin(origin=B, error="ImportError: no module named 'fancy'", traceback="..."))
    with pytest.raises(ComponentError) as info:
        registry.get("regularizer", "fancy_vq")
    assert str(info.value) == (
        "unknown regularizer 'fancy_vq'; available: (none); plugin 'plugin_b' (dist-b 2.0) failed to load "
        "and may provide it: ImportError: no module named 'fancy'"
    )


def test_every_builtin_component_is_valid_and_frozen_configured() -> None:
    registry = build_registry(get_plugin_manager(autoload=False))
    for kind in KINDS:
        assert registry.names(kind), f"no built-in {kind}"
        for _, cls, origin in registry.items(kind):
            assert origin.distribution == "vidtok-kit"
            assert attrs.has(cls.Config)
