"""Plugin manager: built-ins from the installed package, entry-point plugins (working and broken), blocking.

Third-party plugins are real distributions: a ``*.dist-info`` folder (METADATA + entry_points.txt)
and a module, written into ``tmp_path`` and put on ``sys.path`` (the ``fake_distribution`` fixture),
so ``importlib.metadata`` finds them exactly as it finds an installed wheel.
"""

from __future__ import annotations

import importlib
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidtok_kit.cli import cli
from vidtok_kit.pluginmanager import BUILTIN_PLUGINS, build_registry, get_plugin_manager, load_plugins

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny" / "kl_causal.toml"

DEMO_SOURCE = '''
"""A working third-party plugin: a KL regularizer under its own name."""
from vidtok_kit import hookimpl
from vidtok_kit.plugins.regularizers.kl import KLRegularizer


class DemoKL(KLRegularizer):
    name = "demo_kl"


@hookimpl
def vidtok_kit_register_regularizers():
    return [DemoKL]
'''

BROKEN_SOURCE = 'raise RuntimeError("boom at import")\n'


@pytest.fixture
def broken(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("vidtok-kit-broken-demo", "0.1.0", "broken_demo", "vidtok_kit_broken_demo_plugin", BROKEN_SOURCE)


@pytest.fixture
def demo(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("vidtok-kit-demo", "0.2.0", "demo", "vidtok_kit_demo_plugin", DEMO_SOURCE)


def _recipe_with(tmp_path: Path, regularizer: str) -> Path:
    path = tmp_path / "asks.toml"
    path.write_text(TINY.read_text().replace('kind = "kl"', f'kind = "{regularizer}"'))
    return path


# -- built-ins -------------------------------------------------------------------------------------


def test_builtins_import_from_the_installed_package_and_ship_in_the_wheel() -> None:
    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    plugins = get_plugin_manager(autoload=False)
    for modname in BUILTIN_PLUGINS:
        module = importlib.import_module(modname)
        assert plugins.pm.get_plugin(modname) is module
        assert plugins.origins[modname].distribution == "vidtok-kit"
        assert modname.rpartition(".")[0] in packages, f"{modname}'s package is missing from [tool.setuptools] packages"
    # the mapped directories are only ever imported under their package names
    assert "plugins" not in sys.modules and "export" not in sys.modules


def test_builtins_register_like_plugins_and_check_pending_passes() -> None:
    plugins, registry = load_plugins(autoload=False)
    assert [name for name in plugins.origins] == list(BUILTIN_PLUGINS)
    assert registry.broken == [] and plugins.broken == []
    plugins.pm.check_pending()


def test_blocking_a_builtin_removes_its_components(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_plugins(autoload=False, disabled=["vidtok_kit.plugins.regularizers.fsq"])[1]
    assert "fsq" not in registry.names("regularizer") and "kl" in registry.names("regularizer")
    monkeypatch.setenv("VIDTOK_KIT_DISABLED_PLUGINS", " vidtok_kit.plugins.regularizers.kl , vidtok_kit.plugins.fusion.res2d")
    registry = load_plugins(autoload=False)[1]
    assert "kl" not in registry.names("regularizer") and "res2d" not in registry.names("fusion")


def test_trace_reports_registration_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("VIDTOK_KIT_TRACE_PLUGINS", "1")
    load_plugins(autoload=False)
    out = capsys.readouterr().out
    assert "vidtok_kit_register_regularizers vidtok_kit.plugins.regularizers.kl ['kl']" in out


# -- entry-point plugins ------------------------------------------------------------------------------


def test_working_entry_point_plugin(demo: None, tmp_path: Path, fresh_cli: None) -> None:
    plugins, registry = load_plugins()
    assert plugins.origins["demo"].distribution == "vidtok-kit-demo" and plugins.origins["demo"].version == "0.2.0"
    assert registry.get("regularizer", "demo_kl").__module__ == "vidtok_kit_demo_plugin"
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "demo  (vidtok-kit-demo 0.2.0)\n    regularizer: demo_kl\n" in result.output
    result = CliRunner().invoke(cli, ["recipe", "check", str(_recipe_with(tmp_path, "demo_kl"))])
    assert result.exit_code == 0, result.output


def test_autoload_can_be_switched_off(demo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "demo" not in get_plugin_manager(autoload=False).origins
    monkeypatch.setenv("VIDTOK_KIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "demo" not in get_plugin_manager().origins


def test_broken_plugin_is_recorded_not_fatal(broken: None) -> None:
    plugins, registry = load_plugins()
    [record] = registry.broken
    assert record.origin.plugin == "broken_demo"
    assert record.origin.distribution == "vidtok-kit-broken-demo" and record.origin.version == "0.1.0"
    assert record.error == "RuntimeError: boom at import"
    assert "vidtok_kit_broken_demo_plugin.py" in record.traceback and "boom at import" in record.traceback
    assert "kl" in registry.names("regularizer")  # everything else still works


def test_plugins_command_lists_the_broken_plugin(broken: None, fresh_cli: None) -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "broken_demo  (vidtok-kit-broken-demo 0.1.0)\n    BROKEN: RuntimeError: boom at import\n" in result.output
    assert "vidtok_kit.plugins.regularizers.kl  (vidtok-kit " in result.output
    rows = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    assert {r["plugin"]: r["broken"] for r in rows}["broken_demo"] == "RuntimeError: boom at import"


def test_recipe_needing_a_missing_component_names_the_broken_plugin(broken: None, tmp_path: Path, fresh_cli: None) -> None:
    recipe = _recipe_with(tmp_path, "fancy_vq")
    available = ", ".join(load_plugins()[1].names("regularizer"))
    result = CliRunner().invoke(cli, ["recipe", "check", str(recipe)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {recipe}: model.regularizer.kind: unknown regularizer 'fancy_vq'; available: {available}; "
        "plugin 'broken_demo' (vidtok-kit-broken-demo 0.1.0) failed to load and may provide it: "
        "RuntimeError: boom at import\n"
    )


def test_disable_plugin_option_blocks_an_entry_point(broken: None, fresh_cli: None) -> None:
    result = CliRunner().invoke(cli, ["--disable-plugin", "broken_demo", "plugins"])
    assert result.exit_code == 0 and "BROKEN" not in result.output and "broken_demo" not in result.output


def test_disabled_plugins_env_blocks_an_entry_point(broken: None, monkeypatch: pytest.MonkeyPatch, fresh_cli: None) -> None:
    monkeypatch.setenv("VIDTOK_KIT_DISABLED_PLUGINS", "broken_demo")
    assert load_plugins()[1].broken == []
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0 and "broken_demo" not in result.output


def test_disable_plugin_option_blocks_a_builtin(fresh_cli: None) -> None:
    fsq_recipe = REPO / "recipes" / "vidtok" / "vidtok_fsq_causal_488_262144.toml"
    result = CliRunner().invoke(cli, ["--disable-plugin", "vidtok_kit.plugins.regularizers.fsq", "recipe", "check", str(fsq_recipe)])
    assert result.exit_code == 1
    assert "model.regularizer.kind: unknown regularizer 'fsq'; available: " in result.output


def test_plugin_whose_registration_hook_raises_is_recorded() -> None:
    import types

    from vidtok_kit import hookimpl
    from vidtok_kit.registry import Origin

    def fails() -> list:
        raise ImportError("optional dependency 'fancylib' is missing")

    plugin = types.ModuleType("half_broken")
    plugin.vidtok_kit_register_fusion_blocks = hookimpl(fails)
    plugins = get_plugin_manager(autoload=False)
    plugins.register(plugin, Origin(plugin="half_broken", distribution="vidtok-kit-half", version="1"))
    registry = build_registry(plugins)
    assert [b.error for b in registry.broken] == ["ImportError: optional dependency 'fancylib' is missing"]
    assert "res3d" in registry.names("fusion")
