"""The hook catalogue stays honest: every hookspec is documented, and every hook has a ``test_hook_*`` here.

Each ``test_hook_<name>`` registers a small real plugin implementing that hook and shows its
result arriving where the hook says (a component a recipe can use, a command the CLI runs).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from vidtok_kit.plugins.fusion.res3d import Res3dBlock
from vidtok_kit.plugins.regularizers.kl import KLRegularizer
from vidtok_kit.plugins.spatial.conv2d import Conv2dSampler
from vidtok_kit.plugins.temporal.alphablender import AlphaBlender

from vidtok_kit import cli as cli_module
from vidtok_kit import hookimpl, hookspecs
from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.pluginmanager import build_registry, get_plugin_manager
from vidtok_kit.registry import Origin
from vidtok_kit.testing import tiny_recipe

HOOKS = [name for name in hookspecs.__all__ if name.startswith("vidtok_kit_")]


# -- the catalogue -------------------------------------------------------------------------------------


def test_all_lists_exactly_the_hookspecs() -> None:
    marked = {name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "vidtok_kit_spec")}
    assert marked == set(HOOKS)
    pm = get_plugin_manager(autoload=False).pm
    assert {name for name in dir(pm.hook) if name.startswith("vidtok_kit_")} == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert ".. versionadded::" in doc, f"{name}: no versionadded"
    assert ":return:" in doc or ":param" in doc, f"{name}: no :param:/:return: fields"
    assert "merged" in doc or "called" in doc, f"{name}: does not say how results are combined"


def test_every_hook_has_a_test() -> None:
    missing = [name for name in HOOKS if f"test_hook_{name.removeprefix('vidtok_kit_')}" not in globals()]
    assert not missing, f"add test_hook_* for {missing}"


# -- one test per hook -------------------------------------------------------------------------------------


def _registry_with(hook: str, classes: list[type]):
    plugin = types.ModuleType(f"plugin_for_{hook}")
    setattr(plugin, hook, hookimpl(lambda: classes))
    plugins = get_plugin_manager(autoload=False)
    plugins.register(plugin, Origin(plugin="extra", distribution="vidtok-kit-extra", version="0.0.1"))
    return build_registry(plugins)


def _run_tiny(registry, **model) -> torch.Tensor:
    net = build_model(tiny_recipe(registry, **model).model, registry=registry).eval()
    with torch.no_grad():
        return net(torch.rand(1, 3, 5, 16, 16) * 2 - 1).recon


def test_hook_register_spatial_samplers() -> None:
    class ExtraSampler(Conv2dSampler):
        name = "extra_conv2d"

    registry = _registry_with("vidtok_kit_register_spatial_samplers", [ExtraSampler])
    assert registry.origin("spatial_sampler", "extra_conv2d").plugin == "extra"
    assert _run_tiny(registry, spatial_sampler={"kind": "extra_conv2d"}).shape == (1, 3, 5, 16, 16)


def test_hook_register_temporal_samplers() -> None:
    class ExtraBlender(AlphaBlender):
        name = "extra_blender"

    registry = _registry_with("vidtok_kit_register_temporal_samplers", [ExtraBlender])
    assert _run_tiny(registry, temporal_sampler={"kind": "extra_blender", "mix_factor": 0.5}).shape == (1, 3, 5, 16, 16)


def test_hook_register_fusion_blocks() -> None:
    class ExtraBlock(Res3dBlock):
        name = "extra_res3d"

    registry = _registry_with("vidtok_kit_register_fusion_blocks", [ExtraBlock])
    recon = _run_tiny(registry, block={"kind": "extra_res3d"}, fusion={"kind": "extra_res3d"})
    assert recon.shape == (1, 3, 5, 16, 16)


def test_hook_register_regularizers() -> None:
    class ExtraKL(KLRegularizer):
        name = "extra_kl"

    registry = _registry_with("vidtok_kit_register_regularizers", [ExtraKL])
    assert registry.get("regularizer", "extra_kl") is ExtraKL
    assert _run_tiny(registry, regularizer={"kind": "extra_kl", "kl_weight": 0.0}).shape == (1, 3, 5, 16, 16)


COMMAND_PLUGIN = '''
import click
from vidtok_kit import hookimpl


@hookimpl
def vidtok_kit_add_commands(cli):
    @cli.command("hello")
    @click.argument("who")
    def hello(who):
        """Greet WHO (a plugin command)."""
        click.echo(f"hello {who}")
'''

FAILING_COMMAND_PLUGIN = '''
from vidtok_kit import hookimpl


@hookimpl
def vidtok_kit_add_commands(cli):
    raise RuntimeError("cannot add my command")
'''


def test_hook_add_commands(fake_distribution: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, fresh_cli: None) -> None:
    monkeypatch.setattr(cli_module.cli, "commands", dict(cli_module.cli.commands))  # restored afterwards
    fake_distribution("vidtok-kit-hello", "1.0", "hello_plugin", "vidtok_kit_hello_plugin", COMMAND_PLUGIN)
    fake_distribution("vidtok-kit-oops", "1.0", "oops_plugin", "vidtok_kit_oops_plugin", FAILING_COMMAND_PLUGIN)
    cli_module._add_plugin_commands()
    assert isinstance(cli_module.cli.commands["hello"], click.Command)
    result = CliRunner().invoke(cli_module.cli, ["hello", "world"])
    assert result.exit_code == 0 and result.output == "hello world\n"
    # the failing plugin is reported, and the rest of the CLI keeps working
    listing = CliRunner().invoke(cli_module.cli, ["plugins"])
    assert listing.exit_code == 0
    assert "oops_plugin  (vidtok-kit-oops 1.0)\n    BROKEN: RuntimeError: cannot add my command" in listing.output
