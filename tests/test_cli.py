"""The ``vidtok-kit`` CLI: ``--help`` everywhere, recipe show/check, convert of original checkpoints."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

import vidtok_kit
from vidtok_kit import cli as cli_module
from vidtok_kit.cli import cli
from vidtok_kit.convert.keymaps import original_keys
from vidtok_kit.recipe import load_recipe, recipe_from_dict
from vidtok_kit.testing import perturb_parameters, tiny_model

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny" / "kl_causal.toml"


def _walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, (*path, name))


def test_help_on_every_command(full_cli: click.Group) -> None:
    paths = list(_walk(full_cli))
    assert {("plugins",), ("recipe",), ("recipe", "show"), ("recipe", "check"), ("profile",), ("convert",)} <= set(paths)
    for path in paths:
        result = CliRunner().invoke(full_cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and "Show this message and exit." in result.output, path


def test_console_script_starts_and_lists_the_core_commands() -> None:
    exe = shutil.which("vidtok-kit")
    cmd = [exe] if exe else [sys.executable, "-m", "vidtok_kit"]
    result = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    for name in ("plugins", "recipe", "profile", "convert"):
        assert f"  {name}" in result.stdout


def test_version(fresh_cli: None) -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and vidtok_kit.__version__ in result.output


# -- recipe show / check -------------------------------------------------------------------------------


def test_recipe_show_prints_the_resolved_recipe(fresh_cli: None) -> None:
    result = CliRunner().invoke(cli, ["recipe", "show", str(TINY), "--set", "train.steps=3"])
    assert result.exit_code == 0, result.output
    shown = recipe_from_dict(tomllib.loads(result.output), registry=cli_module._registry())
    assert shown == load_recipe(TINY, overrides=["train.steps=3"])
    assert shown.train.steps == 3 and "lr = " in result.output  # defaults are spelled out


def test_recipe_check(fresh_cli: None, tmp_path: Path) -> None:
    other = REPO / "recipes" / "vidtok" / "vidtok_fsq_causal_488_262144.toml"
    result = CliRunner().invoke(cli, ["recipe", "check", str(TINY), str(other)])
    assert result.exit_code == 0 and result.output == f"{TINY}: ok\n{other}: ok\n"
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace("z_channels = 4", "z_channels = 0"))
    result = CliRunner().invoke(cli, ["recipe", "check", str(TINY), str(bad)])
    assert result.exit_code == 1
    assert result.output == f"{TINY}: ok\nError: {bad}: model: 'z_channels' must be >= 1: 0\n"


# -- convert / load ----------------------------------------------------------------------------------------


def _original_checkpoint(path: Path, model, **extra) -> Path:
    mapping = original_keys(model.state_dict(), causal=model.config.causal)
    state = {orig: model.state_dict()[ours].clone() for orig, ours in mapping.items()}
    state["loss.logvar"] = torch.zeros(())  # training-only keys are dropped on load
    state["loss.discriminator.main.0.weight"] = torch.randn(4, 3, 4, 4)
    torch.save({"state_dict": state, "global_step": 40_000, "epoch": 3, **extra}, path)
    return path


def test_convert_original_ckpt_and_load_give_identical_outputs(fresh_cli: None, tmp_path: Path) -> None:
    source = perturb_parameters(tiny_model())
    ckpt = _original_checkpoint(tmp_path / "vidtok_tiny.ckpt", source)
    out = tmp_path / "converted.safetensors"
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--recipe", str(TINY), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{ckpt} (original VidTok layout) -> {out}\n"
    assert out.is_file() and out.with_suffix(".json").is_file()
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        want = source.eval()(x).recon
        from_original = vidtok_kit.load(TINY, ckpt, arithmetic="reference").model(x).recon
        from_converted = vidtok_kit.load(None, out, arithmetic="reference").model(x).recon  # the recipe travels inside the file
    assert torch.equal(from_original, want) and torch.equal(from_converted, want)


def test_lightning_checkpoint_with_pickled_objects_fails_in_one_line(fresh_cli: None, tmp_path: Path) -> None:
    ckpt = _original_checkpoint(tmp_path / "lightning.ckpt", tiny_model(), hyper_parameters=argparse.Namespace(lr=1e-5))
    out = tmp_path / "never.safetensors"
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--recipe", str(TINY), "-o", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {ckpt}: refused by torch.load(weights_only=True), it pickles more than tensors")
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_convert_into_the_wrong_recipe_names_the_mismatch(fresh_cli: None, tmp_path: Path) -> None:
    ckpt = _original_checkpoint(tmp_path / "kl.ckpt", tiny_model())
    fsq = tmp_path / "fsq.toml"
    fsq.write_text(TINY.read_text().replace('kind = "kl"', 'kind = "fsq"\nlevels = [8, 8, 8, 8]'))
    out = tmp_path / "never.safetensors"
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--recipe", str(fsq), "-o", str(out)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {ckpt}: 2 tensors have the wrong shape for this recipe: "
        "encoder.conv_out.conv.weight (8, 16, 3, 3, 3) vs model (4, 16, 3, 3, 3), "
        "encoder.conv_out.conv.bias (8,) vs model (4,)\n"
    )
    assert not out.exists()


def test_missing_checkpoint_file(fresh_cli: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "x.ckpt"), "--recipe", str(TINY), "-o", str(tmp_path / "y")])
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path / 'x.ckpt'}: no such checkpoint file\n"


def _saved_then_cut(path: Path, **save: object) -> bytes:
    torch.save({"w": torch.zeros(256)}, path, **save)  # type: ignore[arg-type]
    data = path.read_bytes()
    return data[: len(data) // 2]


DAMAGED_CHECKPOINTS = {
    # not a torch.save file at all: told apart by its first bytes, before torch's unpickler
    # (which raised a bare KeyError / IndexError on such bytes, a traceback)
    "text": (lambda p: b"junk\n", "not a PyTorch checkpoint (torch.save writes a zip archive or a pickle; this file starts b'junk')"),
    "html error page": (lambda p: b"<html>404</html>", "not a PyTorch checkpoint"),
    "empty": (lambda p: b"", "the file is empty, not a PyTorch checkpoint"),
    "cut zip archive": (_saved_then_cut, "a damaged PyTorch checkpoint (RuntimeError: PytorchStreamReader failed reading zip archive"),
    "cut legacy pickle": (lambda p: _saved_then_cut(p, _use_new_zipfile_serialization=False), "a damaged PyTorch checkpoint ("),
    # a pickle torch cannot tell from one with foreign opcodes: refused, in one line
    "pickle of random bytes": (lambda p: b"\x80\x02" + bytes(range(7, 250)), "refused by torch.load(weights_only=True)"),
}


@pytest.mark.parametrize("kind", list(DAMAGED_CHECKPOINTS))
def test_a_damaged_checkpoint_is_one_line_naming_the_file(fresh_cli: None, tmp_path: Path, kind: str) -> None:
    make, message = DAMAGED_CHECKPOINTS[kind]
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(make(tmp_path / "whole.ckpt"))
    out = tmp_path / "never.safetensors"
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--recipe", str(TINY), "-o", str(out)])
    assert result.exit_code == 1 and not isinstance(result.exception, (KeyError, IndexError)), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {ckpt}: ") and message in lines[0], result.output
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_a_component_rejecting_the_architecture_is_one_line(fresh_cli: None) -> None:
    # FSQ's 3 levels need 3 latent channels; the recipe validates, building the model does not
    result = CliRunner().invoke(cli, ["profile", str(TINY), "--set", 'model.regularizer={kind="fsq", levels=[8, 8, 8]}'])
    assert result.exit_code == 1
    assert result.output == "Error: cannot build the model: fsq: 3 levels [8, 8, 8] need z_channels = 3, got 4\n"


def test_help_starts_without_importing_torch() -> None:
    """``vidtok-kit --help`` lists every command (plugin ones too) without torch: under a second."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vidtok_kit.cli import main\n"
        "sys.argv = ['vidtok-kit', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'av' not in sys.modules, 'av was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "export" in done.stdout and "encode" in done.stdout  # a plugin command and a core one


def test_every_builtin_that_adds_commands_is_a_command_plugin() -> None:
    import importlib

    from vidtok_kit.pluginmanager import BUILTIN_PLUGINS, COMMAND_PLUGINS

    adds = [m for m in BUILTIN_PLUGINS if hasattr(importlib.import_module(m), "vidtok_kit_add_commands")]
    assert sorted(adds) == sorted(COMMAND_PLUGINS)
